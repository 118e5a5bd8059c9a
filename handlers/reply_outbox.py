"""A turn's replies are part of the turn: sealed and committed with its state, then sent one by one, each
marked before it goes. A worker killed before a reply went out leaves it to the redelivered update (or to
the sweep); one killed while a reply was going out leaves that reply as unknown, never sent twice."""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Awaitable, Callable
from datetime import timedelta

from handlers.messages import Choice, Inbound, Location, OutgoingFile, Reply, Route, TypeInstead
from storage import turn_replies as store
from storage.db import DatabaseAway, after_commit, out_of_reach

log = logging.getLogger(__name__)

# What a channel says of one reply it was given: it went out, it was refused for good (a blocked chat,
# a message Telegram rejects), or nobody can tell (a timeout after the request left).
SENT, REFUSED, UNKNOWN = "sent", "refused", "unknown"
ReplySender = Callable[[Reply], Awaitable[str]]
# Long past any delivery under way (a reply's retries take seconds): a row this old was left by a dead worker.
ABANDONED_AFTER = timedelta(minutes=5)


class DeliveryUnknown(Exception):
    """A channel's send gave up without knowing whether the message arrived (a timeout, a dropped link)."""


class TurnReplies(list):
    """The replies of a stored turn still to send (a list of Reply), and the outbox row they came from."""

    def __init__(self, replies: list[Reply], *, outbox: ReplyOutbox, row_id: int, origin: Route, start: int = 0,
                 in_flight_elsewhere: bool = False):
        super().__init__(replies)
        self.outbox, self.row_id, self.origin, self.start = outbox, row_id, origin, start
        # A reply before ``start`` is being sent by another worker, or was when it died: the row is its
        # (or the sweep's, which counts it unknown) to settle, even when nothing is left here to send.
        self.in_flight_elsewhere = in_flight_elsewhere


def _file_json(file: OutgoingFile) -> dict:
    return {"kind": file.kind, "data": base64.b64encode(file.data).decode("ascii"), "filename": file.filename,
            "mime": file.mime}


def _reply_json(reply: Reply) -> dict:
    return {"text": reply.text, "choices": [[c.id, c.label] for c in reply.choices], "columns": reply.columns,
            "location_button": reply.location_button, "contact_button": reply.contact_button,
            "to": [reply.to.channel, reply.to.chat_id] if reply.to else None,
            "files": [_file_json(f) for f in reply.files], "commands_menu": reply.commands_menu,
            "language": reply.language, "type_instead": reply.type_instead.value if reply.type_instead else None,
            "location": [reply.location.latitude, reply.location.longitude] if reply.location else None}


def _reply_from(data: dict) -> Reply:
    return Reply(text=data["text"], choices=[Choice(id=i, label=label) for i, label in data["choices"]],
                 columns=data["columns"], location_button=data["location_button"],
                 contact_button=data["contact_button"], to=Route(*data["to"]) if data["to"] else None,
                 files=[OutgoingFile(kind=f["kind"], data=base64.b64decode(f["data"]), filename=f["filename"],
                                     mime=f["mime"]) for f in data["files"]],
                 commands_menu=data["commands_menu"], language=data["language"],
                 type_instead=TypeInstead(data["type_instead"]) if data["type_instead"] else None,
                 # .get: a reply kept before pins were sent has no location
                 location=Location(*data["location"]) if data.get("location") else None)


def pack(origin: Route, replies: list[Reply]) -> bytes:
    return json.dumps({"origin": [origin.channel, origin.chat_id], "replies": [_reply_json(r) for r in replies]},
                      ensure_ascii=False).encode()


def unpack(payload: bytes) -> tuple[Route, list[Reply]]:
    data = json.loads(payload)
    return Route(*data["origin"]), [_reply_from(r) for r in data["replies"]]


