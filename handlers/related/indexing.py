"""What a tip mentions is indexed when it is sent, and again when the tipster answers a question; forgotten
when the tip is purged. Called from the submit step and the follow-up answer, in their
transaction, with the answers still in memory."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping

from handlers.citizen.questionnaire_file import Questionnaire
from handlers.related.extract import extract_identifiers
from storage import related
from storage.crypto import DataKey, Keyring
from sqlmodel.ext.asyncio.session import AsyncSession

# Steps whose answers describe the crime. The contact step is never read: the tipster's own phone number
# must not tie their tips together, or the index would undo anonymity.
_INDEXED_KINDS = ("text", "choice", "location")
RELATED_TABLES = ["related_identifier", "related_link"]  # what a purge deletes rows of, to vacuum after


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


def texts_of_sealed_fields(*, fields: Mapping[str, str], questionnaire: Questionnaire) -> list[str]:
    """What re-indexing reads from a tip's opened fields: the typed answers as on submit, then the tipster's
    answers to officers' questions (never the contact, the reply route, officers' notes or questions)."""
    answers = {}
    for step in questionnaire.steps:
        if step.id in fields:
            try:
                answers[step.id] = json.loads(fields[step.id])
            except ValueError:
                continue
    follow_ups = sorted((n for n in fields if n.startswith("answer:")), key=lambda n: int(n.split(":")[1]))
    return texts_to_index(answers=answers, questionnaire=questionnaire) + [fields[n] for n in follow_ups]


async def forget_tip(*, session: AsyncSession, tip_id: str) -> int:
    """On purge: the tip links to nothing any more, neither by what it named nor by officers' links."""
    removed = await related.delete_identifiers(session=session, tip_id=tip_id)
    return removed + await related.delete_links(session=session, tip_id=tip_id)
