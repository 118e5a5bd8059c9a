"""/search VALUE: the tips in an officer's scope that mention a phone number, account, plate, handle or
wallet, however it is written; the search is audited by its blind index, never its value."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from sqlmodel.ext.asyncio.session import AsyncSession

from handlers.buttons import OFFICER
from handlers.chat_turn import Turn
from handlers.context import VIETNAM
from handlers.i18n import number
from handlers.messages import Choice, Reply
from handlers.officer.accounts import actor, scope
from handlers.officer.triage import STATUS_NAMES
from handlers.related.extract import interpret_search
from storage import related
from storage.audit import append_audit
from storage.crypto import Keyring
from storage.models import Officer


@dataclass(frozen=True)
class SearchResult:
    understood: bool  # False: the value is no phone, account, plate, handle or wallet we can read
    kinds: tuple[str, ...]  # what the value was read as
    in_scope: tuple[related.SearchHit, ...]  # the newest ``limit`` of them
    elsewhere: dict[str | None, int]  # unit id → how many tips there
    in_scope_count: int = 0  # all of them, exactly


async def search_for_officer(*, session: AsyncSession, keyring: Keyring, value: str,
                             scope_unit_ids: Collection[str], actor: str, limit: int = 50) -> SearchResult:
    """The tips in scope that mention ``value`` (newest first), and how many elsewhere, per unit."""
    identifiers = interpret_search(value)
    keyring.refresh(min_interval=0)  # a re-index elsewhere may have moved the rows to a new key: look under it
    if not identifiers:
        return SearchResult(understood=False, kinds=(), in_scope=(), elsewhere={})
    scope = set(scope_unit_ids)
    hits = await related.find_tips_by_value(session=session, keyring=keyring, identifiers=identifiers,
                                            unit_ids=sorted(scope), limit=5 * limit)
    seen: set[str] = set()
    inside = []
    for hit in hits:
        if hit.tip.tip_id not in seen:  # one tip naming the number as phone and as Zalo is one tip
            seen.add(hit.tip.tip_id)
            inside.append(hit)
    counts = await related.count_tips_by_value(session=session, keyring=keyring, identifiers=identifiers)
    outside = {unit: n for unit, n in counts.items() if unit not in scope}
    kinds = tuple(dict.fromkeys(i.kind for i in identifiers))
    # The start of each blind index searched (found or not) lets an auditor holding the keyring check whether a
    # given value was searched; the value itself is not kept.
    marks = ",".join(related.digests(keyring=keyring, kind=i.kind, value=i.value)[keyring.related_active_id][:12]
                     for i in identifiers)
    await append_audit(session=session, keyring=keyring, actor=actor, action="search",
                       detail=f"kinds={'+'.join(kinds)} found={len(inside)} elsewhere={sum(outside.values())} "
                              f"index={marks}")
    return SearchResult(understood=True, kinds=kinds, in_scope=tuple(inside[:limit]), elsewhere=dict(outside),
                        in_scope_count=sum(n for unit, n in counts.items() if unit in scope))


# --- /search VALUE ---------------------------------------------------------------------------------------

MAX_VALUE = 200
SHOWN = 20  # lines and buttons in the answer; the count says how many in all


async def search_command(turn: Turn, officer: Officer, args: str) -> list[Reply]:
    """/search VALUE: the tips of the officer's units that mention a number, account, plate, handle or wallet,
    newest first with a button to open each; other units' tips only counted, per unit."""
    _ = turn._
    value = args.strip()
    usage = _("Send what to look for after /search: a phone number, bank account, plate, Facebook, Zalo, "
              "Telegram or TikTok link or handle, or e-wallet number, for example /search 0909 123 456")
    if not value or len(value) > MAX_VALUE:
        return [Reply(usage)]
    result = await search_for_officer(session=turn.session, keyring=turn.services.keyring, value=value,
                                      scope_unit_ids=scope(turn, officer), actor=actor(officer))
    if not result.understood:
        return [Reply(usage)]
    lines = []
    if result.in_scope:
        lines.append(_("Tips of your units that mention it: {n}").format(n=number(result.in_scope_count, turn.lang)))
        for hit in result.in_scope[:SHOWN]:
            lines.append(_("• {ref} · received {date} · {status}").format(
                ref=hit.tip.ref, date=hit.tip.created_at.astimezone(VIETNAM).strftime("%d/%m/%Y"),
                status=_(STATUS_NAMES.get(hit.tip.status, hit.tip.status))))
        if len(result.in_scope) > SHOWN:
            lines.append("…")
    else:
        lines.append(_("No tip of your units mentions it."))
    if result.elsewhere:
        units = turn.services.settings.unit_tree
        lines.append(_("Other units: {tips}. Ask for them through your supervisor.").format(tips="; ".join(
            _("{n} tip(s) at {unit}").format(n=number(n, turn.lang), unit=units.name(unit))
            for unit, n in sorted(result.elsewhere.items(), key=lambda item: (-item[1], units.name(item[0]))))))
    choices = [Choice(OFFICER.pack("open", hit.tip.ref), hit.tip.ref) for hit in result.in_scope[:SHOWN]]
    return [Reply("\n".join(lines), choices=choices, columns=3)]
