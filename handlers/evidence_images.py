"""Evidence images are fetched and cleaned before the turn's transaction opens, in the image worker: a
decompression bomb is refused from its header, a large photo takes its seconds without holding the
event loop or the database (on SQLite, the one write lock every chat waits for)."""

from __future__ import annotations

import logging

from handlers.messages import CleanedImage, Inbound, IncomingFile
from storage.media import ImageTooLarge, UnsupportedImage, clean_image

log = logging.getLogger(__name__)


def is_image(incoming: IncomingFile) -> bool:
    """A photo, or any file sent as an image type (a Telegram document "image/png" too)."""
    return incoming.kind == "photo" or (incoming.mime or "").startswith("image/")


async def clean(data: bytes) -> CleanedImage:
    """The image without its metadata, or why it was refused."""
    try:
        cleaned, mime = await clean_image(data)
    except ImageTooLarge:
        return CleanedImage(refusal="too_large")
    except UnsupportedImage:
        return CleanedImage(refusal="unreadable")
    except Exception as exc:  # noqa: BLE001  (a hostile file must be refused, not answered "send it again")
        log.warning("evidence image refused: %s", type(exc).__name__)
        return CleanedImage(refusal="unreadable")
    return CleanedImage(data=cleaned, mime=mime)


async def clean_images_first(inbound: Inbound, *, max_file_bytes: int) -> None:
    """Fetch and clean each image of the update now; the turn then only stores what came out.
    A file too large or that could not be fetched is left as it came: the turn says so, as before."""
    for incoming in inbound.files:
        if not is_image(incoming) or (incoming.size is not None and incoming.size > max_file_bytes):
            continue
        try:
            data = await incoming.fetch()
        except Exception:  # noqa: BLE001  (the turn fetches again, and tells the citizen if it fails)
            continue
        if len(data) <= max_file_bytes:
            incoming.cleaned = await clean(data)
