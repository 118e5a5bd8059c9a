"""Tables. Columns in clear are only what triage sorts and counts; everything else is sealed."""

from __future__ import annotations

from datetime import date, datetime, timezone

from sqlalchemy import Column, Index, LargeBinary, UniqueConstraint, text, util
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


class TipBase(SQLModel):
    """The clear columns a line of the queue shows: reading them needs no key and opens nothing sealed."""

    ref: str = Field(unique=True, max_length=16)  # what officers type: short, random, not the receipt
    category: str = Field(index=True, max_length=32)
    area_code: str = Field(index=True, max_length=32)
    urgent: bool = False
    status: str = Field(default="new", index=True, max_length=16)  # a storage.tip_states.TipStatus
    unit_id: str | None = Field(default=None, index=True, max_length=32)
    attachment_count: int = 0
    created_at: datetime = Field(default_factory=utcnow, index=True)


class Tip(TipBase, table=True):
    """A submitted tip: clear triage columns here, sealed answers in TipField."""

    __tablename__ = "tip"
    id: str = Field(primary_key=True, max_length=32)
    channel: str = Field(max_length=16)
    receipt_hash: str = Field(unique=True, max_length=64)
    updated_at: datetime = Field(default_factory=utcnow)
    claimed_by: int | None = Field(default=None, index=True)  # officer id
    claimed_at: datetime | None = None
    verdict_at: datetime | None = None
    verdict_reason: str | None = Field(default=None, max_length=32)  # a code from the reasons list
    case_ref: str | None = Field(default=None, index=True, max_length=64)  # the case (vụ) it helped clarify
    subject_count: int = 0  # subjects (đối tượng) involved in that case
    alerted_at: datetime | None = None  # when officers were last reminded that it waits
    purged_at: datetime | None = None  # sealed content deleted under the retention rules; counts stay


# The queues officers read, each an index in its own order so a page or a /next reads a few entries, not
# every open tip of the unit: waiting tips (/next), open tips (/queue), judged ones (/judged, latest verdict
# first). Each per unit and once for the whole table (a supervisor's queue spans many units); open tips also
# per holder ("mine") and per area. The open and
# judged ones carry the filter columns, so a filtered page's count reads the index alone. The states are
# storage.tip_states' PENDING, OPEN and JUDGED, written out here: that module imports this one.
_PENDING_SQL = "status IN ('new', 'transferred')"
_OPEN_SQL = "status IN ('new', 'transferred', 'in_review', 'needs_info')"
_JUDGED_SQL = "status IN ('valuable', 'not_valuable')"
_FILTERS = ["status", "category", "area_code", "claimed_by"]


class _PartialIndex(Index):
    """An index on the rows ``where`` holds, in both databases, with PostgreSQL's included columns.

    A partial index exists only as dialect options (``postgresql_where``, ``sqlite_where``), and naming them to
    Index() imports each dialect's module to check them: PostgreSQL's, 2 MB, in every SQLite worker. Here a
    dialect's options are filled in when first read, by that dialect's DDL or by Alembic working on its
    database, so each worker loads only the dialect it uses. (Until then ``dialect_kwargs`` does not list them,
    nor does a copy made by Table.to_metadata.)"""

    def __init__(self, name: str, where: str, *columns, include: list[str]) -> None:
        super().__init__(name, *columns)
        self._options = {"postgresql": {"where": text(where), "include": list(include)},
                         "sqlite": {"where": text(where)}}
        self.dialect_options = util.PopulateDict(self._options_for)

    def _options_for(self, dialect_name: str):
        options = self._kw_reg_for_dialect_cls(dialect_name)
        for key, value in self._options.get(dialect_name, {}).items():
            options[key] = value
        return options


def _queue_index(name: str, where: str, *columns, include: list[str] = ()) -> Index:
    """A partial index of one queue; made from the table's columns, it joins the table's indexes."""
    return _PartialIndex(name, where, *columns, include=list(include))


_queue_index("ix_tip_waiting_queue", _PENDING_SQL, Tip.unit_id, Tip.urgent.desc(), Tip.created_at)
_queue_index("ix_tip_waiting_order", _PENDING_SQL, Tip.urgent.desc(), Tip.created_at, include=["unit_id"])
_queue_index("ix_tip_open_queue", _OPEN_SQL, Tip.unit_id, Tip.urgent.desc(), Tip.created_at, include=_FILTERS)
_queue_index("ix_tip_open_order", _OPEN_SQL, Tip.urgent.desc(), Tip.created_at, include=["unit_id", *_FILTERS])
# "mine" and an area: the planner takes an officer's or a ward's tips for few, as they are among the unit's.
_queue_index("ix_tip_mine_queue", _OPEN_SQL, Tip.claimed_by, Tip.urgent.desc(), Tip.created_at,
             include=["unit_id", *_FILTERS])
_queue_index("ix_tip_area_queue", _OPEN_SQL, Tip.area_code, Tip.urgent.desc(), Tip.created_at,
             include=["unit_id", *_FILTERS])
