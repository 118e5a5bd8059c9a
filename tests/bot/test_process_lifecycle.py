"""`tinbao run` as a real process stopped by a real signal, as systemd, Docker and Kubernetes stop it
(SIGTERM) or an operator at a terminal does (SIGINT, Ctrl-C): the answer under way still reaches the
citizen, the reminder rows the process had claimed go back to the queue, the SQLite WAL is folded into
the database file, and the process exits 0 with nothing on stderr but its own few lines."""

from __future__ import annotations

import asyncio
import re
import signal
import socket
from datetime import timedelta

import aiohttp
import pytest
from sqlmodel import select

from bot.runtime import AUDIT_ANCHOR_FILE
from handlers.areas import AreaIndex
from handlers.context import Limits, Services, TipLineSettings
from handlers.units import UnitTree
from storage import reminders as store
from storage.blobs import BlobStore
from storage.db import Database
from storage.models import ReminderOutbox
from tests.support.deployment import TEST_AREAS, TEST_UNITS
from tests.support.fake_servers import fake_server
from tests.support.processes import Site, sqlite_wal
from tests.support.reminders import add_subscribers
from tests.support.slow_telegram import SlowTelegram

CHAT = 5550001
LATE_CHAT = 5550002  # writes while the bot stops
SUBSCRIBERS = [880_000 + n for n in range(30)]
HELP = "/status CODE: see what became of your tip"
WAIT = 60  # seconds a reply may take on a busy machine: a bound for a hang, not a speed claim
# Lines `tinbao run` writes on its own while serving and stopping; anything else on stderr is a finding.
EXPECTED_LINES = re.compile(
    r"\S+ \S+ INFO (bot\.runtime: (serving Telegram by long polling|(SIGTERM|SIGINT) received: stopping; .*"
    r"|stopped cleanly)|bot\.reminder_dispatcher: (reminders: .*|broadcast \d+ queued for \d+ subscriber\(s\)))"
    # Reminders that were in flight when the stop came: they may have reached the citizen, so never resent.
    r"|\S+ \S+ WARNING bot\.reminder_dispatcher: \d+ reminder message\(s\) were in flight when sending stopped; .*")


def telegram_section(fake: SlowTelegram, *, rate: int = 2) -> str:
    # No quiet hours (the test may run at any hour), and a slow pace: the dispatcher claims ten rows at a
    # time and sends two a second, so at any moment some claimed rows have not been handed to Telegram yet.
    return (f'[telegram]\ntoken = "{fake.token}"\napi_base = "{fake.base_url}"\n\n'
            f'[reminders]\nquiet_start = "00:00"\nquiet_end = "00:00"\ntick_seconds = 1\nrate_per_second = {rate}\n')


fake = fake_server(SlowTelegram)


async def say(fake, text: str) -> dict:
    before = len(fake.messages_to(CHAT))
    fake.send_text(CHAT, text, language_code="en")
    return (await fake.wait_for_messages(CHAT, before + 1, timeout=WAIT))[-1]


async def tap(fake, label: str) -> dict:
    before = len(fake.messages_to(CHAT))
    message = [m for m in fake.messages_to(CHAT) if fake.buttons(m)][-1]
    data = next(d for text, d in fake.buttons(message) if label in text)
    fake.click(CHAT, data, message_id=message["message_id"], language_code="en")
    return (await fake.wait_for_messages(CHAT, before + 1, timeout=WAIT))[-1]


def unexpected_lines(stderr_lines: list[str]) -> list[str]:
    return [line for line in stderr_lines if not EXPECTED_LINES.fullmatch(line)]


def services_for(site: Site, db: Database) -> Services:
    areas = AreaIndex(TEST_AREAS)
    return Services(db=db, keyring=site.keyring(), blobs=BlobStore(site.root / "data" / "blobs"),
                    settings=TipLineSettings(areas=areas, limits=Limits(), units=UnitTree(TEST_UNITS, areas)))


async def outbox_rows(db: Database) -> list[ReminderOutbox]:
    async with db.transaction() as session:
        return list((await session.exec(select(ReminderOutbox).order_by(ReminderOutbox.id))).all())


async def until(condition, *, what: str, timeout: float = WAIT):
    """Poll ``condition`` (async, returns a value or None) until it gives something."""
    async with asyncio.timeout(timeout):
        while (found := await condition()) is None:
            await asyncio.sleep(0.05)
    return found


