"""`tinbao run` killed with SIGKILL at the worst moments, then started again as systemd would: the citizen's
receipt still arrives, once; a reply that may have gone out is never sent twice; no tip is lost or doubled."""

from __future__ import annotations

import signal

from sqlalchemy import func
from sqlmodel import select

from storage.models import Tip, TurnReply
from tests.bot.test_process_lifecycle import CHAT, WAIT, say, tap, telegram_section, until
from tests.support.fake_servers import fake_server
from tests.support.processes import Site
from tests.support.slow_telegram import SlowTelegram

fake = fake_server(SlowTelegram)

SEND = "Send the tip"


async def to_review(fake) -> None:
    """A citizen's tip-off as far as the review screen, on the running bot."""
    await say(fake, "/report")
    await tap(fake, "Drugs")
    await say(fake, "Có người bán ma túy ở quán cà phê đầu hẻm.")
    await tap(fake, "Happening now")
    await say(fake, "ben thanh")
    await tap(fake, "Phường Bến Thành")
    await say(fake, "Trước cổng chợ")  # the place, typed instead of a pin
    await say(fake, "Hai thanh niên đi xe Exciter")
    await tap(fake, "No evidence")
    review = await tap(fake, "Anonymous (recommended)")
    assert "Please check your tip" in review["text"], review["text"]


def receipts(fake) -> list[str]:
    return [m["text"] for m in fake.messages_to(CHAT) if "TB-" in (m.get("text") or "")]


async def count(db, model) -> int:
    async with db.transaction() as session:
        return (await session.exec(select(func.count()).select_from(model))).one()


def site_for(tmp_path, database_url, fake) -> Site:
    return Site(tmp_path / "site", database_url, extra=telegram_section(fake))


async def tap_send(fake) -> None:
    message = [m for m in fake.messages_to(CHAT) if fake.buttons(m)][-1]
    data = next(d for text, d in fake.buttons(message) if SEND in text)
    fake.click(CHAT, data, message_id=message["message_id"], language_code="en")


async def test_killed_after_the_tip_was_stored_and_before_the_receipt_went_out(tmp_path, fake, db, database_url):
    site = site_for(tmp_path, database_url, fake)
    await site.init()
    async with site.start("run") as bot:
        await bot.wait_for_line("serving Telegram by long polling", timeout=WAIT)
        await to_review(fake)
        # The turn that stores the tip commits, then the bot marks the tapped button (editMessageText)
        # before it sends the receipt: Telegram hangs on that edit, and the process is killed right there.
        fake.hold_next("editMessageText", WAIT)
        edits = sum(1 for method, _ in fake.calls if method.lower() == "editmessagetext")
        await tap_send(fake)
        await until(lambda: _true(sum(1 for m, _ in fake.calls if m.lower() == "editmessagetext") > edits),
                    what="the bot marking the tapped button")
        assert await count(db, Tip) == 1 and await count(db, TurnReply) == 1  # stored, not yet answered
        bot.kill()
        assert await bot.wait(timeout=WAIT) == -signal.SIGKILL
    assert receipts(fake) == []

    # Started again: Telegram still has the update (its offset was never confirmed) and hands it over.
    async with site.start("run") as again:
        await again.wait_for_line("serving Telegram by long polling", timeout=WAIT)
        await until(lambda: _true(receipts(fake)), what="the receipt after the restart")
        again.send_signal(signal.SIGTERM)
        assert await again.wait(timeout=WAIT) == 0, again.stderr
    [receipt] = receipts(fake)  # once, not twice
    assert "TB-" in receipt
    assert await count(db, Tip) == 1  # the same tip, not a second one
    assert await count(db, TurnReply) == 0  # sent, and shredded


async def test_killed_while_the_receipt_was_on_its_way_it_is_not_sent_twice(tmp_path, fake, db, database_url):
    site = site_for(tmp_path, database_url, fake)
    await site.init()
    async with site.start("run") as bot:
        await bot.wait_for_line("serving Telegram by long polling", timeout=WAIT)
        await to_review(fake)
        fake.hold(CHAT)  # Telegram has the receipt but does not answer: the bot cannot know it went out
        await tap_send(fake)
        await fake.wait_until_held(CHAT, timeout=WAIT)
        bot.kill()
        assert await bot.wait(timeout=WAIT) == -signal.SIGKILL
    fake.let_through(CHAT)
    await until(lambda: _true(receipts(fake)), what="the held receipt carried out")

    async with site.start("run") as again:
        await again.wait_for_line("serving Telegram by long polling", timeout=WAIT)
        before = len(fake.messages_to(CHAT))
        await say(fake, "/help")  # answered: the redelivered tap was taken and passed
        assert len(fake.messages_to(CHAT)) == before + 1
        again.send_signal(signal.SIGTERM)
        assert await again.wait(timeout=WAIT) == 0, again.stderr
    assert len(receipts(fake)) == 1
    assert await count(db, Tip) == 1


async def _true(value) -> object | None:
    return value or None
