"""What the Zalo clients share: the aiohttp session they hold, and failure lines that carry no payload."""

from __future__ import annotations

import traceback
from pathlib import PurePath

import aiohttp


class HttpClient:
    """Uses the caller's aiohttp session (left open), or makes one on first use (closed by ``close``)."""

    def __init__(self, session: aiohttp.ClientSession | None = None) -> None:
        self._session = session
        self._owns_session = session is None

    async def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession()
            self._owns_session = True
        return self._session

    async def close(self) -> None:
        if self._owns_session and self._session is not None and not self._session.closed:
            await self._session.close()


def failure_line(exc: BaseException) -> str:
    """What failed and where (class, then the innermost frames), without the exception's own words.

    Used instead of ``log.exception``: an exception's message can quote what it choked on (a citizen's
    words, a chat id, a database statement's parameters), and a traceback prints that message."""
    frames = traceback.extract_tb(exc.__traceback__)[-3:]
    where = " < ".join(f"{'/'.join(PurePath(f.filename).parts[-2:])}:{f.lineno} in {f.name}" for f in reversed(frames))
    return f"{type(exc).__name__} at {where}" if where else type(exc).__name__
