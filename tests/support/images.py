"""Real JPEGs with real EXIF (GPS, camera, comment), made with Pillow for the tests."""

from __future__ import annotations

import io

from PIL import Image

GPS_IFD = 0x8825


def jpeg_with_gps(*, size=(64, 48), comment: bytes = b"tinbao-test") -> bytes:
    image = Image.new("RGB", size, (200, 30, 30))
    exif = Image.Exif()
    exif[0x010F] = "CanaryPhoneMaker"  # Make
    exif[0x0110] = "CanaryModel X"  # Model
    exif[0x0112] = 6  # Orientation: rotated 90°, so the cleaned image must come out upright (48x64)
    exif[GPS_IFD] = {1: "N", 2: (10.0, 46.0, 30.5), 3: "E", 4: (106.0, 41.0, 55.2)}
    out = io.BytesIO()
    image.save(out, format="JPEG", exif=exif, comment=comment)
    return out.getvalue()