# Read backwards: the latest verdict first.
_queue_index("ix_tip_judged_queue", _JUDGED_SQL, Tip.unit_id, Tip.verdict_at, Tip.created_at, include=_FILTERS)
_queue_index("ix_tip_judged_order", _JUDGED_SQL, Tip.verdict_at, Tip.created_at, include=["unit_id", *_FILTERS])


class TipInQueue(TipBase):
    """A line of /queue, as handlers read it: the clear columns only, detached from the session."""


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


# --- Festival reminders ----------------------------------------------------------------------------
# Events produce broadcasts (one per reminder of one occurrence, or an admin's announcement); a
# broadcast produces one outbox row per subscriber. Who a subscriber is stays sealed, as for officers.


class ReminderSubscriber(SQLModel, table=True):
    """A citizen who opted in to reminders: known by chat pseudonym, reachable only through a sealed route."""

    __tablename__ = "reminder_subscriber"
    id: int | None = Field(default=None, primary_key=True)
    chat_key: str = Field(unique=True, max_length=64)
    channel: str = Field(max_length=16)
    language: str = Field(default="vi", max_length=8)  # the chat's language when it last used /remind
    active: bool = Field(default=True, index=True)
    route_key_id: str | None = Field(default=None, max_length=32)  # data key sealing the route; shredded on opt-out
    route: bytes | None = Field(default=None, sa_column=Column(LargeBinary, nullable=True))
    opted_in_at: datetime = Field(default_factory=utcnow)
    opted_out_at: datetime | None = None
    opt_out_reason: str | None = Field(default=None, max_length=16)  # citizen, blocked


class ReminderSubscriberArea(SQLModel, table=True):
    """An area (ward, commune or province) whose local events a subscriber wants to hear of."""

    __tablename__ = "reminder_subscriber_area"
    subscriber_id: int = Field(primary_key=True, foreign_key="reminder_subscriber.id", ondelete="CASCADE")
    area_code: str = Field(primary_key=True, index=True, max_length=32)


class ReminderEvent(SQLModel, table=True):
    """A festival day: shipped national days, config ones, and local events added by officers."""

    __tablename__ = "reminder_event"
    id: int | None = Field(default=None, primary_key=True)
    key: str = Field(unique=True, max_length=64)  # "shipped:<id>", "config:<id>", "local:<random>"
    source: str = Field(max_length=16)  # shipped, config, local
    title: str = Field(max_length=200)
    title_en: str | None = Field(default=None, max_length=200)
    description: str = Field(default="", max_length=1000)
    description_en: str | None = Field(default=None, max_length=1000)
    place: str = Field(default="", max_length=200)
    dates: str = Field(max_length=255)  # "08-19" every year, "2026-07-15" once; comma-separated
    start_time: str | None = Field(default=None, max_length=5)  # "19:30", Vietnam time
    offsets: str = Field(max_length=255)  # "7d 08:00,1d 08:00,0d 07:00": days before, at Vietnam time
    area_code: str | None = Field(default=None, index=True, max_length=32)  # None: every subscriber
    unit_id: str | None = Field(default=None, max_length=32)
    created_by: int | None = None  # officer id
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)
    cancelled_at: datetime | None = None


class ReminderBroadcast(SQLModel, table=True):
    """One message to many: an event's reminder for one occurrence, or an admin's one-off announcement."""

    __tablename__ = "reminder_broadcast"
    id: int | None = Field(default=None, primary_key=True)
    key: str = Field(unique=True, max_length=96)  # "event:<id>:<date>:<offset>" makes each reminder once
    kind: str = Field(max_length=16)  # reminder, announcement
    event_id: int | None = Field(default=None, index=True)
    occurs_on: date | None = None  # the occurrence's day, in Vietnam
    reminder_offset: str | None = Field(default=None, max_length=16)  # "7d 08:00": which reminder of the occurrence
    area_code: str | None = Field(default=None, max_length=32)  # None: every subscriber
    text: str | None = Field(default=None, max_length=2000)  # an announcement, as the admin wrote it
    status: str = Field(default="scheduled", index=True, max_length=16)  # draft, scheduled, queued, cancelled
    send_at: datetime = Field(index=True)
    expires_at: datetime | None = None  # what is still unsent then is skipped: the event has begun
    created_by: int | None = None  # officer id
    created_at: datetime = Field(default_factory=utcnow)
    queued_at: datetime | None = None
    cancelled_at: datetime | None = None


class ReminderOutbox(SQLModel, table=True):
    """One message of a broadcast to one subscriber: pending → sending → sent, failed, skipped or unknown."""

    __tablename__ = "reminder_outbox"
    __table_args__ = (UniqueConstraint("broadcast_id", "subscriber_id"),
                      Index("ix_reminder_outbox_due", "status", "not_before"))
    id: int | None = Field(default=None, primary_key=True)
    broadcast_id: int = Field(foreign_key="reminder_broadcast.id", ondelete="CASCADE")
    subscriber_id: int = Field(index=True, foreign_key="reminder_subscriber.id", ondelete="CASCADE")
    status: str = Field(default="pending", max_length=16)
    reason: str | None = Field(default=None, max_length=32)  # why failed or skipped: blocked, outside_window, …
    attempts: int = 0
    not_before: datetime  # quiet hours, backoff and 429 waits push it later
    claimed_by: str | None = Field(default=None, max_length=32)  # the dispatcher sending it
    claimed_at: datetime | None = None
    finished_at: datetime | None = None


