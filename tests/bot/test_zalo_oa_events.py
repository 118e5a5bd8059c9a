"""Zalo OA webhook events against the platform's real behaviour: Zalo's retries of the same bytes are taken
for as long as it retries and handled once; a signed event that cannot be read is acknowledged, counted and
logged without its content; a signature header of any bytes is a 401, never a 500.

Through our real webhook over HTTP, with the fake OA signing and posting as Zalo does.
"""

from __future__ import annotations

import json
import logging
from datetime import timedelta

import pytest
from sqlmodel import select

from bot.channels.zalo_oa import channel as oa_module
from bot.channels.zalo_oa.channel import KEEP_EVENTS, MAX_BODY as ZALO_OA_MAX_BODY
from bot.channels.zalo_oa.signature import ACCEPT_FOR
from storage.models import ZaloOaEvent
from tests.bot.test_zalo_bot_isolation import CANARY, assert_no_canary, raw_post
from tests.bot.test_zalo_oa import (APP_ID, OA_ID, OA_SECRET, USER, client, connected, deliveries,  # noqa: F401
                                    fake, nothing_happened, oa, rows, signed_body, text_event)


class MovableClock:
    """services.clock, moved by the test: Zalo's retries come minutes or hours after the first try."""

    def __init__(self, start) -> None:
        self.now = start

    def __call__(self):
        return self.now

    def move(self, **delta) -> None:
        self.now += timedelta(**delta)


@pytest.fixture
def clock(services) -> MovableClock:
    services.clock = MovableClock(services.clock())
    return services.clock


def stamped(clock: MovableClock, words: str = "/start", *, msg_id: str, minutes_ago: float = 0) -> dict:
    return text_event(words, msg_id=msg_id,
                      timestamp=str(int((clock() - timedelta(minutes=minutes_ago)).timestamp() * 1000)))


# --- Zalo's retries ---------------------------------------------------------------------------------

async def test_zalo_s_retry_40_minutes_later_is_accepted_and_the_event_handled_once(fake, oa, services, clock):
    fake.followers.add(USER)
    msg_id = "c0ffee00c0ffee00beef"
    assert await fake.push(stamped(clock, msg_id=msg_id)) == 200
    [reply] = await fake.wait_for_messages(USER, 1)
    await oa.drain()
    assert "113" in reply["text"]
    # Zalo did not see our 200 (a proxy timed out): the same bytes, the same signature, 40 minutes later.
    clock.move(minutes=40)
    assert await fake.redeliver(msg_id) == 200  # a 401 here would have Zalo give up on a handled event…
    assert oa.outcomes["duplicate"] == 1  # recognised before the 200 went back (anything it started, drained next)
    await oa.drain()
    assert len(fake.messages_to(USER)) == 1  # … and taking it is harmless: found by its msg_id, not answered again
    assert oa.outcomes == {"handled": 1, "duplicate": 1}
    assert await rows(services, ZaloOaEvent) == 1
    # The same body with a signature that is not Zalo's stays a 401, 40 minutes late or not.
    assert await fake.push(fake.event(msg_id), signature="mac=" + "0" * 64) == 401
    assert oa.outcomes["refused"] == 1 and len(fake.messages_to(USER)) == 1


async def test_an_event_zalo_could_only_deliver_40_minutes_late_is_handled(fake, oa, services, clock):
    """Our server was down for the first tries: the retry that gets through is the first one we see."""
    fake.followers.add(USER)
    event = stamped(clock, msg_id="aa11bb22cc33dd44ee55", minutes_ago=40)
    assert await fake.push(event) == 200
    [reply] = await fake.wait_for_messages(USER, 1)
    await oa.drain()
    assert "113" in reply["text"] and oa.outcomes == {"handled": 1}
    assert await fake.redeliver("aa11bb22cc33dd44ee55") == 200  # and its later retries change nothing
    await oa.drain()
    assert len(fake.messages_to(USER)) == 1 and oa.outcomes == {"handled": 1, "duplicate": 1}


