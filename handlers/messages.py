"""What a channel hands to the handlers (Inbound) and what it gets back to render (Reply)."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import StrEnum

# The prefix that namespaces a channel's chat ids before they are turned into pseudonyms.
CHANNEL_PREFIXES = {"telegram": "tg", "zalo": "zl", "zalo_oa": "zoa", "console": "cli"}
# Channels that cannot carry a file we send: the Zalo Bot API takes photos by public URL only, and
# nothing of ours is ever put at a public address.
CHANNELS_WITHOUT_FILES = {"zalo"}
_SURROGATE = re.compile("[\ud800-\udfff]")


def well_formed(text: str | None) -> str | None:
    """The text with any half of a UTF-16 surrogate pair (an emoji cut in two, which a platform's JSON can
    carry as "\\ud83d") replaced by U+FFFD: no UTF-8 text can hold it, so sealing the message would fail."""
    if text is None or not _SURROGATE.search(text):
        return text
    # A pair split into two code points is joined again; only a lone half becomes U+FFFD.
    return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")


@dataclass(frozen=True)
class Location:
    latitude: float
    longitude: float


@dataclass(frozen=True)
class Contact:
    phone: str
    is_own: bool  # a shared contact of somebody else is not the tipster's phone

    def __post_init__(self) -> None:
        object.__setattr__(self, "phone", well_formed(self.phone))


@dataclass
class CleanedImage:
    """An evidence image after its metadata was removed (handlers/evidence_images.py), or why it was refused."""

    data: bytes | None = None
    mime: str | None = None
    refusal: str | None = None  # too_large, unreadable


@dataclass
class IncomingFile:
    """Evidence a citizen sent; the bytes are fetched only if the conversation wants them."""

    kind: str  # photo, video, voice, audio, document
    size: int | None
    fetch: Callable[[], Awaitable[bytes]]
    filename: str | None = None
    mime: str | None = None
    cleaned: CleanedImage | None = None  # an image already fetched and cleaned, outside the transaction

    def __post_init__(self) -> None:
        self.filename, self.mime = well_formed(self.filename), well_formed(self.mime)


@dataclass
class Inbound:
    """One update from a citizen or officer, channel-neutral."""

    channel: str
    chat_id: str  # the platform's chat id: turned into a pseudonym, never stored in clear
    update_id: str | None = None
    text: str | None = None
    choice: str | None = None  # the payload of a tapped button
    files: list[IncomingFile] = field(default_factory=list)
    location: Location | None = None
    contact: Contact | None = None
    unsupported: str | None = None  # e.g. "sticker": something we cannot take
    language: str | None = None  # the platform's language hint (Telegram's language_code)
    album: str | None = None  # files sent together (Telegram's media_group_id): one message to count and answer
    album_more: bool = False  # the channel holds further files of this album, to come right after this one

    def __post_init__(self) -> None:
        self.text, self.choice = well_formed(self.text), well_formed(self.choice)

    @property
    def command(self) -> tuple[str, str] | None:
        """("/status", "TB-7K3M-9QXF") for "/status@bot TB-7K3M-9QXF"; None for plain text."""
        if not self.text:
            return None
        match = re.match(r"^/([A-Za-z0-9_]{1,32})(?:@\w+)?(?:\s+(.*))?$", self.text.strip(), re.S)
        if not match:
            return None
        return "/" + match.group(1).lower(), (match.group(2) or "").strip()


@dataclass(frozen=True)
class Choice:
    id: str
    label: str


@dataclass(frozen=True)
class Route:
    """Where a message goes when it is not an answer to the current chat (a tipster, an officer)."""

    channel: str
    chat_id: str


@dataclass
class OutgoingFile:
    kind: str  # photo, video, voice, audio, document
    data: bytes
    filename: str | None = None
    mime: str | None = None


class TypeInstead(StrEnum):
    """What a citizen can type where a channel has no location or contact button (the handlers accept both)."""

    ADDRESS = "address"
    PHONE = "phone"


@dataclass
class Reply:
    """A message to send back; choices become buttons, or a numbered list where there are none."""

    text: str
    choices: list[Choice] = field(default_factory=list)
    columns: int = 1
    location_button: str | None = None  # label of a "send my location" button, where the channel has one
    contact_button: str | None = None  # label of a "share my phone number" button, likewise
    to: Route | None = None  # None: the chat that wrote
    files: list[OutgoingFile] = field(default_factory=list)
    commands_menu: str | None = None  # "officer", "supervisor" or "citizen": the command list this chat should now see
    language: str | None = None  # the language the text is in ("vi", "en"), so a channel's own words can match it
    type_instead: TypeInstead | None = None  # what to type where the location or contact button cannot be shown


def numbered_text(reply: Reply) -> str:
    """The reply as plain text for channels without buttons: choices become a numbered list."""
    if not reply.choices:
        return reply.text
    lines = [f"{i}. {choice.label}" for i, choice in enumerate(reply.choices, 1)]
    return reply.text + "\n\n" + "\n".join(lines)


def split_text(text: str, limit: int) -> list[str]:
    """Split a long text for a channel's length cap at line, then sentence, then word boundaries."""
    parts: list[str] = []
    rest = text
    while len(rest) > limit:
        window = rest[:limit]
        cut = max(window.rfind("\n"), -1)
        if cut < limit // 2:
            sentence = max(window.rfind(". "), window.rfind("! "), window.rfind("? "))
            cut = sentence + 1 if sentence >= limit // 2 else cut
        if cut < limit // 2:
            space = window.rfind(" ")
            cut = space if space > 0 else limit
        parts.append(rest[:cut].rstrip())
        rest = rest[cut:].lstrip()
    if rest:
        parts.append(rest)
    return parts
