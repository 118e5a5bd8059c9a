"""What a tip mentions is indexed when it is sent, and again when the tipster answers a question; forgotten
when the tip is purged or cancelled. Called from the submit step and the follow-up answer, in their
transaction, with the answers still in memory."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from handlers.citizen.questionnaire_file import Questionnaire
from handlers.related.extract import extract_identifiers
from storage import related
from storage.crypto import DataKey, Keyring
from sqlmodel.ext.asyncio.session import AsyncSession

# Steps whose answers describe the crime. The contact step is never read: the tipster's own phone number
# must not tie their tips together, or the index would undo anonymity.
_INDEXED_KINDS = ("text", "choice", "location")


def texts_to_index(*, answers: Mapping[str, dict], questionnaire: Questionnaire) -> list[str]:
    """The typed texts among a draft's answers (what happened, the scammer, people and vehicles, a typed time
    or address), in questionnaire order."""
    texts = []
    for step in questionnaire.steps:
        answer = answers.get(step.id)
        if step.kind not in _INDEXED_KINDS or not isinstance(answer, dict):
            continue
        texts += [value for key in ("text", "address") if isinstance(value := answer.get(key), str) and value]
    return texts


async def index_texts(*, session: AsyncSession, keyring: Keyring, data_key: DataKey, texts: Iterable[str]) -> int:
    """Index every identifier in these texts for the tip of ``data_key``; returns how many were new."""
    identifiers = [identifier for text in texts for identifier in extract_identifiers(text)]
    return await related.record_identifiers(session=session, keyring=keyring, data_key=data_key,
                                            identifiers=identifiers)


async def index_submitted_tip(*, session: AsyncSession, keyring: Keyring, data_key: DataKey,
                              answers: Mapping[str, dict], questionnaire: Questionnaire) -> int:
    """On submit: the tip becomes findable by the numbers, accounts, plates and handles it names."""
    return await index_texts(session=session, keyring=keyring, data_key=data_key,
                             texts=texts_to_index(answers=answers, questionnaire=questionnaire))


async def forget_tip(*, session: AsyncSession, tip_id: str) -> int:
    """On purge or cancellation: the tip links to nothing any more (links officers made stay, as notes do)."""
    return await related.delete_identifiers(session=session, tip_id=tip_id)
