"""Telegram updates read as JSON before aiogram decodes them: their id, kind and chat, what became of each,
and why one was refused, named without anything the update itself says."""

from __future__ import annotations

import functools
import logging
import typing
from typing import Any

import aiogram.types
from aiogram.exceptions import TelegramAPIError, TelegramNetworkError, TelegramServerError
from aiogram.methods import GetUpdates
from aiogram.types import TelegramObject, Update
from pydantic import ValidationError

# One logger for the whole channel, whichever of its modules writes: operators filter on one name.
log = logging.getLogger("bot.channels.telegram")

HANDLED, DUPLICATE, UNDECODABLE, IGNORED, FAILED = "handled", "duplicate", "undecodable", "ignored", "failed"
DEFERRED = "deferred"  # the database did not answer: not acknowledged, handled again later
ALLOWED_UPDATES = ["message", "callback_query"]  # the only kinds the tip line answers


class RawUpdates(GetUpdates):
    """getUpdates whose answer stays JSON: aiogram would decode the batch as one, and one update it
    rejects would fail them all and hold the offset for a day (aiogram issue #1840)."""

    __returning__ = list[Any]


@functools.cache
def _model_names() -> frozenset[str]:
    """Every field name, alias, tag and type name of aiogram's models: the words a decoding error may
    name in our log (anything else in its location could come from the input)."""
    names: set[str] = set()
    for value in vars(aiogram.types).values():
        if isinstance(value, type) and issubclass(value, TelegramObject):
            names.add(value.__name__)
            for field_name, field in value.model_fields.items():
                names.update(n for n in (field_name, field.alias) if n)
                names.update(a for a in typing.get_args(field.annotation) if isinstance(a, str))
                default = field.default
                if isinstance(default, str):
                    names.add(default)
    return frozenset(names)


def undecodable_reason(exc: ValidationError) -> str:
    """Why aiogram's models refused an update, without the input pydantic would quote: the kind of the
    first error and the fields leading to it."""
    errors = exc.errors(include_url=False, include_input=False, include_context=False)
    if not errors:
        return "rejected by aiogram's models"
    first = errors[0]
    known = _model_names()
    path = ".".join(str(p) if isinstance(p, int) or p in known else "?" for p in first.get("loc", ()))
    more = f" (+{len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"{first.get('type', 'invalid')} at {path or 'the top'}{more}"


def update_kind(raw: dict) -> str:
    """The update's kind, if aiogram knows it; "unknown" for a kind it does not (never the input's word)."""
    for name in Update.model_fields:
        if name != "update_id" and raw.get(name) is not None:
            return name
    return "unknown"


def update_id_of(raw: Any) -> int | None:
    """The update's id, or None (logged as a skipped update) if it has none to name it by."""
    update_id = raw.get("update_id") if isinstance(raw, dict) else None
    if isinstance(update_id, int) and not isinstance(update_id, bool):
        return update_id
    log.warning("a Telegram update was skipped: %s", "not an object" if not isinstance(raw, dict) else "no update_id")
    return None


def chat_key(raw: dict) -> int | None:
    """The private chat an update belongs to, read from the JSON before decoding (for the order of turns)."""
    for path in (("message", "chat", "id"), ("callback_query", "from", "id")):
        value: Any = raw
        for step in path:
            value = value.get(step) if isinstance(value, dict) else None
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return None


def failure(exc: BaseException) -> str:
    """A failed call named without its URL (it holds the token) or the answer's body."""
    if isinstance(exc, TelegramNetworkError):
        cause = exc.__cause__
        return f"network: {type(cause).__name__ if cause is not None else 'timeout'}"
    if isinstance(exc, TelegramServerError):
        return f"Telegram server error: {type(exc).__name__}"
    if isinstance(exc, TelegramAPIError):
        return f"{type(exc).__name__}: {_first_words(exc.message)}"
    return type(exc).__name__


def _first_words(description: str) -> str:
    # Telegram's own description of a refusal ("Conflict: terminated by other getUpdates request"):
    # short, and about the call, not about any message; capped all the same.
    return description.split("\n", 1)[0][:120]