class ReplyOutbox:
    """Keeps each turn's replies with the turn and sends them at most once each."""

    def __init__(self, services) -> None:
        self.services = services
        self.unknown = 0  # replies whose delivery nobody can tell (for /metrics and the log)
        # Rows whose replies all went out, shredded by the next turn's own transaction (or the sweep): a
        # commit of their own would cost every update a third write. Killed before that, such a row's last
        # reply is found in flight and counted unknown: never sent twice.
        self._finished: list[int] = []

    async def keep(self, *, session, inbound: Inbound, replies: list[Reply]) -> TurnReplies:
        """In the turn's transaction: the replies stored sealed, to be sent once it committed."""
        origin = Route(inbound.channel, inbound.chat_id)
        done = list(self._finished)  # shredded in the same round trip as this turn's row is written
        row_id = await store.save_turn_replies(session=session, keyring=self.services.keyring,
                                               channel=inbound.channel, update_id=str(inbound.update_id),
                                               payload=pack(origin, replies), total=len(replies), finished=done)
        self._forget_once_committed(session, done)
        return TurnReplies(replies, outbox=self, row_id=row_id, origin=origin)

    async def left_over(self, *, session, inbound: Inbound) -> TurnReplies | None:
        """For a redelivered update: the replies its first handling did not get out, if any are left."""
        stored = await store.load_turn_replies(session=session, keyring=self.services.keyring,
                                               channel=inbound.channel, update_id=str(inbound.update_id))
        if stored is None:
            return None
        origin, replies = unpack(stored.payload)
        # One still in flight belongs to a worker sending it right now, or to one that died doing so: the
        # delivery starts after it (and takes it only once that worker settled it, or the sweep did).
        start = stored.next_index + (1 if stored.in_flight else 0)
        return TurnReplies(replies[start:], outbox=self, row_id=stored.row_id, origin=origin, start=start,
                           in_flight_elsewhere=stored.in_flight)

    async def deliver(self, replies: TurnReplies, send: ReplySender) -> None:
        """Each reply marked in flight, then sent; a reply another worker has taken is left to it. With
        the database out of reach, DatabaseAway: what is left stays stored for the update's next try."""
        try:
            await self._deliver(replies, send)
        except Exception as exc:
            if out_of_reach(exc):
                raise DatabaseAway() from None
            raise

    async def _deliver(self, replies: TurnReplies, send: ReplySender) -> None:
        db = self.services.db
        own = False
        for offset, reply in enumerate(replies):
            index = replies.start + offset
            if not await store.take_reply(db=db, row_id=replies.row_id, index=index, after_own=own):
                return  # another worker is on this turn's replies: they are its to finish
            own = True
            try:
                outcome = await send(reply)
            except DeliveryUnknown:
                outcome = UNKNOWN
            except Exception as exc:  # noqa: BLE001  (refused by the platform: never sent again)
                if out_of_reach(exc):
                    raise
                log.warning("a reply could not be sent: %s", type(exc).__name__)
                outcome = REFUSED
            if outcome == UNKNOWN:
                self.unknown += 1
                log.warning("a reply's delivery is unknown (no answer from the platform); it is not sent again")
        if own or not (replies or replies.in_flight_elsewhere):
            self._finished.append(replies.row_id)

    async def flush(self) -> None:
        """Shred now the rows of turns whose replies all went out (at a stop; in tests)."""
        if self._finished:
            async with self.services.db.transaction() as session:
                await self._shred_finished(session)

    async def _shred_finished(self, session) -> None:
        done = list(self._finished)
        if not done:
            return
        await store.finish_turn_replies(session=session, row_ids=done)
        self._forget_once_committed(session, done)

    def _forget_once_committed(self, session, done: list[int]) -> None:
        # Forgotten only once the shredding committed: a turn that rolls back leaves them to the next one
        # (dropped here, the sweep would later find their last reply in flight and count it unknown).
        if done:
            after_commit(session, lambda: self._forget(done))

    def _forget(self, shredded: list[int]) -> None:
        gone = set(shredded)
        self._finished = [row_id for row_id in self._finished if row_id not in gone]

    async def sweep(self, send_to: Callable[[Route, Reply], Awaitable[str]], *,
                    older_than: timedelta = ABANDONED_AFTER) -> int:
        """Send what dead workers left unsent (a reply they left in flight is passed as unknown); returns
        how many turns were taken up."""
        db, taken = self.services.db, 0
        async with db.transaction() as session:
            await self._shred_finished(session)
            left = await store.abandoned_turns(session=session, keyring=self.services.keyring, older_than=older_than)
        for _channel, stored in left:
            start = stored.next_index
            if stored.in_flight:
                async with db.transaction() as session:
                    if not await store.skip_unknown_reply(session=session, row_id=stored.row_id, index=start):
                        continue  # a live worker moved on meanwhile
                self.unknown += 1
                log.warning("a reply was being sent when its worker stopped; its delivery is unknown and it is "
                            "not sent again")
                start += 1
            origin, replies = unpack(stored.payload)
            rest = TurnReplies(replies[start:], outbox=self, row_id=stored.row_id, origin=origin, start=start)
            await self.deliver(rest, lambda reply, origin=origin: send_to(origin, reply))
            taken += 1
        return taken
