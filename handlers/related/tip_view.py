"""The "Liên quan" part of /tip: for each identifier this tip shares, the other tips an officer may open,
and for the rest only how many, per unit, so they can ask through their supervisor."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from sqlmodel.ext.asyncio.session import AsyncSession

from handlers.chat_turn import Turn
from handlers.context import VIETNAM
from handlers.i18n import N_, number
from handlers.officer.accounts import actor, scope
from storage import related
from storage.audit import append_audit
from storage.crypto import DataKey, Keyring
from storage.models import Officer, Tip


@dataclass(frozen=True)
class RelatedView:
    """One shared identifier as an officer sees it: masked, the tips in their scope, counts elsewhere."""

    kind: str
    masked: str
    in_scope: tuple[related.RelatedTip, ...]  # the newest of them
    elsewhere: dict[str | None, int]  # unit id → how many tips there; the reference is not shown
    counts: dict[str | None, int]  # every unit's count, in scope or not


@dataclass(frozen=True)
class TipRelations:
    shared: tuple[RelatedView, ...]
    links: tuple[related.TipLink, ...]  # by hand; out-of-scope ones are the caller's to show or count

    def __bool__(self) -> bool:
        return bool(self.shared or self.links)


async def relations_for_officer(*, session: AsyncSession, keyring: Keyring, data_key: DataKey, tip_ref: str,
                                scope_unit_ids: Collection[str], actor: str, per_identifier: int = 10) -> TipRelations:
    """What /tip shows under "Liên quan"; the showing is audited (how many, never which identifier)."""
    scope = set(scope_unit_ids)
    views = []
    for group in await related.related_tips(session=session, data_key=data_key, unit_ids=sorted(scope)):
        outside = {unit: n for unit, n in group.count_by_unit.items() if unit not in scope}
        views.append(RelatedView(kind=group.kind, masked=group.masked, in_scope=group.tips[:per_identifier],
                                 elsewhere=outside,
                                 counts=group.count_by_unit))
    links = tuple(await related.links_of(session=session, tip_id=data_key.owner_id))
    if views or links:
        shown = sum(len(v.in_scope) for v in views)
        counted = sum(sum(v.elsewhere.values()) for v in views)
        await append_audit(session=session, keyring=keyring, actor=actor, action="related", tip_ref=tip_ref,
                           detail=f"identifiers={len(views)} shown={shown} elsewhere={counted} links={len(links)}")
    return TipRelations(shared=tuple(views), links=links)


# --- what /tip shows -----------------------------------------------------------------------------------

KIND_NAMES = {
    "phone": N_("phone number"), "bank_account": N_("bank account"), "plate": N_("plate"),
    "ewallet": N_("e-wallet"), "facebook": N_("Facebook account"), "zalo": N_("Zalo account"),
    "telegram": N_("Telegram account"), "tiktok": N_("TikTok account"),
}
LINK_REASONS = {"manual": N_("linked by an officer"), "duplicate": N_("duplicate")}
REFS_SHOWN = 10  # a busy scam number is named by hundreds of tips: the newest few, and how many in all


def _refs(tips, total: int) -> str:
    return ", ".join(t.ref for t in tips) + (" …" if total > len(tips) else "")


def _outside(turn: Turn, counts: dict[str | None, int]) -> list[str]:
    _ = turn._
    units = turn.services.settings.unit_tree
    return [_("{n} tip(s) at {unit}").format(n=number(n, turn.lang), unit=units.name(unit))
            for unit, n in sorted(counts.items(), key=lambda item: (-item[1], units.name(item[0])))]


async def related_lines(turn: Turn, officer: Officer, tip: Tip, data_key: DataKey) -> list[str]:
    """The end of /tip: "Liên quan", each shared identifier masked with the tips of the officer's units by
    reference and the others only counted per unit, then the tips linked by hand (both tips show the link)."""
    _ = turn._
    relations = await relations_for_officer(session=turn.session, keyring=turn.services.keyring, data_key=data_key,
                                            tip_ref=tip.ref, scope_unit_ids=scope(turn, officer), actor=actor(officer),
                                            per_identifier=REFS_SHOWN)
    if not relations:
        return []
    mine = set(scope(turn, officer))
    lines = ["", _("Related:")]
    for view in relations.shared:
        parts = []
        total = sum(_counts_in(view, mine).values())
        if total:
            parts.append(_("{n} in your units: {refs}").format(n=number(total, turn.lang),
                                                              refs=_refs(view.in_scope, total)))
        parts += _outside(turn, view.elsewhere)
        lines.append(_("• Same {kind} {masked}: {tips}").format(kind=_(KIND_NAMES.get(view.kind, view.kind)),
                                                               masked=view.masked, tips="; ".join(parts)))
    outside_links: dict[str | None, int] = {}
    for link in relations.links:
        if link.tip.unit_id in mine:
            lines.append(_("• Linked: {ref} ({reason}, {date})").format(
                ref=link.tip.ref, reason=_(LINK_REASONS.get(link.reason, link.reason)),
                date=link.created_at.astimezone(VIETNAM).strftime("%d/%m/%Y")))
        else:
            outside_links[link.tip.unit_id] = outside_links.get(link.tip.unit_id, 0) + 1
    if outside_links:
        lines.append(_("• Linked: {tips}").format(tips="; ".join(_outside(turn, outside_links))))
    if any(v.elsewhere for v in relations.shared) or outside_links:
        lines.append(_("Tips of other units are only counted: ask for them through your supervisor."))
    return lines


def _counts_in(view: RelatedView, mine: set[str]) -> dict[str | None, int]:
    return {unit: n for unit, n in view.counts.items() if unit in mine}
