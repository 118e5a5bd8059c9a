"""The citizen's half-written tip: sealed as a draft under its own data key, kept across restarts, wiped when
cancelled or left untouched too long."""

from __future__ import annotations

import json
from datetime import datetime

from handlers.chat_turn import Turn
from storage import keys as key_store
from storage import tips as tip_store
from storage.conversations import stale_drafts
from storage.crypto import DataKey
from storage.models import Conversation

FLOW = "tipoff"
DRAFT_FIELD = "draft"
REPLY_ROUTE_FIELD = "reply_route"
CONTACT_FIELD = "contact"


class Draft:
    """The answers so far, opened with the draft's own data key (later the tip's key)."""

    def __init__(self, key: DataKey, state: dict) -> None:
        self.key = key
        self.step: str = state["step"]
        self.answers: dict[str, dict] = state.get("answers", {})
        self.pending: dict = state.get("pending", {})
        self.cancelling: bool = state.get("cancelling", False)  # «Delete the tip you are writing?» was asked
        self.album: str | None = state.get("album")  # the album whose first file was answered already

    @property
    def id(self) -> str:
        return self.key.owner_id

    def sealed(self) -> bytes:
        state = {"step": self.step, "answers": self.answers, "pending": self.pending}
        if self.cancelling:
            state["cancelling"] = True
        if self.album:
            state["album"] = self.album
        return self.key.seal(DRAFT_FIELD, json.dumps(state, ensure_ascii=False))


async def load_draft(turn: Turn) -> Draft | None:
    conv = turn.conversation
    if conv.flow != FLOW or not conv.draft_id or conv.draft is None:
        return None
    key = await key_store.load_draft_key(session=turn.session, keyring=turn.services.keyring, owner_id=conv.draft_id)
    if key is None:
        return None
    return Draft(key, json.loads(key.open_text(DRAFT_FIELD, conv.draft)))


async def waiting_for_files(services, *, session, conversation: Conversation | None) -> bool:
    """Whether this chat's draft stands at the evidence question: only then is a file worth fetching."""
    if conversation is None or conversation.flow != FLOW or not conversation.draft_id or conversation.draft is None:
        return False
    key = await key_store.load_draft_key(session=session, keyring=services.keyring, owner_id=conversation.draft_id)
    if key is None:
        return False
    step = json.loads(key.open_text(DRAFT_FIELD, conversation.draft))["step"]
    # A step the questionnaire file no longer names is not the evidence question either.
    return any(s.id == step and s.kind == "media" for s in services.settings.questionnaire.steps)


def save_draft(turn: Turn, draft: Draft) -> None:
    turn.conversation.draft = draft.sealed()
    turn.session.add(turn.conversation)


async def wipe_draft(turn: Turn) -> bool:
    """Delete the draft, its evidence files and its key; True if there was one."""
    conv = turn.conversation
    had = conv.draft_id is not None
    if conv.draft_id:
        await _wipe_owner(turn.session, turn.services.blobs, conv.draft_id)
    conv.flow = conv.draft_id = conv.draft = None
    turn.session.add(conv)
    return had


async def _wipe_owner(session, blobs, owner_id: str) -> None:
    await tip_store.delete_attachments(session=session, blobs=blobs, owner_id=owner_id)
    await key_store.delete_data_key(session=session, owner_id=owner_id)


async def wipe_stale_drafts(services, *, now: datetime | None = None) -> int:
    """Drafts untouched for longer than the configured time are deleted with their files."""
    cutoff = (now or services.clock()) - services.settings.limits.draft_ttl
    async with services.db.transaction() as session:
        stale = await stale_drafts(session=session, untouched_since=cutoff)
        for conv in stale:
            await _wipe_owner(session, services.blobs, conv.draft_id)
            conv.flow = conv.draft_id = conv.draft = None
            session.add(conv)
    if stale:
        await services.db.checkpoint()
    return len(stale)


def is_expired(turn: Turn) -> bool:
    conv = turn.conversation
    return conv.draft_id is not None and conv.updated_at < turn.now - turn.services.settings.limits.draft_ttl



def first_open_step(turn: Turn, draft: Draft) -> str:
    """The first question that applies and has no answer yet; the review when all are answered."""
    questionnaire = turn.services.settings.questionnaire
    # An answer to a step that no longer applies (the category changed) must not be submitted.
    for step in questionnaire.steps:
        if step.id in draft.answers and not step.applies(draft.answers):
            draft.answers.pop(step.id)
    for step in questionnaire.steps:
        if step.kind != "review" and step.applies(draft.answers) and step.id not in draft.answers:
            return step.id
    return questionnaire.steps[-1].id