async def test_a_retry_after_the_daily_purge_is_still_found_by_its_msg_id(fake, oa, services, clock, monkeypatch):
    """Dedup rows outlive the time a retry is accepted; shown by planting a purge that keeps them too short."""
    assert KEEP_EVENTS > ACCEPT_FOR
    fake.followers.add(USER)
    assert await fake.push(stamped(clock, msg_id="first-try-0001")) == 200
    await fake.wait_for_messages(USER, 1)
    await oa.drain()
    clock.move(hours=23)  # still within ACCEPT_FOR
    await oa.purge()
    assert await fake.redeliver("first-try-0001") == 200
    await oa.drain()
    assert oa.outcomes == {"handled": 1, "duplicate": 1} and await rows(services, ZaloOaEvent) == 1
    # The check can fail: were the rows purged after an hour, the same retry would be stored and handled again.
    monkeypatch.setattr(oa_module, "KEEP_EVENTS", timedelta(hours=1))
    oa._last_purge = None
    await oa.purge()
    assert await rows(services, ZaloOaEvent) == 0
    assert await fake.redeliver("first-try-0001") == 200
    await oa.drain()
    assert oa.outcomes["handled"] == 2


async def test_follow_events_have_no_msg_id_and_their_retries_are_found_all_the_same(fake, oa, services, clock):
    assert await fake.follow(USER) == 200
    await fake.wait_for_messages(USER, 1)
    await oa.drain()
    clock.move(minutes=30)
    assert await fake.redeliver_last() == 200  # byte for byte the same body, as Zalo retries it
    await oa.drain()
    assert len(fake.messages_to(USER)) == 1 and oa.outcomes == {"handled": 1, "duplicate": 1}


# --- signed events that cannot be read ----------------------------------------------------------------

def unreadable_events() -> dict[str, dict | list | str]:
    base = {"app_id": APP_ID, "recipient": {"id": OA_ID}, "timestamp": "{ts}"}
    return {
        "no event_name": {**base, "sender": {"id": USER}, "message": {"text": CANARY, "msg_id": "m1"}},
        "event_name not text": {**base, "event_name": ["user_send_text", CANARY], "sender": {"id": USER}},
        "no sender": {**base, "event_name": "user_send_text", "message": {"text": CANARY, "msg_id": "m2"}},
        "sender id an object": {**base, "event_name": "user_send_text", "sender": {"id": {"x": CANARY}},
                                "message": {"text": CANARY, "msg_id": "m3"}},
        "message not an object": {**base, "event_name": "user_send_image", "sender": {"id": USER},
                                  "message": f"{CANARY}"},
        "unfollow without follower": {**base, "event_name": "unfollow", "follower": CANARY},
    }


@pytest.mark.parametrize("kind", list(unreadable_events()))
async def test_a_signed_event_that_cannot_be_read_is_acknowledged_counted_and_not_logged(
        fake, oa, services, clock, caplog, kind):
    caplog.set_level(logging.DEBUG)
    event = json.loads(json.dumps(unreadable_events()[kind]).replace("{ts}", str(int(clock().timestamp() * 1000))))
    assert await fake.push(event) == 200  # Zalo's own bytes: a 401 would only have it sent again, for a day
    await nothing_happened(fake, oa, services)
    assert oa.outcomes == {"undecodable": 1}
    [line] = [r for r in caplog.records if "could not be read and was acknowledged" in r.getMessage()]
    assert line.levelno == logging.WARNING and not line.exc_info
    assert_no_canary(caplog)
    # One bad event delays nothing: the next one is answered.
    fake.followers.add(USER)
    assert await fake.push(stamped(clock, msg_id="after-the-bad-one")) == 200
    await fake.wait_for_messages(USER, 1)
    await oa.drain()
    assert oa.outcomes == {"undecodable": 1, "handled": 1}


