"""Removes metadata (EXIF, GPS, XMP, comments) from images before they are stored: decoded with a pixel
cap, in one worker thread, so that a decompression bomb is refused from its header and a large photo
never holds up the event loop (nor, called before the turn's transaction, the database)."""

from __future__ import annotations

import asyncio
import functools
import io
import warnings
from concurrent.futures import ThreadPoolExecutor

# 40 million pixels: an 8000 × 5000 photo, beyond any phone or camera a tipster uses (Telegram's own photos
# are at most 2560 px a side). Decoding one takes ~120 MB per copy of the pixels; a 13000 × 13000 PNG
# of 0.5 MB would take 2.4 GB and seconds of CPU, and is refused before a pixel is decoded.
MAX_PIXELS = 40_000_000
# One image at a time, in a thread of its own: memory stays bounded by one image however many arrive,
# and Pillow's decoders release the GIL, so the event loop goes on serving other chats meanwhile.
_WORKER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tinbao-image")
# Pillow warns at open past ~89 M pixels; our own cap, far lower, refuses those before decoding anyway.
# (Its DecompressionBombWarning, named by module and message: Pillow is not loaded yet.)
warnings.filterwarnings("ignore", message=r"Image size \(\d+ pixels\) exceeds limit", module=r"PIL\.Image")

# Formats we can re-encode without metadata; anything else claiming to be an image is refused
# rather than stored with a location that could identify the tipster.
_SAVE_AS = {"JPEG": "JPEG", "PNG": "PNG", "WEBP": "WEBP", "GIF": "PNG", "BMP": "PNG", "TIFF": "PNG", "MPO": "JPEG"}


@functools.cache
def _pillow():
    """Pillow, loaded at the first image a citizen sends: a worker that has cleaned none does not carry its
    ~2 MB (bench/RESULTS.md, "Memory of an idle worker")."""
    from PIL import Image, ImageOps, UnidentifiedImageError
    return Image, ImageOps, UnidentifiedImageError


class UnsupportedImage(Exception):
    """The bytes are not an image we can clean."""


class ImageTooLarge(UnsupportedImage):
    """More pixels than MAX_PIXELS: refused from the header, nothing decoded."""


def strip_image_metadata(data: bytes, *, max_pixels: int = MAX_PIXELS) -> tuple[bytes, str]:
    """Re-encode the pixels only; returns (clean bytes, MIME type)."""
    Image, ImageOps, UnidentifiedImageError = _pillow()
    try:
        with Image.open(io.BytesIO(data)) as img:
            fmt = img.format or ""
            if fmt not in _SAVE_AS:
                raise UnsupportedImage(f"image format {fmt or 'unknown'} is not supported")
            width, height = img.size  # from the header: nothing is decoded yet
            if width * height > max_pixels:
                raise ImageTooLarge(f"{width} x {height} pixels is more than {max_pixels}")
            # Keep what the photo shows the right way up once the orientation tag is gone.
            upright = ImageOps.exif_transpose(img)
            target = _SAVE_AS[fmt]
            if target == "JPEG" and upright.mode not in ("RGB", "L"):
                upright = upright.convert("RGB")
            # A new image from the pixels carries no info dict, EXIF, XMP or ICC comments along.
            clean = Image.frombytes(upright.mode, upright.size, upright.tobytes())
            if upright.mode == "P" and upright.getpalette():
                clean.putpalette(upright.getpalette())
            out = io.BytesIO()
            options = {"quality": 92} if target in ("JPEG", "WEBP") else {}
            clean.save(out, format=target, **options)
    except Image.DecompressionBombError as exc:  # Pillow's own cap, far above ours: a bomb all the same
        raise ImageTooLarge(str(exc)) from exc
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise UnsupportedImage(str(exc)) from exc
    return out.getvalue(), Image.MIME[target]


async def clean_image(data: bytes) -> tuple[bytes, str]:
    """``strip_image_metadata`` in the image worker, awaited without blocking the event loop."""
    return await asyncio.get_running_loop().run_in_executor(_WORKER, strip_image_metadata, data)
