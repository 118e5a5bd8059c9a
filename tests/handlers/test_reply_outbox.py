"""A turn's replies are committed with it and sent at most once each: a redelivered update gets the replies
its first handling did not send, a reply that may have gone is never sent again, and a sent turn leaves
nothing behind."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from sqlalchemy import func
from sqlmodel import select

from handlers.messages import Inbound, Reply
from handlers.reply_outbox import SENT, DeliveryUnknown, TurnReplies
from storage.conversations import open_turn
from storage.models import TurnReply


def hello(update_id: str, chat_id: str = "4001") -> Inbound:
    return Inbound(channel="telegram", chat_id=chat_id, update_id=update_id, text="/start", language="en")


async def stored_turn(tipline, inbound: Inbound, texts: list[str]) -> TurnReplies:
    """A handled update with several replies, committed as the router commits one."""
    async with tipline.services.db.transaction() as session:
        assert await open_turn(session=session, channel=inbound.channel, update_id=inbound.update_id,
                               chat_key=tipline.chat_key(inbound)) is not None
        return await tipline.outbox.keep(session=session, inbound=inbound, replies=[Reply(t) for t in texts])


async def rows(services, tipline=None) -> int:
    """turn_reply rows left (after the outbox shredded the finished ones, as the next turn would)."""
    if tipline is not None:
        await tipline.outbox.flush()
    async with services.db.transaction() as session:
        return (await session.exec(select(func.count()).select_from(TurnReply))).one()


class Died(BaseException):
    """Stands in for the process dying mid-delivery: nothing after it runs, no handler catches it."""


class Recorder:
    """A channel's send that records what went out, and can fail on the n-th reply."""

    def __init__(self, *, unknown_at: int | None = None, crash_at: int | None = None) -> None:
        self.sent: list[str] = []
        self.unknown_at, self.crash_at = unknown_at, crash_at

    async def __call__(self, reply: Reply) -> str:
        if len(self.sent) == self.crash_at:
            raise Died
        if len(self.sent) == self.unknown_at:
            self.unknown_at = None
            raise DeliveryUnknown()
        self.sent.append(reply.text)
        return SENT


async def test_the_replies_are_stored_with_the_turn_and_shredded_once_sent(tipline, services):
    replies = await tipline.handle(hello("1"))
    assert isinstance(replies, TurnReplies) and replies[0].text
    assert await rows(services) == 1  # committed with the turn, before anything went out
    async with services.db.transaction() as session:
        [row] = (await session.exec(select(TurnReply))).all()
    assert replies[0].text.encode()[:20] not in row.sealed  # sealed, not in clear
    sent = Recorder()
    await replies.outbox.deliver(replies, sent)
    assert sent.sent == [r.text for r in replies]
    assert await rows(services, tipline) == 0
    # Telegram sends the update again (our 200 was lost): it was answered, nothing goes twice.
    again = await tipline.handle(hello("1"))
    assert again == []


async def test_a_redelivered_update_gets_the_replies_that_never_went_out(tipline, services):
    replies = await tipline.handle(hello("2"))
    expected = [r.text for r in replies]
    # The worker died after the turn committed and before it sent anything.
    again = await tipline.handle(hello("2"))
    assert [r.text for r in again] == expected
    sent = Recorder()
    await again.outbox.deliver(again, sent)
    assert sent.sent == expected
    assert await rows(services, tipline) == 0


async def test_a_reply_that_may_have_gone_is_never_sent_again_and_the_rest_follow(tipline, services):
    # A turn with two replies: the review lead and the question, say. Built here by hand, stored as a turn.
    inbound = hello("3")
    replies = await stored_turn(tipline, inbound, ["first", "second", "third"])
    dying = Recorder(crash_at=1)  # "first" went out; the worker dies while "second" is in flight
    with pytest.raises(Died):
        await replies.outbox.deliver(replies, dying)
    assert dying.sent == ["first"]
    # Redelivered at once: the reply in flight may belong to a live worker, so nothing is sent yet.
    again = await tipline.handle(inbound)
    later = Recorder()
    await again.outbox.deliver(again, later)
    assert later.sent == []
    # The sweep, once the row is old enough to be a dead worker's: "second" is unknown, "third" goes.
    swept: list[str] = []

    async def send_to(origin, reply):
        assert origin.chat_id == inbound.chat_id and origin.channel == "telegram"
        swept.append(reply.text)
        return SENT
    assert await tipline.outbox.sweep(send_to, older_than=timedelta(minutes=-1)) == 1
    assert swept == ["third"]
    assert tipline.outbox.unknown == 1
    assert await rows(services, tipline) == 0