async def test_a_signed_body_that_is_not_an_object_is_acknowledged(fake, oa, services, clock, caplog):
    """Signed with the X-ZEvent-Timestamp header (the body has none to offer): Zalo's, so acknowledged."""
    stamp = str(int(clock().timestamp() * 1000))
    for body in (json.dumps([CANARY, 1]).encode(), f"not json {CANARY}".encode(), b"[" * 50_000 + b"]" * 50_000):
        headers = {"Content-Type": "application/json", "X-ZEvent-Timestamp": stamp,
                   "X-ZEvent-Signature": fake.sign(body, stamp)}
        assert await fake._post(body, headers) == 200
        # Without a valid signature the same bytes are a 401: nothing says they are Zalo's.
        assert await fake._post(body, {**headers, "X-ZEvent-Signature": fake.sign(body, stamp, "other-secret")}) == 401
    await nothing_happened(fake, oa, services)
    assert oa.outcomes == {"undecodable": 3, "refused": 3}
    assert_no_canary(caplog)


async def test_a_stored_event_that_no_longer_reads_is_finished_not_retried_forever(fake, client, tipline, services,
                                                                                  connected, caplog):
    """Swept after a worker stopped, and unreadable to this version: counted, shredded, never taken again."""
    from storage import zalo_oa as store
    raw = json.dumps({"app_id": APP_ID, "event_name": "user_send_text", "timestamp": "1",
                      "message": {"text": CANARY, "msg_id": "m9"}}).encode()
    async with services.db.transaction() as session:
        await store.store_event(session=session, keyring=services.keyring, dedup_key="d" * 64,
                                event_name="user_send_text", raw=raw, worker="oa-dead",
                                now=services.clock() - timedelta(minutes=3))
    channel = oa_module.ZaloOAChannel(client=client, tipline=tipline, settings=oa_module.OASettings(
        app_id=APP_ID, oa_id=OA_ID, secret_key=OA_SECRET))
    assert await channel.sweep() == 1
    await channel.drain()
    assert channel.outcomes == {"undecodable": 1} and await channel.sweep() == 0
    async with services.db.transaction() as session:
        [row] = (await session.exec(select(ZaloOaEvent))).all()
    assert row.processed_at is not None and row.payload is None
    assert_no_canary(caplog)


async def test_a_failing_turn_is_logged_without_the_citizen_s_words(fake, oa, services, clock, caplog, monkeypatch):
    async def broken(inbound):
        raise RuntimeError(f"choked on {inbound.text!r} from {inbound.chat_id}")
    monkeypatch.setattr(oa.tipline, "handle", broken)
    fake.followers.add(USER)
    assert await fake.push(stamped(clock, f"/report {CANARY}", msg_id="will-fail-01")) == 200
    await oa.drain()  # the event was handed to its task before the 200: this waits for its end
    assert oa.outcomes == {"failed": 1}
    [line] = [r for r in caplog.records if "could not be answered" in r.getMessage()]
    assert "RuntimeError at" in line.getMessage() and not line.exc_info and USER not in caplog.text
    assert_no_canary(caplog)


# --- headers as bytes, and the size cap -----------------------------------------------------------------

@pytest.mark.parametrize("value", [b"mac=\xff\xfe", "mac=đúng".encode(), b"\xc3\x28" * 40, b"mac=" + b"\xe9" * 64])
async def test_a_signature_header_of_any_bytes_gets_401_never_500(fake, oa, services, clock, value):
    body, good = signed_body(stamped(clock, msg_id="raw-bytes-01"))
    assert await raw_post(fake.webhook_url, body, [(b"X-ZEvent-Signature", value)]) == 401
    assert await raw_post(fake.webhook_url, body, [(b"X-ZEvent-Signature", good.encode()),
                                                   (b"X-ZEvent-Timestamp", value)]) == 200
    await oa.drain()
    assert oa.outcomes["refused"] == 1
    assert await rows(services, ZaloOaEvent) == 1  # the good one, once: the header timestamp changed nothing


async def test_a_body_over_the_cap_gets_413_and_is_never_read(fake, oa, services, clock):
    event = stamped(clock, msg_id="too-big-0001")
    event["message"]["text"] = CANARY * (ZALO_OA_MAX_BODY // len(CANARY) + 10)
    assert await fake.push(event) == 413
    await nothing_happened(fake, oa, services)
    assert oa.outcomes == {"refused": 1}

