"""Logging that never carries a bot token, a chat id or a message: redaction on every handler.

Two filters sit on the one handler, in this order:

- ``KeepPayloadsOut`` reduces what a library says to a form that cannot carry what a citizen sent:
  a line of a library we have read keeps its logger name, level and wording but loses its arguments
  (aiogram's "Failed to fetch updates - %s: %s" carried a whole getUpdates batch); any other library's
  line keeps only its logger name and level; every traceback loses the exceptions' messages (pydantic's
  ValidationError quotes its input, aiohttp's errors their URL); a warning keeps only its category and
  where it was raised, asyncio only its first line.
- ``RedactSecrets`` cuts tokens and registered secrets out of what is left.

Our own loggers (bot, handlers, storage, tinbao) keep their arguments: our code logs counts, update
ids, addresses and exception classes, never a message or a chat id.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import sys
import traceback
import warnings
from typing import Any

from storage.db import out_of_reach

# aiohttp and aiogram put the token in URLs (…/bot123456:AA…/sendMessage); whatever the token,
# that shape is cut out, and so is any secret registered at start.
_TOKEN_IN_URL = re.compile(r"bot\d{3,}:[A-Za-z0-9_-]{10,}")
_BARE_TOKEN = re.compile(r"\b\d{6,}:[A-Za-z0-9_-]{30,}\b")
# Loggers whose lines we write ourselves and whose arguments we choose with care.
OUR_LOGGERS = ("bot", "handlers", "storage", "tinbao")
# Libraries whose log calls we read: each passes data as arguments to a fixed template (none formats it
# in first), so their wording can stay once the arguments are gone. Any other library's text is withheld.
TEMPLATED_LIBRARIES = ("aiogram", "aiohttp", "sqlalchemy", "alembic", "aiosqlite", "asyncpg", "PIL", "matplotlib")
# A %-style conversion in a library's message template: each is replaced, whatever its argument was.
_CONVERSION = re.compile(r"%(?:\([^)]*\))?[#0 +-]*(?:\*|\d+)?(?:\.(?:\*|\d+))?[hlL]?[diouxXeEfFgGcrsa%]")
_WARNING_HEAD = re.compile(r"^(?P<where>.*?:\d+): (?P<category>\w+):")
WITHHELD = "…"
PAYLOAD_FREE = "tinbao_payload_free"  # set on the records we make of warnings and asyncio's reports
MAX_LIBRARY_LINE = 300


def _ours(name: str) -> bool:
    return name.split(".", 1)[0] in OUR_LOGGERS


def _templated(name: str) -> bool:
    return name.split(".", 1)[0] in TEMPLATED_LIBRARIES


def _first_line(text: str) -> str:
    line = text.split("\n", 1)[0].strip()
    return line if len(line) <= MAX_LIBRARY_LINE else line[:MAX_LIBRARY_LINE] + WITHHELD


def where(tb) -> str:
    """The innermost frame of a traceback as "file:line in function", with the file shortened."""
    frames = traceback.extract_tb(tb) if tb is not None else []
    if not frames:
        return "an unknown place"
    frame = frames[-1]
    return f"{short_path(frame.filename)}:{frame.lineno} in {frame.name}"


def short_path(filename: str) -> str:
    """A source file named from its package on (site-packages/aiogram/x.py → aiogram/x.py)."""
    parts = filename.replace(os.sep, "/").split("/")
    for marker in ("site-packages", "dist-packages"):
        if marker in parts:
            return "/".join(parts[parts.index(marker) + 1:])
    return "/".join(parts[-3:])


def payload_free_traceback(exc_info) -> str:
    """A traceback with its frames and exception classes, but none of the exceptions' messages."""
    _, exc, _ = exc_info
    if exc is None:
        return ""
    chain: list[BaseException] = []
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        chain.append(exc)
        exc = exc.__cause__ if exc.__cause__ is not None else (
            None if exc.__suppress_context__ else exc.__context__)
    parts = []
    for index, link in enumerate(reversed(chain)):
        if index:
            parts.append("\nwhich led to:\n")
        parts.append("Traceback (most recent call last):\n")
        parts.extend(traceback.format_list(traceback.extract_tb(link.__traceback__)))
        parts.append(f"{type(link).__module__}.{type(link).__qualname__} (message withheld)")
    return "".join(parts)


