"""Logging that never carries a bot token, a chat id or a message: redaction on every handler."""

from __future__ import annotations

import logging
import re
import sys

# aiohttp and aiogram put the token in URLs (…/bot123456:AA…/sendMessage); whatever the token,
# that shape is cut out, and so is any secret registered at start.
_TOKEN_IN_URL = re.compile(r"bot\d{3,}:[A-Za-z0-9_-]{10,}")
_BARE_TOKEN = re.compile(r"\b\d{6,}:[A-Za-z0-9_-]{30,}\b")


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


def setup_logging(level: str = "INFO", *, secrets: list[str] | None = None, stream=None) -> RedactSecrets:
    """One stderr handler with redaction; chatty libraries kept at WARNING (they log update ids)."""
    redactor = RedactSecrets(secrets)
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(redactor)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # aiosqlite logs SQL parameters at DEBUG: sealed bytes mostly, but announcements are plain text.
    for noisy in ("aiogram.event", "aiogram.dispatcher", "aiohttp.access", "sqlalchemy.engine", "alembic", "aiosqlite"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    return redactor
