"""Questions waiting for a tipster's answer, keyed by pseudonym, with the tip they concern sealed."""

from __future__ import annotations

from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from storage import keys as key_store
from storage.crypto import Keyring
from storage.models import FollowUp, utcnow
from storage.tips import new_id

# The question's time is sealed with it; in clear only its day, so that the audit entry of the question
# (which names the tip) cannot be matched to the row (which names the tipster's pseudonym) by time.
_ASKED_AT = "asked-at:"


def _open(data_key, row: FollowUp) -> tuple[str, str]:
    """(when it was asked, ISO, or "" for a question stored before times were sealed; the content)."""
    text = data_key.open_text("follow-up", row.sealed)
    if text.startswith(_ASKED_AT):
        asked_at, _sep, content = text[len(_ASKED_AT):].partition("\n")
        return asked_at, content
    return row.created_at.isoformat(), text


async def open_follow_up(*, session: AsyncSession, keyring: Keyring, chat_key: str, content: str) -> FollowUp:
    follow_up_id = new_id()
    data_key = await key_store.create_data_key(session=session, keyring=keyring, owner_id=follow_up_id)
    now = utcnow()
    row = FollowUp(id=follow_up_id, chat_key=chat_key, created_at=now.replace(hour=0, minute=0, second=0, microsecond=0),
                   sealed=data_key.seal("follow-up", f"{_ASKED_AT}{now.isoformat()}\n{content}"))
    session.add(row)
    await session.flush()
    return row


async def oldest_follow_up(*, session: AsyncSession, keyring: Keyring, chat_key: str) -> tuple[FollowUp, str] | None:
    """The question the tipster's next answer is for: the first asked, by the sealed time."""
    opened = []
    for row in (await session.exec(select(FollowUp).where(FollowUp.chat_key == chat_key))).all():
        data_key = await key_store.load_data_key(session=session, keyring=keyring, owner_id=row.id)
        asked_at, content = _open(data_key, row)
        opened.append((asked_at, row.id, row, content))
    if not opened:
        return None
    _at, _id, row, content = min(opened, key=lambda item: item[:2])
    return row, content


async def close_follow_up(*, session: AsyncSession, follow_up: FollowUp) -> None:
    await key_store.delete_data_key(session=session, owner_id=follow_up.id)
    await session.delete(follow_up)


async def has_follow_up(*, session: AsyncSession, chat_key: str) -> bool:
    return (await session.exec(select(FollowUp.id).where(FollowUp.chat_key == chat_key).limit(1))).first() is not None


async def follow_ups_of(*, session: AsyncSession, keyring: Keyring, chat_key: str) -> list[tuple[FollowUp, str]]:
    rows = (await session.exec(select(FollowUp).where(FollowUp.chat_key == chat_key))).all()
    opened = []
    for row in rows:
        data_key = await key_store.load_data_key(session=session, keyring=keyring, owner_id=row.id)
        opened.append((row, _open(data_key, row)[1]))
    return opened
