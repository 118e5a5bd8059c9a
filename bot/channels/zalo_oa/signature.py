"""The webhook signature: ``mac = sha256(app_id + raw body + timestamp + OA secret key)``, as Zalo's Java SDK
computes it (zaloplatform/zalo-java-sdk, MacUtils.java ``buildMac``) and Chatwoot checks it (app/controllers/
webhooks/zalo_oa_controller.rb); retries and their timing from VinFleet §13.2 (see docs/zalo-oa.md)."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Any


SIGNATURE_HEADER = "X-ZEvent-Signature"
TIMESTAMP_HEADER = "X-ZEvent-Timestamp"
# How old a correctly signed event may be and still be taken. Zalo sends an event it could not deliver again,
# byte for byte (the same timestamp, the same signature), 30 s, 5 min, 15 min, 30 min and 1 h later (about
# 1 h 51 min in all; one guide says it keeps trying "within 12 hours"). 24 hours outlasts both readings and
# a clock that is off by minutes; within it, a replay is harmless: it is found by its msg_id (KEEP_EVENTS).
ACCEPT_FOR = timedelta(hours=24)
CLOCK_SKEW = timedelta(minutes=10)  # an event from this far "in the future" is still Zalo's clock, not ours
_HEX64 = re.compile(r"[0-9a-f]{64}")


def signature_of(*, app_id: str, raw: bytes, timestamp: str, secret_key: str) -> str:
    """hex(sha256(app_id + raw body + timestamp + OA secret key)): what Zalo puts after "mac=" (see above)."""
    return hashlib.sha256(app_id.encode() + raw + timestamp.encode() + secret_key.encode()).hexdigest()


def epoch_ms(value: Any) -> int | None:
    text = str(value).strip() if value is not None else ""
    if not text.isdigit():
        return None
    number = int(text)
    return number * 1000 if number < 100_000_000_000 else number  # seconds, should Zalo ever send them


@dataclass(frozen=True)
class Verdict:
    status: int  # what the webhook answers
    event: dict | None = None  # the verified event (None: the probe, a refusal, or a signed body we cannot read)
    why: str | None = None  # a refusal's or an unreadable body's reason, in fixed words (for the log line)


BAD_SIGNATURE, TOO_OLD, NOT_AN_OBJECT = ("bad or missing signature", "signed, but older than Zalo retries",
                                         "signed, but not a JSON object")


def _as_text(value: str | bytes | None) -> str:
    """A header as ASCII text; any other byte makes it no signature at all (rather than an error)."""
    if isinstance(value, bytes):
        try:
            value = value.decode("ascii")
        except UnicodeDecodeError:
            return ""
    return (value or "").strip()


def verify_event(raw: bytes, signature: str | bytes | None, *, app_id: str, secret_key: str, now_ms: int,
                 timestamp_header: str | bytes | None = None) -> Verdict:
    """Check a webhook call over its raw bytes: 200 with the event, 200 for the unsigned ``{}`` probe, 200
    without an event for a signed body that is not an event object, else 401.

    Accepted for as long as Zalo retries (ACCEPT_FOR): a retry carries the first delivery's bytes, timestamp
    and signature, and refusing it would lose the event; replays within that time are found by msg_id."""
    try:
        body = json.loads(raw) if raw.strip() else {}
    except (ValueError, RecursionError):  # RecursionError: "[[[[…" nested past the parser's depth
        body = None
    if body == {}:
        return Verdict(200)  # the check Zalo makes when the URL is saved: carries no event, changes nothing
    if not app_id or not secret_key:
        return Verdict(401, why=BAD_SIGNATURE)
    given = _as_text(signature).lower()
    given = given[4:].strip() if given.startswith("mac=") else given
    if not _HEX64.fullmatch(given):
        return Verdict(401, why=BAD_SIGNATURE)
    body_ts = str(body.get("timestamp")).strip() if isinstance(body, dict) and body.get("timestamp") is not None \
        else None
    stamps = [stamp for stamp in (body_ts, _as_text(timestamp_header)) if stamp and epoch_ms(stamp) is not None]
    matched = [stamp for stamp in dict.fromkeys(stamps) if hmac.compare_digest(
        signature_of(app_id=app_id, raw=raw, timestamp=stamp, secret_key=secret_key), given)]
    if not matched:
        return Verdict(401, why=BAD_SIGNATURE)
    # The age is the body's own timestamp when it has one (the hash covers it), and every stamp that matched.
    ages = [now_ms - epoch_ms(stamp) for stamp in ([body_ts] if body_ts and epoch_ms(body_ts) is not None else []) + matched]
    if any(age > ACCEPT_FOR.total_seconds() * 1000 or age < -CLOCK_SKEW.total_seconds() * 1000 for age in ages):
        return Verdict(401, why=TOO_OLD)
    if not isinstance(body, dict):
        return Verdict(200, why=NOT_AN_OBJECT)  # Zalo's, and unreadable: acknowledged so it is not sent again
    return Verdict(200, body)


