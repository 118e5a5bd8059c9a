"""An officer's question to a tipster, through the bot: the officer never learns who the tipster is.

The waiting question is keyed by the tipster's pseudonym; which tip it is about is sealed, so the
database does not link a chat to a tip.
"""

from __future__ import annotations

import json
import unicodedata

from handlers.context import VIETNAM
from handlers.i18n import N_, translator
from handlers.messages import CHANNEL_PREFIXES, Reply
from handlers.officer.accounts import actor
from handlers.officer.triage import _tipster_route, officer_route_of, tip_to_work_on
from handlers.officer.verdict_reasons import was_reopened
from handlers.chat_turn import Turn
from handlers.related.indexing import index_texts
from storage import keys as key_store
from storage import tip_states
from storage import triage as triage_store
from storage.audit import append_audit
from storage.followups import close_follow_up, has_follow_up, oldest_follow_up, open_follow_up
from storage.models import Officer, Tip

MAX_QUESTION = 1000
MAX_ANSWER = 4000


async def ask(turn: Turn, officer: Officer, args: str) -> list[Reply]:
    """/ask REF QUESTION: the tipster gets the question in this bot; their answer is attached to the tip."""
    _ = turn._
    tip, question = await tip_to_work_on(turn, officer, args)
    question = unicodedata.normalize("NFC", question).strip()
    if not question:
        return [Reply(_("Write the question after the reference: /ask {ref} QUESTION").format(ref=tip.ref))]
    if len(question) > MAX_QUESTION:
        return [Reply(_("The question is too long: keep it under {n} characters.").format(n=MAX_QUESTION))]
    found = await _tipster_route(turn, tip)
    if found is None and await was_reopened(turn, tip):
        # Not "chose no follow-up": the first verdict forgot the route (close_contact), whatever they chose.
        return [Reply(_("Tip {ref} was judged before: the way to reach its tipster, if they left one, closed with "
                        "that first verdict, and a reopening does not bring it back. The question was not sent."
                        ).format(ref=tip.ref))]
    if found is None:
        return [Reply(_("The tipster of {ref} chose no follow-up: the question cannot be delivered.").format(ref=tip.ref))]
    route, lang = found
    services = turn.services
    data_key = await key_store.load_data_key(session=turn.session, keyring=services.keyring, owner_id=tip.id)
    name = await triage_store.add_sealed_field(session=turn.session, tip=tip, data_key=data_key, prefix="question",
                                               value=question)
    tipster_key = services.keyring.pseudonym(CHANNEL_PREFIXES[route.channel], route.chat_id)
    await open_follow_up(session=turn.session, keyring=services.keyring, chat_key=tipster_key,
                         content=json.dumps({"tip": tip.id, "officer": officer.id, "question": name.split(":")[1]}))
    tip_states.ask(session=turn.session, tip=tip, officer_id=officer.id, now=turn.now)
    await append_audit(session=turn.session, keyring=services.keyring, actor=actor(officer), action="ask",
                       tip_ref=tip.ref, detail=f"field={name}")  # which question, for the tip's timeline
    received = tip.created_at.astimezone(VIETNAM).strftime("%d/%m/%Y")
    # In the tipster's language, not the officer's.
    to_tipster = translator(lang)(N_("An officer has a question about your tip of {date}:\n\n«{question}»\n\n"
                                     "Please answer with your next message here.")).format(date=received, question=question)
    return [Reply(_("Your question on {ref} was sent to the tipster.").format(ref=tip.ref)),
            Reply(to_tipster, to=route, language=lang)]


async def question_waiting(turn: Turn) -> bool:
    return await has_follow_up(session=turn.session, chat_key=turn.conversation.chat_key)


async def pending_answer(turn: Turn) -> list[Reply] | None:
    """The tipster's next plain message answers the oldest open question; None if there is none."""
    _ = turn._
    services = turn.services
    found = await oldest_follow_up(session=turn.session, keyring=services.keyring, chat_key=turn.conversation.chat_key)
    if found is None:
        return None
    follow_up, content = found
    waiting = json.loads(content)
    text = unicodedata.normalize("NFC", turn.inbound.text or "").strip()
    if not text:
        return [Reply(_("Please answer the officer's question in text."))]
    if len(text) > MAX_ANSWER:
        return [Reply(_("That is too long ({length} characters): please keep it under {n} characters.").format(
            length=len(text), n=MAX_ANSWER))]
    tip = await turn.session.get(Tip, waiting["tip"])
    await close_follow_up(session=turn.session, follow_up=follow_up)
    if tip is None or tip.purged_at is not None or tip.status in tip_states.JUDGED:
        return [Reply(_("Thank you. This tip has already been dealt with, so no answer is needed any more."))]
    data_key = await key_store.load_data_key(session=turn.session, keyring=services.keyring, owner_id=tip.id)
    name = await triage_store.add_sealed_field(session=turn.session, tip=tip, data_key=data_key, prefix="answer",
                                               value=text)
    await index_texts(session=turn.session, keyring=services.keyring, data_key=data_key, texts=[text])
    tip_states.answered(session=turn.session, tip=tip, now=turn.now)
    await append_audit(session=turn.session, keyring=services.keyring, actor="tipster", action="answer",
                       tip_ref=tip.ref, detail=f"field={name}")
    replies = [Reply(_("Thank you, your answer was passed on to the officer."))]
    found_officer = await officer_route_of(turn, waiting["officer"])
    if found_officer is not None:
        route, lang = found_officer
        text = translator(lang)(N_("The tipster answered your question on {ref}. Send /tip {ref} to read it."))
        replies.append(Reply(text.format(
            ref=tip.ref), to=route))
    return replies

