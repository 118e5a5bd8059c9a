"""Reply → OA messages: 2,000-character parts, oa.query.hide buttons four at a time, photos fitted under
Zalo's "jpg/png, ≤ 1 MB" (VinFleet §5.3, §5.8; Chatwoot lib/integrations/zalo/uploader.rb; the PHP SDK's
"Only support 4 buttons"); see docs/zalo-oa.md."""

from __future__ import annotations

import io
from dataclasses import dataclass, field

from bot.channels.zalo_common import with_hint
from handlers.messages import Choice, Reply, TypeInstead, split_text


TEXT_LIMIT = 2000
BUTTONS_PER_MESSAGE = 4  # Zalo's page says up to 5 (see above); the PHP SDK's own message says 4: the smaller
BUTTON_TITLE_LIMIT = 100
# "jpg/png, ≤ 1 MB" (upload/image, see above). Read as 1,000,000 bytes, not 1 MiB (1,048,576): under either
# reading of Zalo's "MB" it is accepted; a photo over it is shrunk, else named in words.
IMAGE_LIMIT = 1_000_000


_HINTS = {
    TypeInstead.ADDRESS: {"vi": "📍 Trên Zalo, bạn có thể gửi vị trí bằng mục «Vị trí», hoặc nhập địa chỉ.",
                          "en": "📍 On Zalo you can send a location with «Location», or type the address."},
    TypeInstead.PHONE: {"vi": "✍️ Trên Zalo, hãy nhập số điện thoại của bạn.",
                        "en": "✍️ On Zalo, please type your phone number."},
}
FILE_NOTICES = {
    "vi": "📎 Một tệp ({kind}, {size}) không gửi được qua Zalo OA; tệp vẫn được lưu trong tin báo.",
    "en": "📎 A file ({kind}, {size}) cannot be sent through Zalo OA; it is still kept with the tip.",
}


@dataclass
class Part:
    """One OA message: text, and the buttons that go under it."""

    text: str
    choices: list[Choice] = field(default_factory=list)


def render(reply: Reply) -> list[Part]:
    """The reply as OA messages: hints for what OA has no button for, 2,000-character parts, buttons under
    the last part, BUTTONS_PER_MESSAGE at a time (further ones under a "…" of their own)."""
    text = with_hint(reply, _HINTS)
    parts = [Part(p) for p in split_text(text, TEXT_LIMIT)] if text.strip() else []
    chunks = [reply.choices[i:i + BUTTONS_PER_MESSAGE] for i in range(0, len(reply.choices), BUTTONS_PER_MESSAGE)]
    for index, chunk in enumerate(chunks):
        if index == 0 and parts:
            parts[-1].choices = chunk
        else:
            parts.append(Part("…", chunk))
    return parts


def fit_image(data: bytes, limit: int) -> tuple[bytes, str] | None:
    """The image as a JPEG of at most ``limit`` bytes, shrunk if need be; None when it cannot be made to fit."""
    from PIL import Image, UnidentifiedImageError
    try:
        image = Image.open(io.BytesIO(data))
        image.load()
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError):
        return None
    if len(data) <= limit and image.format in ("JPEG", "PNG"):
        return data, "image/jpeg" if image.format == "JPEG" else "image/png"
    image = image.convert("RGB")
    for side, quality in ((2048, 85), (1600, 80), (1280, 70), (960, 60), (640, 50)):
        copy = image.copy()
        copy.thumbnail((side, side))
        out = io.BytesIO()
        copy.save(out, format="JPEG", quality=quality)
        if out.tell() <= limit:
            return out.getvalue(), "image/jpeg"
    return None


def human_size(size: int) -> str:
    return f"{size / (1024 * 1024):.1f} MB" if size >= 1024 * 1024 else f"{max(1, size // 1024)} KB"



def button_title(label: str) -> str:
    return label if len(label) <= BUTTON_TITLE_LIMIT else label[:BUTTON_TITLE_LIMIT - 1] + "…"


