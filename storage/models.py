"""Tables. Columns in clear are only what triage sorts and counts; everything else is sealed."""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import Column, LargeBinary, UniqueConstraint
from sqlmodel import Field, SQLModel


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


# Timestamps are aware datetimes stored as UTC (SQLModel's UTCDateTime); people see Asia/Ho_Chi_Minh.


class DataKeyRecord(SQLModel, table=True):
    """A per-tip (or per-draft) data key, wrapped by a key-encryption key from the keyring."""

    __tablename__ = "data_key"
    id: str = Field(primary_key=True, max_length=32)  # the tip id (a draft's id becomes its tip's)
    kek_id: str = Field(index=True, max_length=16)
    wrapped: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    created_at: datetime = Field(default_factory=utcnow)


class Conversation(SQLModel, table=True):
    """Where one chat stands in a conversation; the draft's answers are sealed."""

    __tablename__ = "conversation"
    id: int | None = Field(default=None, primary_key=True)
    chat_key: str = Field(unique=True, max_length=64)  # keyed pseudonym of channel + chat id
    channel: str = Field(max_length=16)
    language: str | None = Field(default=None, max_length=8)  # chosen with /language
    # Ids of the menu buttons last shown outside a tip-off, so "2" typed where there are no buttons
    # means the second of them (inside a tip-off the questionnaire knows its own choices).
    offered: str | None = Field(default=None, max_length=255)
    flow: str | None = Field(default=None, max_length=32)
    draft_id: str | None = Field(default=None, max_length=32)
    draft: bytes | None = Field(default=None, sa_column=Column(LargeBinary, nullable=True))
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow, index=True)


class ProcessedUpdate(SQLModel, table=True):
    """A platform update already handled; a redelivery of it changes nothing."""

    __tablename__ = "processed_update"
    channel: str = Field(primary_key=True, max_length=16)
    update_id: str = Field(primary_key=True, max_length=64)
    handled_at: datetime = Field(default_factory=utcnow, index=True)


class RateCounter(SQLModel, table=True):
    """Per-pseudonym counters in fixed windows (flood, tips a day, /status attempts)."""

    __tablename__ = "rate_counter"
    chat_key: str = Field(primary_key=True, max_length=64)
    bucket: str = Field(primary_key=True, max_length=16)
    window_start: datetime
    count: int = 0


class Tip(SQLModel, table=True):
    """A submitted tip: clear triage columns here, sealed answers in TipField."""

    __tablename__ = "tip"
    id: str = Field(primary_key=True, max_length=32)
    ref: str = Field(unique=True, max_length=16)  # what officers type: short, random, not the receipt
    channel: str = Field(max_length=16)
    category: str = Field(index=True, max_length=32)
    area_code: str = Field(index=True, max_length=32)
    urgent: bool = False
    status: str = Field(default="new", index=True, max_length=16)
    unit_id: str | None = Field(default=None, index=True, max_length=32)
    attachment_count: int = 0
    receipt_hash: str = Field(unique=True, max_length=64)
    created_at: datetime = Field(default_factory=utcnow, index=True)
    updated_at: datetime = Field(default_factory=utcnow)
    claimed_by: int | None = Field(default=None, index=True)  # officer id
    claimed_at: datetime | None = None
    verdict_at: datetime | None = None
    verdict_reason: str | None = Field(default=None, max_length=32)  # a code from the reasons list
    case_ref: str | None = Field(default=None, index=True, max_length=64)  # the case (vụ) it helped clarify
    subject_count: int = 0  # subjects (đối tượng) involved in that case
    alerted_at: datetime | None = None  # when officers were last reminded that it waits
    purged_at: datetime | None = None  # sealed content deleted under the retention rules; counts stay


class TipField(SQLModel, table=True):
    """One sealed answer of a tip (text, address, location, contact, reply route, ...)."""

    __tablename__ = "tip_field"
    tip_id: str = Field(primary_key=True, foreign_key="tip.id", ondelete="CASCADE", max_length=32)
    name: str = Field(primary_key=True, max_length=32)
    sealed: bytes = Field(sa_column=Column(LargeBinary, nullable=False))


class Attachment(SQLModel, table=True):
    """Evidence kept as an encrypted file with a random name; the platform's file id is not kept."""

    __tablename__ = "attachment"
    __table_args__ = (UniqueConstraint("blob_name"),)
    id: str = Field(primary_key=True, max_length=32)
    owner_id: str = Field(index=True, max_length=32)  # draft id, then the tip id (the same value)
    kind: str = Field(max_length=16)  # photo, video, voice, audio, document
    size: int
    blob_name: str = Field(max_length=64)
    meta: bytes = Field(sa_column=Column(LargeBinary, nullable=False))  # sealed: filename, mime
    created_at: datetime = Field(default_factory=utcnow)


class Officer(SQLModel, table=True):
    """An enrolled officer (cán bộ): known by chat pseudonym; reachable through a sealed route."""

    __tablename__ = "officer"
    id: int | None = Field(default=None, primary_key=True)
    chat_key: str = Field(unique=True, max_length=64)
    channel: str = Field(max_length=16)
    unit_id: str = Field(index=True, max_length=32)
    role: str = Field(max_length=16)  # officer, supervisor, admin
    name: str = Field(max_length=100)  # how colleagues and the audit log name them
    route_key_id: str = Field(max_length=32)  # data key that seals the reply route
    route: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    enrolled_at: datetime = Field(default_factory=utcnow)
    revoked_at: datetime | None = None


class Invite(SQLModel, table=True):
    """A one-time enrolment code, stored as a keyed hash, valid for a day."""

    __tablename__ = "invite"
    code_hash: str = Field(primary_key=True, max_length=64)
    unit_id: str = Field(max_length=32)
    role: str = Field(max_length=16)
    name: str = Field(max_length=100)
    created_at: datetime = Field(default_factory=utcnow)
    expires_at: datetime
    used_at: datetime | None = None
    officer_id: int | None = None


class FollowUp(SQLModel, table=True):
    """An officer's question waiting for a tipster; which tip it is about is sealed."""

    __tablename__ = "follow_up"
    id: str = Field(primary_key=True, max_length=32)  # also the owner of the data key sealing `sealed`
    chat_key: str = Field(index=True, max_length=64)  # the tipster's pseudonym
    sealed: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    created_at: datetime = Field(default_factory=utcnow)


class AuditEntry(SQLModel, table=True):
    """Append-only, hash-chained: who viewed, decrypted, changed or exported what, and when."""

    __tablename__ = "audit_entry"
    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(default_factory=utcnow, index=True)
    actor: str = Field(max_length=64)  # "officer:12", "cli", "system"
    action: str = Field(max_length=32)
    tip_ref: str | None = Field(default=None, index=True, max_length=16)
    detail: str = Field(default="", max_length=255)  # never tip content
    prev_hash: str = Field(max_length=64)
    hash: str = Field(max_length=64)
