"""A test tool that talks to the tip line like a person in a chat: send text, tap buttons, send files."""

from __future__ import annotations

import itertools

from handlers.messages import Contact, IncomingFile, Inbound, Location, Reply
from handlers.reply_outbox import SENT, TurnReplies
from handlers.router import TipLine

_update_ids = itertools.count(1)


async def _received(reply: Reply) -> str:
    return SENT


async def answered(tipline: TipLine, inbound: Inbound) -> list[Reply]:
    """The replies to one update, received as a channel would have sent them."""
    replies = await tipline.handle(inbound)
    if isinstance(replies, TurnReplies):
        await replies.outbox.deliver(replies, _received)
    return replies


class ChatClient:
    def __init__(self, tipline: TipLine, *, chat_id: str, channel: str = "console", language: str = "vi") -> None:
        self.tipline, self.chat_id, self.channel, self.language = tipline, chat_id, channel, language
        self.last: list[Reply] = []

    async def deliver(self, **fields) -> list[Reply]:
        fields.setdefault("update_id", str(next(_update_ids)))
        inbound = Inbound(channel=self.channel, chat_id=self.chat_id, language=self.language, **fields)
        self.last = await answered(self.tipline, inbound)
        return self.last

    async def send(self, text: str) -> list[Reply]:
        return await self.deliver(text=text)

    async def click(self, label_or_id: str) -> list[Reply]:
        """Tap a button of the last reply, found by (part of) its label or by its exact id."""
        buttons = [c for r in self.last for c in r.choices]
        match = [c for c in buttons if c.id == label_or_id] or [c for c in buttons if label_or_id in c.label]
        assert match, f"no button {label_or_id!r} in {[c.label for c in buttons]}"
        return await self.deliver(choice=match[0].id)

    async def send_file(self, data: bytes, *, kind: str = "photo", filename: str | None = None,
                        mime: str | None = None) -> list[Reply]:
        async def fetch() -> bytes:
            return data
        return await self.deliver(files=[IncomingFile(kind=kind, size=len(data), fetch=fetch,
                                                      filename=filename, mime=mime)])

    async def send_location(self, latitude: float, longitude: float) -> list[Reply]:
        return await self.deliver(location=Location(latitude, longitude))

    async def send_contact(self, phone: str, *, is_own: bool = True) -> list[Reply]:
        return await self.deliver(contact=Contact(phone, is_own))

    @property
    def text(self) -> str:
        return "\n".join(r.text for r in self.last)

    @property
    def labels(self) -> list[str]:
        return [c.label for r in self.last for c in r.choices]
