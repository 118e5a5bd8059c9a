"""Removes metadata (EXIF, GPS, XMP, comments) from images before they are stored."""

from __future__ import annotations

import io

from PIL import Image, ImageOps, UnidentifiedImageError

# Formats we can re-encode without metadata; anything else claiming to be an image is refused
# rather than stored with a location that could identify the tipster.
_SAVE_AS = {"JPEG": "JPEG", "PNG": "PNG", "WEBP": "WEBP", "GIF": "PNG", "BMP": "PNG", "TIFF": "PNG", "MPO": "JPEG"}


class UnsupportedImage(Exception):
    """The bytes are not an image we can clean."""


def strip_image_metadata(data: bytes) -> tuple[bytes, str]:
    """Re-encode the pixels only; returns (clean bytes, MIME type)."""
    try:
        with Image.open(io.BytesIO(data)) as img:
            fmt = img.format or ""
            if fmt not in _SAVE_AS:
                raise UnsupportedImage(f"image format {fmt or 'unknown'} is not supported")
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
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, ValueError) as exc:
        raise UnsupportedImage(str(exc)) from exc
    return out.getvalue(), Image.MIME[target]
