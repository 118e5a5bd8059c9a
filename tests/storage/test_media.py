"""Images lose every trace of where and with what they were taken, and still show the same picture."""

from __future__ import annotations

import io

import pytest
from PIL import Image, PngImagePlugin

from storage.media import UnsupportedImage, strip_image_metadata
from tests.support.images import GPS_IFD, jpeg_with_gps

ORIENTATION = 0x0112


def _open(data: bytes) -> Image.Image:
    img = Image.open(io.BytesIO(data))
    img.load()
    return img


def test_jpeg_loses_exif_gps_and_comment() -> None:
    original = jpeg_with_gps()
    # The test image really carries what must go.
    src = _open(original)
    assert src.getexif().get_ifd(GPS_IFD)
    assert src.getexif()[ORIENTATION] == 6
    assert b"CanaryPhoneMaker" in original and b"tinbao-test" in original and b"Exif\0\0" in original
    assert src.info.get("comment") == b"tinbao-test"

    clean, mime = strip_image_metadata(original)

    assert mime == "image/jpeg"
    img = _open(clean)
    assert img.format == "JPEG"
    assert len(img.getexif()) == 0
    assert not img.getexif().get_ifd(GPS_IFD)
    assert "exif" not in img.info
    assert "comment" not in img.info
    assert b"Exif\0\0" not in clean
    assert b"CanaryPhoneMaker" not in clean and b"CanaryModel" not in clean
    assert b"tinbao-test" not in clean


def test_jpeg_comes_out_upright_and_decodes() -> None:
    clean, _ = strip_image_metadata(jpeg_with_gps(size=(64, 48)))
    img = _open(clean)
    # Orientation 6 applied: the 64x48 sensor image is shown 48 wide and 64 high, with no tag left
    # that would make a viewer rotate it a second time.
    assert img.size == (48, 64)
    assert ORIENTATION not in img.getexif()
    r, g, b = img.convert("RGB").getpixel((24, 32))
    assert abs(r - 200) < 12 and g < 45 and b < 45


def test_orientation_is_applied_to_the_pixels_not_just_the_size() -> None:
    # Left half red, right half blue as stored; orientation 6 means "rotate 90° clockwise to view",
    # so the viewer sees red on top and blue at the bottom.
    image = Image.new("RGB", (64, 48), (220, 20, 20))
    image.paste((20, 20, 220), (32, 0, 64, 48))
    exif = Image.Exif()
    exif[ORIENTATION] = 6
    out = io.BytesIO()
    image.save(out, format="JPEG", exif=exif, quality=95)

    img = _open(strip_image_metadata(out.getvalue())[0]).convert("RGB")
    assert img.size == (48, 64)
    top, bottom = img.getpixel((24, 8)), img.getpixel((24, 56))
    assert top[0] > 150 and top[2] < 80, top
    assert bottom[2] > 150 and bottom[0] < 80, bottom


def test_png_loses_text_chunks_and_exif() -> None:
    image = Image.new("RGBA", (20, 10), (10, 120, 40, 255))
    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", "CanaryPhoneMaker at 10.7751N 106.6980E")
    info.add_text("Author", "Nguyen Van Canary")
    exif = Image.Exif()
    exif[0x010F] = "CanaryPhoneMaker"
    exif[GPS_IFD] = {1: "N", 2: (10.0, 46.0, 30.5)}
    out = io.BytesIO()
    image.save(out, format="PNG", pnginfo=info, exif=exif)
    original = out.getvalue()
    assert b"tEXt" in original and b"eXIf" in original and b"CanaryPhoneMaker" in original
    assert _open(original).text.get("Author") == "Nguyen Van Canary"

    clean, mime = strip_image_metadata(original)

    assert mime == "image/png"
    img = _open(clean)
    assert img.format == "PNG"
    assert img.size == (20, 10)
    assert img.text == {}
    assert len(img.getexif()) == 0
    assert "exif" not in img.info
    for chunk in (b"tEXt", b"iTXt", b"zTXt", b"eXIf"):
        assert chunk not in clean
    assert b"Canary" not in clean
    assert img.convert("RGBA").getpixel((5, 5)) == (10, 120, 40, 255)


@pytest.mark.parametrize("data", [
    b"",
    b"this is not an image, just a tip typed into a file",
    b"%PDF-1.7\n1 0 obj\n<< /Type /Catalog >>\nendobj\n",
], ids=["empty", "text", "pdf"])
def test_non_image_is_refused(data: bytes) -> None:
    with pytest.raises(UnsupportedImage):
        strip_image_metadata(data)


def test_truncated_jpeg_is_refused() -> None:
    data = jpeg_with_gps(size=(256, 256))
    with pytest.raises(UnsupportedImage):
        strip_image_metadata(data[: len(data) // 2])