async def test_sigterm_mid_answer_delivers_it_hands_reminders_back_and_exits_0(tmp_path, fake, db, database_url):
    site = Site(tmp_path / "site", database_url, extra=telegram_section(fake))
    await site.init()
    services = services_for(site, db)
    await add_subscribers(services, SUBSCRIBERS, language="en")
    fake.hold(*SUBSCRIBERS)  # Telegram is slow for them: every reminder sent stays in flight
    now = services.clock()
    async with db.transaction() as session:
        await store.create_broadcast(session=session, key="announce:stop-test", kind="announcement", send_at=now,
                                     now=now, text="Mời bà con dự Ngày hội toàn dân bảo vệ an ninh Tổ quốc.",
                                     expires_at=now + timedelta(days=1))

    async with site.start("run") as bot:
        await bot.wait_for_line("serving Telegram by long polling")
        await say(fake, "/report")
        await tap(fake, "Drugs")
        fake.hold(CHAT)  # the answer to the next message will hang at Telegram until let through
        fake.send_text(CHAT, "Có người bán ma túy ở quán cà phê đầu hẻm.", language_code="en")
        await fake.wait_until_held(CHAT)

        async def claimed_but_not_sent():  # some rows claimed by this process, not all handed to Telegram
            rows = [r for r in await outbox_rows(db) if r.status == "sending"]
            in_flight = sum(fake.held_for(chat) for chat in SUBSCRIBERS)
            return rows if in_flight and len(rows) > in_flight else None
        claimed = await until(claimed_but_not_sent, what="the dispatcher to claim reminder rows")

        bot.send_signal(signal.SIGTERM)
        await bot.wait_for_line("SIGTERM received: stopping")
        fake.send_text(LATE_CHAT, "/help", language_code="en")  # while it stops: answered now or after the restart
        fake.let_through(CHAT)
        code = await bot.wait(timeout=WAIT)

    assert code == 0, bot.stderr
    wal = sqlite_wal(database_url)
    assert wal is None or not wal.exists() or wal.stat().st_size == 0, "the WAL was not folded into the file"
    # The answer that was under way reached the citizen: the next question, with its buttons.
    [answered] = fake.messages_to(CHAT)[2:]
    assert "Happening now" in [label for label, _ in fake.buttons(answered)]
    assert "Traceback" not in bot.stderr and unexpected_lines(bot.stderr_lines) == [], bot.stderr
    assert bot.stderr_lines[-1].endswith("stopped cleanly")
    # Reminder rows: none left "sending"; those claimed but not handed to Telegram are back in the queue,
    # free for any worker; those in flight (they may have reached the citizen) are "unknown", never resent.
    after = {row.id: row for row in await outbox_rows(db)}
    in_flight = sum(fake.held_for(chat) for chat in SUBSCRIBERS)
    assert not [r for r in after.values() if r.status == "sending"]
    assert sum(1 for r in after.values() if r.status == "unknown") == in_flight
    released = [after[r.id] for r in claimed if after[r.id].status == "pending"]
    assert released and all(r.claimed_by is None for r in released)
    assert {after[r.id].status for r in claimed} <= {"pending", "unknown"}

    # Started again, the bot answers the message sent during the stop, once in all.
    async with site.start("run") as again:
        await again.wait_for_line("serving Telegram by long polling")

        async def help_answered():
            return True if any(HELP in (m.get("text") or "") for m in fake.messages_to(LATE_CHAT)) else None
        await until(help_answered, what="the /help sent during the stop to be answered")
        again.send_signal(signal.SIGTERM)
        assert await again.wait(timeout=WAIT) == 0, again.stderr
    assert sum(HELP in (m.get("text") or "") for m in fake.messages_to(LATE_CHAT)) == 1
    assert unexpected_lines(again.stderr_lines) == [], again.stderr


@pytest.fixture
def sqlite_site(tmp_path, fake) -> Site:
    """A site on its own SQLite file: what these tests prove does not depend on the database."""
    return Site(tmp_path / "site", f"sqlite+aiosqlite:///{tmp_path}/site/data/tinbao.db", extra=telegram_section(fake))


async def start_a_tip_and_hold_the_answer(fake) -> None:
    await say(fake, "/report")
    await tap(fake, "Drugs")
    fake.hold(CHAT)
    fake.send_text(CHAT, "Có người bán ma túy ở quán cà phê đầu hẻm.", language_code="en")
    await fake.wait_until_held(CHAT)


async def test_a_second_sigint_cuts_the_wait_short_and_still_exits_cleanly(sqlite_site, fake):
    await sqlite_site.init()
    async with sqlite_site.start("run") as bot:
        await bot.wait_for_line("serving Telegram by long polling")
        await start_a_tip_and_hold_the_answer(fake)  # never let through: Telegram hangs on it
        bot.send_signal(signal.SIGINT)
        await bot.wait_for_line("SIGINT received: stopping")
        bot.send_signal(signal.SIGINT)
        code = await bot.wait(timeout=WAIT)
    assert code == 0, bot.stderr
    assert "Traceback" not in bot.stderr
    lines = [line.split(": ", 1)[1] for line in bot.stderr_lines]
    assert lines[-3:] == ["SIGINT received again: not waiting any longer for the answers under way",
                          "1 answer(s) under way were cut short by the stop", "stopped cleanly"], bot.stderr
    wal = sqlite_wal(sqlite_site.database_url)
    assert not wal.exists() or wal.stat().st_size == 0


