"""What handlers work with: storage, keys, clock and the tip line's settings (built by bot/)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from handlers.areas import AreaIndex
from handlers.questionnaire import Questionnaire, load_questionnaire
from storage.blobs import BlobStore
from storage.crypto import Keyring
from storage.db import Database

VIETNAM = ZoneInfo("Asia/Ho_Chi_Minh")


@dataclass(frozen=True)
class Limits:
    tips_per_day: int = 5
    messages_per_minute: int = 20
    status_checks_per_hour: int = 10
    draft_ttl: timedelta = timedelta(hours=24)
    max_files: int = 10
    max_file_bytes: int = 20 * 1024 * 1024


@dataclass(frozen=True)
class TipLineSettings:
    areas: AreaIndex
    questionnaire: Questionnaire = field(default_factory=load_questionnaire)
    limits: Limits = field(default_factory=Limits)
    default_language: str = "vi"
    emergency_number: str = "113"


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


@dataclass
class Services:
    """Everything a handler needs; tests build one around a temporary database and keyring."""

    db: Database
    keyring: Keyring
    blobs: BlobStore
    settings: TipLineSettings
    clock: Callable[[], datetime] = utc_now