class ReminderPace(SQLModel, table=True):
    """The one rate limit shared by every dispatcher in every process: the next free sending slot."""

    __tablename__ = "reminder_pace"
    name: str = Field(primary_key=True, max_length=16)
    next_at: datetime


# --- Zalo Official Account (bot/channels/zalo_oa.py) ------------------------------------------------
# A unit's own OA: its OAuth token pair, the webhook events kept until handled, each citizen's last
# interaction (the 7-day window) and what each oa.query.hide button stands for. Everything that could
# name a citizen or open the OA is sealed; none of these rows holds a Zalo user id in clear.


class ZaloOaToken(SQLModel, table=True):
    """The OA's access and refresh tokens, sealed together and replaced whole at every refresh."""

    __tablename__ = "zalo_oa_token"
    oa_id: str = Field(primary_key=True, max_length=32)
    key_id: str = Field(max_length=32)  # the data key sealing `sealed`
    sealed: bytes = Field(sa_column=Column(LargeBinary, nullable=False))  # {"access_token", "refresh_token"}
    version: int = 1  # +1 at every new pair: a worker holding an older one knows it was replaced
    access_expires_at: datetime
    refreshed_at: datetime = Field(default_factory=utcnow)
    # ok; failed (Zalo refused the refresh token); unknown (it may have been spent: never sent again)
    refresh_state: str = Field(default="ok", max_length=16)
    failed_at: datetime | None = None
    failure: str | None = Field(default=None, max_length=64)  # Zalo's error code and name, never a token


class ZaloOaEvent(SQLModel, table=True):
    """A webhook event, stored sealed before it is handled; its dedup key makes a redelivery a no-op."""

    __tablename__ = "zalo_oa_event"
    id: int | None = Field(default=None, primary_key=True)
    dedup_key: str = Field(unique=True, max_length=64)  # sha256 of the msg_id, or of the whole event without one
    event_name: str = Field(max_length=48)
    key_id: str | None = Field(default=None, max_length=32)  # data key sealing `payload`; shredded once handled
    payload: bytes | None = Field(default=None, sa_column=Column(LargeBinary, nullable=True))
    received_at: datetime = Field(default_factory=utcnow, index=True)
    claimed_by: str | None = Field(default=None, max_length=32)  # the worker handling it
    claimed_at: datetime | None = None
    processed_at: datetime | None = Field(default=None, index=True)


class ZaloOaInteraction(SQLModel, table=True):
    """When a citizen last interacted with the OA (the 7-day window): a key unlike the conversation's, time sealed."""

    __tablename__ = "zalo_oa_interaction"
    seen_key: str = Field(primary_key=True, max_length=64)
    sealed: bytes = Field(sa_column=Column(LargeBinary, nullable=False))


class ZaloOaButton(SQLModel, table=True):
    """What the payload of an oa.query.hide button stands for: sealed, and bound to the chat it was sent to."""

    __tablename__ = "zalo_oa_button"
    token: str = Field(primary_key=True, max_length=16)
    sealed: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    created_at: datetime = Field(default_factory=utcnow, index=True)


class PollerLease(SQLModel, table=True):
    """Which process long-polls a platform: Telegram (and Zalo) give updates to one getUpdates consumer only."""

    __tablename__ = "poller_lease"
    channel: str = Field(primary_key=True, max_length=16)
    holder: str = Field(max_length=64)  # a random id per `tinbao run`, with host and pid to tell the operator
    expires_at: datetime  # renewed well before; a crashed holder's lease runs out by itself


class TurnReply(SQLModel, table=True):
    """The replies of one handled update, sealed, kept until each went out: a redelivered update or a
    restarted worker sends the ones that had not, and never one that may have gone already."""

    __tablename__ = "turn_reply"
    __table_args__ = (UniqueConstraint("channel", "update_id"),)
    id: int | None = Field(default=None, primary_key=True)
    channel: str = Field(max_length=16)
    update_id: str = Field(max_length=64)
    sealed: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    total: int
    # Replies before next_index are done (sent, refused, or unknown after a crash); while in_flight, the one
    # at next_index is being sent by some worker, and one found in flight after a crash is not sent again.
    next_index: int = 0
    in_flight: bool = False
    created_at: datetime = Field(index=True)  # to the minute: only for finding rows a dead worker left


class ReceivedUpdate(SQLModel, table=True):
    """An update taken from a platform that sends nothing twice (Zalo Bot), sealed, until its turn is
    handled: a worker killed in between leaves it to the next one, not lost."""

    __tablename__ = "received_update"
    id: int | None = Field(default=None, primary_key=True)
    channel: str = Field(max_length=16)
    token: str = Field(max_length=32)  # random: binds the sealed bytes to this row
    sealed: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    claimed_at: datetime = Field(index=True)  # to the minute; a claim older than a few minutes is a dead worker's