async def test_the_wait_for_answers_under_way_is_bounded(sqlite_site, fake):
    await sqlite_site.init()
    async with sqlite_site.start("run", "--stop-within", "1") as bot:
        await bot.wait_for_line("serving Telegram by long polling")
        await start_a_tip_and_hold_the_answer(fake)
        bot.send_signal(signal.SIGTERM)
        code = await bot.wait(timeout=WAIT)
    assert code == 0, bot.stderr
    assert [line.split(": ", 1)[1] for line in bot.stderr_lines][-2:] == [
        "1 answer(s) under way were cut short by the stop", "stopped cleanly"], bot.stderr
    assert "Traceback" not in bot.stderr


async def test_killed_at_once_it_leaves_the_wal_behind(sqlite_site, fake):
    # What the clean stop spares the operator, and proof that the WAL checks above can fail. The bot empties
    # the WAL by itself too: in its first housekeeping round, and within a second of a reply having gone out.
    # So it is killed where neither can come: that round over, and its first answer held at Telegram (the
    # turn is committed to the WAL, its reply not yet sent, hence not yet shredded).
    await sqlite_site.init()
    # An audit entry, so that the round ends by recording the audit head in its anchor file (it comes last,
    # after the round's checkpoint; the next round is ten minutes away).
    async with sqlite_site.start("officers", "invite", "--unit", "ca-benthanh", "--name", "Đại úy Lan") as invite:
        assert await invite.wait() == 0, invite.stderr
    anchor = sqlite_site.root / "data" / AUDIT_ANCHOR_FILE
    assert not anchor.exists()
    async with sqlite_site.start("run") as bot:
        await bot.wait_for_line("serving Telegram by long polling")

        async def first_round_over():
            return True if anchor.exists() else None
        await until(first_round_over, what="the first housekeeping round to record the audit head")
        fake.hold(CHAT)
        fake.send_text(CHAT, "/report", language_code="en")
        await fake.wait_until_held(CHAT)
        bot.kill()
        assert await bot.wait(timeout=WAIT) == -signal.SIGKILL
    wal = sqlite_wal(sqlite_site.database_url)
    assert wal.exists() and wal.stat().st_size > 0
    assert "stopped cleanly" not in bot.stderr


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _update(update_id: int, chat_id: int, text: str) -> dict:
    return {"update_id": update_id, "message": {
        "message_id": update_id, "date": 1_760_000_000, "text": text,
        "entities": [{"type": "bot_command", "offset": 0, "length": len(text)}] if text.startswith("/") else [],
        "chat": {"id": chat_id, "type": "private", "first_name": "A"},
        "from": {"id": chat_id, "is_bot": False, "first_name": "A", "language_code": "en"}}}


async def test_by_webhook_it_stops_listening_first_then_finishes_the_answer(tmp_path, fake):
    port, secret = _free_port(), "telegram-Secret_0123456789"
    site = Site(tmp_path / "site", f"sqlite+aiosqlite:///{tmp_path}/site/data/tinbao.db",
                extra=telegram_section(fake).replace(
                    "[reminders]", f'mode = "webhook"\nwebhook_url = "https://tin.example.vn"\n'
                                   f'webhook_listen = "127.0.0.1:{port}"\nwebhook_secret = "{secret}"\n\n[reminders]'))
    await site.init()
    url, headers = f"http://127.0.0.1:{port}/telegram/webhook", {"X-Telegram-Bot-Api-Secret-Token": secret}
    accepted: list[int] = []
    async with site.start("run") as bot, aiohttp.ClientSession() as telegram:  # one session: kept-alive connections
        await bot.wait_for_line("serving Telegram by webhook")
        fake.hold(CHAT)

        async def first_call() -> int:
            async with telegram.post(url, json=_update(1, CHAT, "/start"), headers=headers) as response:
                return response.status
        # The webhook answers once the update is handled, so the first call's 200 waits for its held reply.
        first = asyncio.create_task(first_call())
        await fake.wait_until_held(CHAT)
        bot.send_signal(signal.SIGTERM)
        await bot.wait_for_line("SIGTERM received: stopping")
        # Calls keep coming; the server must stop taking them while the held answer is still under way.
        refused = False
        async with asyncio.timeout(WAIT):
            for n in range(2, 10_000):
                try:
                    async with telegram.post(url, json=_update(n, LATE_CHAT + n, "/start"), headers=headers) as answer:
                        assert answer.status == 200
                        accepted.append(LATE_CHAT + n)
                except aiohttp.ClientConnectionError:
                    refused = True
                    break
        assert refused and fake.held_for(CHAT) == 1 and not fake.messages_to(CHAT)
        assert not first.done()
        fake.let_through(CHAT)
        assert await asyncio.wait_for(first, WAIT) == 200
        code = await bot.wait(timeout=WAIT)
    assert code == 0, bot.stderr
    [welcome] = fake.messages_to(CHAT)
    assert "Welcome" in welcome["text"]
    assert all(fake.messages_to(chat) for chat in accepted), "a call answered 200 during the stop got no reply"
    assert "Traceback" not in bot.stderr and bot.stderr_lines[-1].endswith("stopped cleanly")
    assert [line for line in unexpected_lines(bot.stderr_lines) if "serving Telegram by webhook" not in line] == []
