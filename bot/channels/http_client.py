"""The aiohttp session the Zalo clients share the handling of."""

from __future__ import annotations

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
