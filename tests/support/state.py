"""What a test compares before and after a message: everything the message could have changed."""

from __future__ import annotations

import json

from sqlalchemy import func
from sqlmodel import select

from handlers.messages import CHANNEL_PREFIXES
from handlers.citizen.drafts import DRAFT_FIELD, Draft
from storage.keys import load_data_key
from storage.models import Attachment, Conversation, DataKeyRecord, Tip, TipField


def chat_key(services, client) -> str:
    return services.keyring.pseudonym(CHANNEL_PREFIXES[client.channel], client.chat_id)


async def stored(services, client) -> dict:
    """The chat's conversation with its draft opened, the row counts and the blob files."""
    async with services.db.transaction() as session:
        conv = (await session.exec(
            select(Conversation).where(Conversation.chat_key == chat_key(services, client)))).one_or_none()
        draft = None
        if conv is not None and conv.draft is not None:
            key = await load_data_key(session=session, keyring=services.keyring, owner_id=conv.draft_id)
            opened = Draft(key, json.loads(key.open_text(DRAFT_FIELD, conv.draft)))
            draft = {"step": opened.step, "answers": opened.answers, "pending": opened.pending}
        counts = {model.__name__: (await session.exec(select(func.count()).select_from(model))).one()
                  for model in (Tip, TipField, Attachment, DataKeyRecord)}
    return {
        "flow": conv and conv.flow, "draft_id": conv and conv.draft_id, "language": conv and conv.language,
        "draft": draft, "counts": counts, "blobs": sorted(p.name for p in services.blobs.root.iterdir()),
    }