def _without_arguments(template: str, args: Any) -> str:
    """A library's template with each conversion replaced; an exception argument is named by its class."""
    positional = list(args) if isinstance(args, tuple) else []

    def replace(match: re.Match) -> str:
        spec = match.group(0)
        if spec == "%%":
            return "%"
        value = positional.pop(0) if positional and not spec.startswith("%(") else None
        if isinstance(value, BaseException):
            return type(value).__name__
        return WITHHELD

    return _CONVERSION.sub(replace, template)


class KeepPayloadsOut(logging.Filter):
    """Rewrites a record so that nothing a library or an exception quotes can reach the log; never drops one."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = payload_free_traceback(record.exc_info)
        elif record.exc_text:
            record.exc_text = "(traceback withheld)"
        if _ours(record.name) or getattr(record, PAYLOAD_FREE, False):
            return True
        if record.name == "py.warnings":  # logging.captureWarnings: "file:line: Category: text…"
            text = record.getMessage()
            head = _WARNING_HEAD.match(text)
            record.msg = (f"{head.group('category')} at {short_path(head.group('where'))}" if head
                          else "a warning (text withheld)")
        elif record.name.startswith("asyncio"):
            # asyncio writes the task's repr, and with it the exception's message, after the first line.
            record.msg = _first_line(record.getMessage())
        elif _templated(record.name) and isinstance(record.msg, str):
            record.msg = _first_line(_without_arguments(record.msg, record.args))
        else:
            record.msg = "(text withheld)"
        record.args = None
        return True


class RedactSecrets(logging.Filter):
    """Rewrites each record's final text with secrets replaced; never drops a record."""

    def __init__(self, secrets: list[str] | None = None) -> None:
        super().__init__()
        self.secrets = [s for s in (secrets or []) if s]

    def redact(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, "<redacted>")
        text = _TOKEN_IN_URL.sub("bot<redacted>", text)
        return _BARE_TOKEN.sub("<redacted>", text)

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        record.msg, record.args = self.redact(message), None
        if record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        return True


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    # A warning's text may quote data (aiogram's "Detected unknown update type" holds the update's JSON):
    # only its category and where it was raised reach the log.
    logging.getLogger("py.warnings").warning("%s at %s:%d", category.__name__, short_path(filename), lineno,
                                             extra={PAYLOAD_FREE: True})


def setup_logging(level: str = "INFO", *, secrets: list[str] | None = None, stream=None) -> RedactSecrets:
    """One stderr handler with redaction; chatty libraries kept at WARNING (they log update ids);
    warnings go to the same log, reduced to their category and place."""
    redactor = RedactSecrets(secrets)
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(KeepPayloadsOut())  # first: it needs the record's template and arguments apart
    handler.addFilter(redactor)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # aiosqlite logs SQL parameters at DEBUG: sealed bytes mostly, but announcements are plain text.
    for noisy in ("aiogram.event", "aiogram.dispatcher", "aiohttp.access", "sqlalchemy.engine", "alembic", "aiosqlite"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    warnings.showwarning = _show_warning
    return redactor


def log_round_failure(logger: logging.Logger, what: str, exc: BaseException) -> None:
    """A background round that failed: one line while the database is out of reach (it will be back,
    and a traceback a second would drown the log), the traceback otherwise."""
    if out_of_reach(exc):
        logger.warning("%s (the database did not answer)", what)
    else:
        logger.error(what, exc_info=exc)


def log_loop_exception(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    """asyncio's last word on a failed task or callback, as one line: the exception's class and where."""
    exc = context.get("exception")
    what = _first_line(str(context.get("message") or "asyncio reported an error"))
    task = context.get("task") or context.get("future")
    coro = getattr(task, "get_coro", lambda: None)() if task is not None else None
    origin = f" (task {getattr(coro, '__qualname__', type(task).__name__)})" if task is not None else ""
    if exc is None:
        logging.getLogger("asyncio").error("%s%s", what, origin, extra={PAYLOAD_FREE: True})
    else:
        logging.getLogger("asyncio").error("%s%s: %s at %s", what, origin, type(exc).__name__,
                                           where(exc.__traceback__), extra={PAYLOAD_FREE: True})


def install_log_hygiene(loop: asyncio.AbstractEventLoop) -> None:
    """For the running process: asyncio's "Task exception was never retrieved" and every warning go to
    the log without what they quote."""
    loop.set_exception_handler(log_loop_exception)
    warnings.showwarning = _show_warning
