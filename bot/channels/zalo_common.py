"""What the two Zalo clients (the Zalo Bot Platform and the Zalo OA) share: one JSON POST whose failures
carry no URL or payload, a capped download of a citizen's file, the file's MIME type, and the line that
replaces a button Zalo cannot show ("type this instead")."""

from __future__ import annotations

import json
import mimetypes
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from bot.channels.http_client import HttpClient
from handlers.messages import Reply, TypeInstead

Fetcher = Callable[[str], Callable[[], Awaitable[bytes]]]


class ZaloCallError(Exception):
    """A Zalo call that did not succeed. Carries Zalo's code and words and the method, never a token, a URL, an
    id or the text we sent."""

    platform = "Zalo"

    def __init__(self, error_code: int | None, description: str, *, method: str = "") -> None:
        self.error_code, self.description, self.method = error_code, description, method
        code = f" {error_code}" if error_code is not None else ""
        super().__init__(f"{self.platform} {method or 'call'} failed:{code} {description}")


class ZaloHttpClient(HttpClient):
    """An aiohttp client whose failures are ``error`` (a ZaloCallError), worded without what was sent."""

    error: type[ZaloCallError] = ZaloCallError
    timeout: float = 20.0

    async def post_json(self, url: str, *, method: str, timeout: float | None = None, **request: Any) -> tuple[int, dict]:
        """POST and read a JSON object back: (HTTP status, body); anything else raises ``error``."""
        session = await self._http()
        failure: str | None = None
        try:
            async with session.post(url, timeout=aiohttp.ClientTimeout(total=timeout or self.timeout),
                                    **request) as response:
                status, raw = response.status, await response.read()
        except TimeoutError:
            failure = "no answer in time"
        except aiohttp.ClientError as exc:
            # Only the class name: aiohttp's messages may quote the URL, and the URL may hold the token.
            failure = f"network error ({type(exc).__name__})"
        if failure is not None:  # raised outside the except block so no exception with the URL is chained
            raise self.error(None, failure, method=method)
        body = json_object(raw)
        if body is None:
            raise self.error(status if status >= 400 else None, f"HTTP {status}, answer is not Zalo JSON",
                             method=method)
        return status, body

    async def download(self, url: str, *, max_bytes: int) -> bytes:
        """A citizen's file from Zalo's URL; at most ``max_bytes + 1`` bytes: one byte over the cap, rather than
        an error, lets the handlers say "too large" instead of "could not be downloaded"."""
        if urlsplit(url).scheme not in ("http", "https"):
            raise self.error(None, "file URL is not http(s)", method="download")
        chunks: list[bytes] = []
        failure: str | None = None
        try:
            async with (await self._http()).get(url, timeout=aiohttp.ClientTimeout(total=max(self.timeout, 60))) \
                    as response:
                if response.status != 200:
                    failure = f"HTTP {response.status}"
                else:
                    size = 0
                    async for chunk in response.content.iter_chunked(64 * 1024):
                        chunks.append(chunk)
                        size += len(chunk)
                        if size > max_bytes:
                            break
        except TimeoutError:
            failure = "no answer in time"
        except aiohttp.ClientError as exc:
            failure = f"network error ({type(exc).__name__})"  # never the URL: it may carry ids
        if failure is not None:
            raise self.error(None, failure, method="download")
        return b"".join(chunks)[:max_bytes + 1]

    def fetcher(self, max_bytes: int) -> Fetcher:
        """URL → the lazy downloader an IncomingFile holds: nothing is fetched unless the tip line asks."""
        def for_url(url: str) -> Callable[[], Awaitable[bytes]]:
            async def fetch() -> bytes:
                return await self.download(url, max_bytes=max_bytes)
            return fetch
        return for_url


def json_object(raw: bytes) -> dict | None:
    """The answer as a JSON object; None for anything else (Zalo's error pages, a proxy's HTML)."""
    try:
        body = json.loads(raw)
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def clean(text: Any, hidden: Iterable[Any]) -> str:
    """Zalo's own words, for a log line: short, and never quoting a token or what we sent."""
    text = str(text or "")
    for value in hidden:
        if isinstance(value, str) and len(value) >= 4:
            text = text.replace(value, "<redacted>")
    return text[:300]


def int_or_none(value: Any) -> int | None:
    """An error code as Zalo wrote it (a number, or a number in a string)."""
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def url_of(value: Any) -> str | None:
    return value if isinstance(value, str) and value.startswith(("http://", "https://")) else None


def mime_of(url: str, default: str) -> str:
    """The type a file's name or URL shows, if it is of the kind expected (an image, a sound …); else ``default``."""
    guessed = mimetypes.guess_type(urlsplit(url).path)[0]
    return guessed if guessed and guessed.split("/")[0] == default.split("/")[0] else default


def with_hint(reply: Reply, hints: Mapping[TypeInstead, Mapping[str, str]]) -> str:
    """The reply's text with a "type this instead" line where it asks for a location or contact the platform
    has no button for, in the reply's own language."""
    if reply.type_instead is not None:
        texts = hints[reply.type_instead]
        hint = texts.get(reply.language or "vi", texts["vi"])
    elif label := reply.location_button or reply.contact_button:
        hint = f"✍️ {label}"  # a button no step kind asked for: still tell the citizen it is there
    else:
        return reply.text
    return f"{reply.text}\n\n{hint}" if reply.text else hint
