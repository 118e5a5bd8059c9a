"""An open draft's data key is kept in memory while the citizen writes, and let go the moment the tip is sent
or deleted: the database is read for it once per draft, not at every answer."""

from __future__ import annotations

from sqlalchemy import event

from storage.keys import kept_draft_keys
from tests.handlers.citizen.test_tipoff import walk_to_review
from tests.support.chat import ChatClient


def _data_key_reads(services) -> list[str]:
    reads: list[str] = []
    event.listen(services.db.engine.sync_engine, "before_cursor_execute",
                 lambda _c, _cur, statement, *_: reads.append(statement) if "FROM data_key" in statement else None)
    return reads


async def test_the_draft_key_is_read_once_and_let_go_when_the_tip_is_sent(tipline, services):
    citizen = ChatClient(tipline, chat_id="880", language="en")
    reads = _data_key_reads(services)
    await walk_to_review(citizen)
    assert len(kept_draft_keys(services.keyring)) == 1
    assert len(reads) <= 1  # the key was made in this process: not read back at every answer
    await citizen.click("Send the tip")
    assert "Receipt code: TB-" in citizen.text
    assert kept_draft_keys(services.keyring) == []


async def test_a_deleted_draft_leaves_no_key_in_memory(tipline, services):
    citizen = ChatClient(tipline, chat_id="881", language="en")
    await walk_to_review(citizen, with_photo=False)
    assert len(kept_draft_keys(services.keyring)) == 1
    await citizen.send("/cancel")
    await citizen.click("Yes, delete it")
    assert "cancelled and deleted" in citizen.text
    assert kept_draft_keys(services.keyring) == []
