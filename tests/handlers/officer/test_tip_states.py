"""Tip states: each move starts only from the states it names; the handlers refuse politely before that."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from storage import tip_states
from storage.models import Tip
from storage.tip_states import StateError, TipStatus

NOW = datetime(2026, 3, 1, tzinfo=timezone.utc)


class _Session:
    def add(self, row) -> None:
        self.added = row


def _tip(status: TipStatus, claimed_by: int | None = None) -> Tip:
    return Tip(id="t1", ref="K7QM2X", channel="console", category="drugs", area_code="79", unit_id="ca",
               status=status.value, claimed_by=claimed_by, receipt_hash="h")


@pytest.mark.parametrize("status", list(TipStatus))
def test_release_only_a_claimed_tip(status):
    tip = _tip(status, claimed_by=7)
    if status in tip_states.CLAIMED:
        tip_states.release(session=_Session(), tip=tip, now=NOW)
        assert (tip.status, tip.claimed_by) == ("new", None)
    else:
        with pytest.raises(StateError):
            tip_states.release(session=_Session(), tip=tip, now=NOW)
        assert tip.status == status


@pytest.mark.parametrize("status", list(TipStatus))
def test_a_judged_tip_is_never_judged_transferred_or_asked_about_again(status):
    moves = {"valuable": lambda tip: tip_states.judge(session=_Session(), tip=tip, verdict=TipStatus.VALUABLE,
                                                      reason=None, officer_id=7, now=NOW),
             "transferred": lambda tip: tip_states.transfer(session=_Session(), tip=tip, unit_id="other", now=NOW),
             "needs_info": lambda tip: tip_states.ask(session=_Session(), tip=tip, officer_id=7, now=NOW)}
    for becomes, move in moves.items():
        tip = _tip(status)
        if status in tip_states.JUDGED:
            with pytest.raises(StateError):
                move(tip)
            assert tip.status == status and tip.unit_id == "ca"
        else:
            move(tip)
            assert tip.status == becomes and tip.claimed_by == (None if becomes == "transferred" else 7)


def test_an_answer_puts_a_waiting_tip_back_in_review_and_leaves_others_as_they_are():
    waiting, transferred = _tip(TipStatus.NEEDS_INFO, claimed_by=7), _tip(TipStatus.TRANSFERRED)
    tip_states.answered(session=_Session(), tip=waiting, now=NOW)
    tip_states.answered(session=_Session(), tip=transferred, now=NOW)
    assert (waiting.status, transferred.status) == ("in_review", "transferred")


def test_a_verdict_is_one_of_the_two_verdicts():
    with pytest.raises(StateError):
        tip_states.judge(session=_Session(), tip=_tip(TipStatus.IN_REVIEW), verdict=TipStatus.NEW, reason=None,
                         officer_id=7, now=NOW)


@pytest.mark.parametrize("status", list(TipStatus))
def test_only_a_judged_tip_is_reopened_and_it_goes_back_to_review(status):
    tip = _tip(status, claimed_by=7)
    tip.verdict_reason, tip.verdict_at = "false", NOW
    if status in tip_states.JUDGED:
        tip_states.reopen(session=_Session(), tip=tip, now=NOW, holder_id=9)  # 7 was revoked: 9 reopened it
        assert (tip.status, tip.claimed_by, tip.verdict_reason, tip.verdict_at) == ("in_review", 9, None, None)
        assert tip.claimed_at == NOW
    else:
        with pytest.raises(StateError):
            tip_states.reopen(session=_Session(), tip=tip, now=NOW, holder_id=7)
        assert (tip.status, tip.verdict_reason) == (status, "false")


def test_a_purged_tip_is_not_reopened():
    tip = _tip(TipStatus.NOT_VALUABLE, claimed_by=7)
    tip.purged_at = NOW
    with pytest.raises(StateError):
        tip_states.reopen(session=_Session(), tip=tip, now=NOW, holder_id=7)
    assert tip.status == "not_valuable"
