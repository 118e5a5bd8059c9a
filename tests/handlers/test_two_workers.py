"""On PostgreSQL any worker continues any chat (README: "conversations are row-locked, so any worker can
continue any chat"). Two workers here are two tip lines on two database engines with their own
connection pools, as two `tinbao run` processes behind a load balancer would be: nothing is shared
between them but the database.

SQLite is one file for one process; its single writer and the in-process per-chat lock are what
serialize there (tests/handlers/test_update_sequences.py plays concurrent turns on it).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json

import pytest
from sqlalchemy import func
from sqlmodel import select

from handlers.messages import IncomingFile
from handlers.router import TipLine
from handlers.citizen.drafts import DRAFT_FIELD
from storage.db import Database
from storage.keys import load_data_key
from storage.models import Attachment, Conversation, Tip
from storage.tips import read_tip_fields
from tests.handlers.citizen.test_tipoff import walk_to_review
from tests.support.chat import ChatClient
from tests.support.images import jpeg_with_gps
from tests.support.state import chat_key


@pytest.fixture
async def workers(services, database_url):
    if services.db.is_sqlite:
        pytest.skip("needs PostgreSQL: several workers share one database only there")
    other = Database(database_url)
    try:
        yield TipLine(services), TipLine(dataclasses.replace(services, db=other))
    finally:
        await other.dispose()


class TakingTurns(ChatClient):
    """One citizen whose every next update reaches the other worker."""

    def __init__(self, workers, **kwargs) -> None:
        super().__init__(workers[0], **kwargs)
        self.workers, self.sent = workers, 0

    async def deliver(self, **fields):
        worker = self.sent % 2
        self.sent += 1
        self.tipline = self.workers[worker]
        return await super().deliver(**fields)


async def test_two_workers_taking_turns_walk_one_citizen_through_one_tip(services, workers):
    citizen = TakingTurns(workers, chat_id="700100300", language="en")
    await walk_to_review(citizen, with_photo=True)
    await citizen.click("Send the tip")
    assert "Receipt code" in citizen.text
    code = citizen.text.split("Receipt code: ")[1].split()[0]
    for _ in range(2):  # the Send button tapped again, once on each worker: nothing is filed twice
        await citizen.deliver(choice="review:submit")
        assert "Receipt code" not in citizen.text
    async with services.db.transaction() as session:
        [tip] = (await session.exec(select(Tip))).all()
        key = await load_data_key(session=session, keyring=services.keyring, owner_id=tip.id)
        fields = await read_tip_fields(session=session, data_key=key)
        attachments = (await session.exec(select(func.count()).select_from(Attachment))).one()
        conversation = (await session.exec(select(Conversation).where(
            Conversation.chat_key == chat_key(services, citizen)))).one()
    assert json.loads(fields["description"])["text"] == "Người đàn ông áo đỏ bán ma túy ở đầu hẻm mỗi tối."
    assert (tip.area_code, tip.urgent, tip.attachment_count, attachments) == ("79.26734", True, 1, 1)
    assert (conversation.flow, conversation.draft_id, conversation.draft) == (None, None, None)
    await citizen.send(f"/status {code}")
    assert "Received, waiting for review." in citizen.text


async def test_concurrent_turns_of_one_chat_on_two_workers_take_turns(services, workers):
    """Six photos sent at once, three reaching each worker: every one is kept and counted. Without the
    row lock the two workers would read the same draft and one would overwrite the other's count."""
    citizen = TakingTurns(workers, chat_id="700100301", language="en")
    await citizen.send("/report")
    await citizen.click("Drugs")
    await citizen.send("Người đàn ông áo đỏ bán ma túy ở đầu hẻm mỗi tối.")
    await citizen.click("Earlier")
    await citizen.send("hoan kiem")
    await citizen.click("Yes")  # «Is it Phường Hoàn Kiếm, TP. Hà Nội?»
    await citizen.click("Skip")
    await citizen.click("Skip")
    assert "Send photos" in citizen.text
    photo = jpeg_with_gps()

    async def fetch() -> bytes:
        await asyncio.sleep(0.05)  # the platform's file service takes a moment, as it does
        return photo
    start = asyncio.Event()

    async def send_photo(worker: int) -> list:
        client = ChatClient(workers[worker], chat_id=citizen.chat_id, language="en")
        await start.wait()
        return await client.deliver(files=[IncomingFile(kind="photo", size=len(photo), fetch=fetch)])
    sends = [asyncio.create_task(send_photo(n % 2)) for n in range(6)]
    await asyncio.sleep(0)
    start.set()
    answers = await asyncio.gather(*sends)
    counts = sorted(int(r[0].text.split("Files received so far: ")[1].split(".")[0]) for r in answers)
    assert counts == [1, 2, 3, 4, 5, 6]  # one after the other, each seeing the one before
    async with services.db.transaction() as session:
        conversation = (await session.exec(select(Conversation).where(
            Conversation.chat_key == chat_key(services, citizen)))).one()
        key = await load_data_key(session=session, keyring=services.keyring, owner_id=conversation.draft_id)
        draft = json.loads(key.open_text(DRAFT_FIELD, conversation.draft))
        kept = (await session.exec(select(func.count()).select_from(Attachment).where(
            Attachment.owner_id == conversation.draft_id))).one()
    assert (draft["step"], draft["pending"]["files"], kept) == ("evidence", 6, 6)
