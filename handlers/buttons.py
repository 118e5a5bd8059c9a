"""Button payloads: one kind per prefix, packed and unpacked here and nowhere else.

In the spirit of aiogram's ``CallbackData``: a payload is ``<prefix><separator><parts joined by ":">``.
The formats are exactly those the bot has always sent, because buttons already shown in chats (and the
choices kept in ``conversation.offered``) must keep meaning what they meant.

| kind | payload | what taps it |
|---|---|---|
| ``OFFICER`` | ``t:valuable:K7QM2X``, ``t:nv:K7QM2X:duplicate``, ``t:queue:2`` | an officer, under a tip or the queue |
| ``ANNOUNCEMENT`` | ``b:send:12``, ``b:cancel:12`` | an admin, under an announcement's preview |
| ``REMINDER`` | ``remind:on``, ``remind:off``, ``remind:add=79.26734`` | a subscriber |
| ``MENU`` | ``menu:report`` | anyone, under the welcome |
| ``LANGUAGE`` | ``lang=vi`` | anyone, after /language |
| a questionnaire step | ``<step id>:<value>``, e.g. ``category:fraud`` | a citizen, during the tip-off |

The first five prefixes are reserved: the questionnaire loader refuses a step whose id is one of them, so
a step called ``remind`` can never be taken for the reminders' buttons. To add a kind: one ``ButtonKind``
below, and its handler in the table in handlers/router.py.
"""

from __future__ import annotations

from dataclasses import dataclass

@dataclass(frozen=True)
class ButtonKind:
    """One kind of button: its prefix, and how its parts are packed behind it."""

    prefix: str
    separator: str = ":"

    def pack(self, *parts: object) -> str:
        """The payload of a button of this kind; a part that would make it ambiguous is refused."""
        texts = [str(p) for p in parts]
        if not texts or any(not t for t in texts) or any(":" in t for t in texts[:-1]):
            # ":" separates the parts: inside any but the last it would shift every part after it.
            raise ValueError(f"button parts {texts!r} cannot be packed for {self.prefix!r}")
        return self.prefix + self.separator + ":".join(texts)

    def unpack(self, payload: str | None, *, parts: int | None = None) -> tuple[str, ...] | None:
        """The parts of a payload of this kind (at most ``parts``, the last keeping any ":"); None if not ours."""
        head = self.prefix + self.separator
        if not payload or not payload.startswith(head):
            return None
        return tuple(payload[len(head):].split(":", -1 if parts is None else parts - 1))

    def owns(self, payload: str | None) -> bool:
        return bool(payload) and payload.startswith(self.prefix + self.separator)


OFFICER = ButtonKind("t")
ANNOUNCEMENT = ButtonKind("b")
REMINDER = ButtonKind("remind")
MENU = ButtonKind("menu")
LANGUAGE = ButtonKind("lang", "=")

RESERVED = (OFFICER, ANNOUNCEMENT, REMINDER, MENU, LANGUAGE)
RESERVED_PREFIXES = frozenset(kind.prefix for kind in RESERVED)


def reserved_kind(payload: str | None) -> ButtonKind | None:
    """The reserved kind a payload belongs to; None for a questionnaire step's button, or anything else."""
    return next((kind for kind in RESERVED if kind.owns(payload)), None)


def step_button(step_id: str, value: str) -> str:
    """A questionnaire step's button: the step is part of it, so an old button tapped later is recognised."""
    return ButtonKind(step_id).pack(value)


def step_value(step_id: str, payload: str | None) -> str | None:
    """The value of a tap on this step's button; None if the button belongs elsewhere."""
    found = ButtonKind(step_id).unpack(payload, parts=1)
    return found[0] if found else None


def any_step_value(payload: str) -> str:
    """The value behind the step id of a step button (the payloads offered for the current question)."""
    return payload.split(":", 1)[1]
