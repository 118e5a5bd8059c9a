"""OA webhook events → Inbound. Shapes from VinFleet §13.4–13.5, hoangnd25's notes and logged payloads;
oa.query.hide buttons from Zalo's PHP SDK (MessageBuilder ``buildActionQueryHide``); see docs/zalo-oa.md."""

from __future__ import annotations

import hashlib
import math
import re
from typing import Any

from bot.channels.zalo_common import Fetcher, mime_of, url_of
from handlers.messages import Contact, IncomingFile, Inbound, Location


CHANNEL = "zalo_oa"
USER_MESSAGES = {f"user_send_{kind}" for kind in ("text", "image", "gif", "link", "audio", "video", "sticker",
                                                  "location", "business_card", "file")}
HANDLED_EVENTS = USER_MESSAGES | {"follow", "unfollow", "user_submit_info"}
ECHOES = {"user_received_message", "user_seen_message"}  # and every oa_send_*
BUTTON_PAYLOAD = re.compile(r"#tb([a-z2-7]{12})")
STALE_BUTTON = "zalo_oa:stale"  # an old button whose meaning is forgotten: the handlers answer it like any unknown one
_HEX64 = re.compile(r"[0-9a-f]{64}")
EVENT_NAME_SHAPE = re.compile(r"[a-z_]{1,48}")  # a name shown in the log only when it looks like Zalo's own


class UndecodableEvent(ValueError):
    """A signed event that cannot become an Inbound. Its words name the shape that was wrong, never the content."""


NO_EVENT_NAME, NO_SENDER, NO_MESSAGE = "no event_name", "no sender id", "no message object"


def _msg_id(event: dict) -> str | None:
    message = event.get("message") if isinstance(event.get("message"), dict) else {}
    msg_id = message.get("msg_id")
    if isinstance(msg_id, bool) or not isinstance(msg_id, (str, int)) or msg_id == "":
        return None
    return str(msg_id)


def user_of(event: dict) -> str | None:
    holder = event.get("follower") if event.get("event_name") in ("follow", "unfollow") else event.get("sender")
    user = holder.get("id") if isinstance(holder, dict) else None
    if isinstance(user, bool) or not isinstance(user, (str, int)) or str(user) == "":
        return None
    return str(user)


def dedup_key(event: dict, oa_id: str) -> str:
    """sha256 of the msg_id; events without one (follow, …) by what they say and when (a retry says the same)."""
    msg_id = _msg_id(event)
    basis = (f"msg:{msg_id}" if msg_id is not None else
             f"event:{event.get('event_name')}:{user_of(event)}:{event.get('timestamp')}")
    return hashlib.sha256(f"{oa_id}|{basis}".encode()).hexdigest()


def _update_id(event: dict, oa_id: str) -> str:
    msg_id = _msg_id(event)
    if msg_id is not None:
        return msg_id if len(msg_id) <= 64 else hashlib.sha256(msg_id.encode()).hexdigest()
    return dedup_key(event, oa_id)


def _size(value: Any) -> int | None:
    try:
        return int(str(value))
    except (TypeError, ValueError):
        return None


def _coordinate(value: Any) -> float | None:
    try:
        number = float(str(value).strip())
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


_FILE_KINDS = {"user_send_image": ("photo", "image/jpeg"), "user_send_audio": ("voice", "audio/aac"),
               "user_send_video": ("video", "video/mp4"), "user_send_file": ("document", "application/octet-stream")}


def to_inbound(event: dict, *, oa_id: str, fetcher: Fetcher) -> Inbound | None:
    """An OA event as the handlers see it; None for events the tip line does not answer (unfollow, echoes, …);
    UndecodableEvent for one that cannot be read (no event name, no sender, no message).

    Lenient where the citizen can still be answered: a message whose parts are missing becomes
    ``unsupported``, and the handlers say so. A button's payload stays in ``text`` here; the channel turns
    it into the choice it stands for."""
    name = event.get("event_name")
    if not isinstance(name, str) or not name:
        raise UndecodableEvent(NO_EVENT_NAME)
    if name not in HANDLED_EVENTS:
        return None
    user = user_of(event)
    if user is None:
        raise UndecodableEvent(NO_SENDER)
    if user == oa_id:
        return None
    if name in USER_MESSAGES and not isinstance(event.get("message"), dict):
        raise UndecodableEvent(NO_MESSAGE)
    inbound = Inbound(channel=CHANNEL, chat_id=user, update_id=_update_id(event, oa_id))
    if name == "follow":
        inbound.text = "/start"  # a new follower is greeted like /start: who we are, and what to tap
        return inbound
    if name == "user_submit_info":
        info = event.get("info") if isinstance(event.get("info"), dict) else {}
        phone = info.get("phone")
        if isinstance(phone, (str, int)) and str(phone).strip():
            inbound.contact = Contact(str(phone).strip(), is_own=True)  # from the citizen's own Zalo profile
        else:
            inbound.unsupported = "user_info"
        return inbound
    if name not in USER_MESSAGES:
        return None
    message = event["message"]
    listed = message.get("attachments")
    attachments = [a for a in listed if isinstance(a, dict)] if isinstance(listed, list) else []
    text = message.get("text") if isinstance(message.get("text"), str) and message.get("text").strip() else None
    if name == "user_send_text":
        if text:
            inbound.text = text
        else:
            inbound.unsupported = "empty"
    elif name == "user_send_location":
        payload = attachments[0].get("payload") if attachments and isinstance(attachments[0].get("payload"), dict) else {}
        coordinates = payload.get("coordinates") if isinstance(payload.get("coordinates"), dict) else {}
        lat, lon = _coordinate(coordinates.get("latitude")), _coordinate(coordinates.get("longitude"))
        if lat is not None and lon is not None:
            inbound.location = Location(lat, lon)  # the place's name Zalo adds as text is not an answer
        else:
            inbound.unsupported = "location"
    elif name in _FILE_KINDS:
        kind, default_mime = _FILE_KINDS[name]
        inbound.text = text
        for attachment in attachments:
            payload = attachment.get("payload") if isinstance(attachment.get("payload"), dict) else {}
            url = url_of(payload.get("url"))
            if url:
                filename = payload.get("name") if isinstance(payload.get("name"), str) else None
                inbound.files.append(IncomingFile(kind, _size(payload.get("size")), fetcher(url), filename=filename,
                                                  mime=mime_of(filename or url, default_mime)))
        if not inbound.files:
            inbound.unsupported = kind
    elif name == "user_send_link":
        payload = attachments[0].get("payload") if attachments and isinstance(attachments[0].get("payload"), dict) else {}
        inbound.text = text or url_of(payload.get("url"))  # a scammer's link is a fine answer to "which account"
        if not inbound.text:
            inbound.unsupported = "link"
    else:  # sticker, gif, business card: nothing the tip line can keep
        inbound.unsupported = name.removeprefix("user_send_")
    return inbound


def seen_key(keyring, user_id: str) -> str:
    """The key of a citizen's last-interaction row: unlike their conversation's key, so the two do not link."""
    return keyring.pseudonym("zoa-seen", user_id)


def button_binding(keyring, user_id: str) -> str:
    return keyring.pseudonym("zoa-btn", user_id)


