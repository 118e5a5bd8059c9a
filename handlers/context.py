"""What handlers work with: storage, keys, clock and the tip line's settings (built by bot/)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from handlers.areas import AreaIndex
from handlers.citizen.questionnaire_file import Questionnaire, load_questionnaire
from handlers.units import UnitTree
from storage.audit import AuditAnchor
from storage.blobs import BlobStore
from storage.crypto import Keyring
from storage.db import Database

if TYPE_CHECKING:  # handlers.reminders.festival_calendar needs VIETNAM from here
    from handlers.reminders.festival_calendar import ReminderSettings

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
class Triage:
    unclaimed_alert: timedelta = timedelta(hours=24)  # remind officers of tips nobody took
    review_alert: timedelta = timedelta(hours=72)  # and of tips claimed but not judged
    purge_not_valuable_after: timedelta = timedelta(days=365)
    invite_ttl: timedelta = timedelta(hours=24)
    queue_page: int = 10


@dataclass(frozen=True)
class Stats:
    # A count of fewer tips than this is shown as "<3", so a small commune's figures single out nobody.
    min_cell: int = 3
    # The same for a supervisor's own figures, which stay within the force; None: as strict as min_cell.
    min_cell_supervisors: int | None = None

    def threshold(self, audience: str) -> int:
        """K for figures that may be published ("published") or that a supervisor reads ("supervisors")."""
        if audience == "supervisors" and self.min_cell_supervisors is not None:
            return self.min_cell_supervisors
        return self.min_cell


@dataclass(frozen=True)
class TipLineSettings:
    areas: AreaIndex
    questionnaire: Questionnaire = field(default_factory=load_questionnaire)
    limits: Limits = field(default_factory=Limits)
    default_language: str = "vi"
    emergency_number: str = "113"
    units: UnitTree | None = None
    triage: Triage = field(default_factory=Triage)
    stats: Stats = field(default_factory=Stats)
    reminders: ReminderSettings | None = None  # [reminders]; None: the shipped defaults (see reminders.settings_of)

    @property
    def unit_tree(self) -> UnitTree:
        return self.units or UnitTree([], self.areas)


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
    audit_anchor: AuditAnchor | None = None  # the audit head outside the database (None in most tests)