async def test_a_timeout_is_counted_unknown_and_not_sent_again(tipline, services):
    inbound = hello("4")
    replies = await stored_turn(tipline, inbound, ["a", "b"])
    flaky = Recorder(unknown_at=0)
    await replies.outbox.deliver(replies, flaky)
    assert flaky.sent == ["b"] and tipline.outbox.unknown == 1
    assert await tipline.handle(inbound) == []  # redelivered: nothing is left to send


async def test_two_workers_delivering_one_turn_send_each_reply_once(tipline, services):
    inbound = hello("5")
    first = await stored_turn(tipline, inbound, [str(i) for i in range(6)])
    async with services.db.transaction() as session:
        second = await tipline.outbox.left_over(session=session, inbound=inbound)
    sent: list[str] = []

    class Both:
        async def __call__(self, reply: Reply) -> str:
            sent.append(reply.text)
            return SENT
    await asyncio.gather(first.outbox.deliver(first, Both()), second.outbox.deliver(second, Both()))
    assert sorted(sent) == [str(i) for i in range(6)]
    assert await rows(services, tipline) == 0


async def test_a_last_reply_left_in_flight_by_a_dead_worker_is_counted_unknown_not_dropped(tipline, services):
    inbound = hello("6")
    replies = await stored_turn(tipline, inbound, ["receipt"])
    with pytest.raises(Died):
        await replies.outbox.deliver(replies, Recorder(crash_at=0))  # died with the receipt in flight
    again = await tipline.handle(inbound)  # redelivered: nothing to send now, and the row is not thrown away
    await again.outbox.deliver(again, Recorder())
    assert await rows(services, tipline) == 1
    swept: list[str] = []

    async def send_to(origin, reply):
        swept.append(reply.text)
        return SENT
    assert await tipline.outbox.sweep(send_to, older_than=timedelta(minutes=-1)) == 1
    assert swept == [] and tipline.outbox.unknown == 1  # counted, never sent twice
    assert await rows(services, tipline) == 0


async def test_a_turn_that_rolls_back_leaves_the_finished_rows_to_the_next_one_not_to_the_sweep(tipline, services):
    replies = await stored_turn(tipline, hello("7"), ["receipt"])
    await replies.outbox.deliver(replies, Recorder())  # sent: the row waits to be shredded by the next turn
    with pytest.raises(RuntimeError):
        async with services.db.transaction() as session:  # the next turn shreds it, then fails and rolls back
            await tipline.outbox.keep(session=session, inbound=hello("8"), replies=[Reply("lost with its turn")])
            raise RuntimeError("the turn failed")
    assert await rows(services) == 1  # the shredding rolled back with the turn
    swept: list[str] = []

    async def send_to(origin, reply):
        swept.append(reply.text)
        return SENT
    # Long after, the sweep sees the row, but the outbox still knows it was sent: shredded, nothing unknown.
    assert await tipline.outbox.sweep(send_to, older_than=timedelta(minutes=-1)) == 0
    assert swept == [] and tipline.outbox.unknown == 0
    assert await rows(services) == 0


def test_a_pin_is_kept_with_its_reply_and_an_older_row_without_one_still_reads():
    import json
    from handlers.messages import Location, Route
    from handlers.reply_outbox import pack, unpack
    origin = Route("telegram", "4001")
    _origin, [kept] = unpack(pack(origin, [Reply("🗺 map", location=Location(10.7726, 106.698))]))
    assert kept.location == Location(10.7726, 106.698)
    older = json.loads(pack(origin, [Reply("no pin")]))
    for reply in older["replies"]:
        del reply["location"]  # as rows kept before pins were sent
    _origin, [plain] = unpack(json.dumps(older).encode())
    assert plain.location is None
