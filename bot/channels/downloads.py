"""Fetching a citizen's file from a platform's URL, capped, for the Zalo channels."""

from __future__ import annotations

from urllib.parse import urlsplit

import aiohttp


class DownloadFailed(Exception):
    """The file could not be fetched; the message says why, without the URL (it may carry ids)."""


async def download_capped(session: aiohttp.ClientSession, url: str, *, max_bytes: int, timeout: float) -> bytes:
    """At most ``max_bytes + 1`` bytes: one byte over the cap, rather than an error, lets the handlers
    say "too large" instead of "could not be downloaded"."""
    if urlsplit(url).scheme not in ("http", "https"):
        raise DownloadFailed("file URL is not http(s)")
    chunks: list[bytes] = []
    try:
        async with session.get(url, timeout=aiohttp.ClientTimeout(total=max(timeout, 60))) as response:
            if response.status != 200:
                raise DownloadFailed(f"HTTP {response.status}")
            size = 0
            async for chunk in response.content.iter_chunked(64 * 1024):
                chunks.append(chunk)
                size += len(chunk)
                if size > max_bytes:
                    break
    except TimeoutError:
        raise DownloadFailed("no answer in time") from None
    except aiohttp.ClientError as exc:
        raise DownloadFailed(f"network error ({type(exc).__name__})") from None
    return b"".join(chunks)[:max_bytes + 1]
