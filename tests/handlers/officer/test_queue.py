"""/queue with filters and /judged: the tips an officer looks for among dozens a day, and a supervisor's unit column."""

from __future__ import annotations

from dataclasses import replace

from sqlmodel import select

from storage.models import Tip
from tests.handlers.officer.test_triage import enrol, submit_tip


async def _three_tips(services, tipline) -> dict[str, str]:
    """Drugs and fraud at Bến Thành, and drugs moved to Sài Gòn (ward and unit): {name: ref}."""
    refs = {}
    for name, chat, category in (("drugs", "111", "Drugs"), ("fraud", "112", "Fraud"), ("saigon", "113", "Drugs")):
        await submit_tip(tipline, chat, category=category)
        async with services.db.transaction() as session:
            refs[name] = (await session.exec(select(Tip.ref).where(Tip.ref.not_in(list(refs.values()))))).one()
    async with services.db.transaction() as session:
        tip = (await session.exec(select(Tip).where(Tip.ref == refs["saigon"]))).one()
        tip.area_code, tip.unit_id = "79.26737", "ca-saigon"
        session.add(tip)
    return refs


def _listed(text: str) -> list[str]:
    return [line.split(" · ")[0].removeprefix("🔴 ") for line in text.splitlines() if " · " in line]


async def test_filters_by_category_area_state_and_mine(services, tipline):
    refs = await _three_tips(services, tipline)
    boss = await enrol(services, tipline, "902", unit="ca-hcm", role="supervisor", name="Thiếu tá Minh")
    assert sorted(_listed((await boss.send("/queue"))[0].text)) == sorted(refs.values())
    assert _listed((await boss.send("/queue lua-dao"))[0].text) == [refs["fraud"]]
    assert _listed((await boss.send("/queue Lừa đảo"))[0].text) == [refs["fraud"]]
    assert _listed((await boss.send("/queue fraud"))[0].text) == [refs["fraud"]]
    assert sorted(_listed((await boss.send("/queue ma-tuy"))[0].text)) == sorted([refs["drugs"], refs["saigon"]])
    assert _listed((await boss.send("/queue ma-tuy sai-gon"))[0].text) == [refs["saigon"]]
    assert sorted(_listed((await boss.send("/queue ben-thanh"))[0].text)) == sorted([refs["drugs"], refs["fraud"]])
    assert "Tips matching «drugs 79.26737»: 1 (page 1/1)" in (await boss.send("/queue ma-tuy sai-gon"))[0].text
    await boss.send(f"/tip {refs['fraud']}")  # claims it
    assert _listed((await boss.send("/queue mine"))[0].text) == [refs["fraud"]]
    assert _listed((await boss.send("/queue dang-xac-minh"))[0].text) == [refs["fraud"]]
    assert sorted(_listed((await boss.send("/queue moi"))[0].text)) == sorted([refs["drugs"], refs["saigon"]])
    none = await boss.send("/queue mine ma-tuy")
    assert none[0].text == "No tip in your units matches «mine drugs»."


async def test_a_supervisors_queue_says_which_unit_each_tip_is_with(services, tipline):
    refs = await _three_tips(services, tipline)
    boss = await enrol(services, tipline, "902", unit="ca-hcm", role="supervisor", name="Thiếu tá Minh")
    lines = {line.split(" · ")[0].removeprefix("🔴 "): line for line in (await boss.send("/queue"))[0].text.splitlines()
             if " · " in line}
    assert lines[refs["saigon"]].endswith(" · Công an phường Sài Gòn")
    assert lines[refs["drugs"]].endswith(" · Công an phường Bến Thành")
    officer = await enrol(services, tipline, "900")  # one unit: no column to read
    text = (await officer.send("/queue"))[0].text
    assert "Công an phường" not in text and sorted(_listed(text)) == sorted([refs["drugs"], refs["fraud"]])


async def test_judged_lists_verdicts_latest_first(services, tipline):
    refs = await _three_tips(services, tipline)
    officer = await enrol(services, tipline, "900")
    assert (await officer.send("/judged"))[0].text == "No tip in your units matches «judged»."
    await officer.send(f"/valuable {refs['drugs']}")
    await officer.send(f"/notvaluable {refs['fraud']} false")
    judged = (await officer.send("/judged"))[0].text
    assert judged.startswith("Judged tips: 2 (page 1/1)")
    assert _listed(judged) == [refs["fraud"], refs["drugs"]]
    assert "· not valuable" in judged and "· valuable" in judged
    assert _listed((await officer.send("/queue"))[0].text) == []  # no longer open
    assert _listed((await officer.send("/queue co-gia-tri"))[0].text) == [refs["drugs"]]
    assert _listed((await officer.send("/judged lua-dao"))[0].text) == [refs["fraud"]]


async def test_pages_keep_their_filters(services, tipline):
    refs = await _three_tips(services, tipline)
    services.settings = replace(services.settings, triage=replace(services.settings.triage, queue_page=1))
    boss = await enrol(services, tipline, "902", unit="ca-hcm", role="supervisor", name="Thiếu tá Minh")
    first = await boss.send("/queue ma-tuy")
    assert "(page 1/2)" in first[0].text
    assert [c.id for c in first[0].choices][-1] == "t:queue:drugs:2"
    second = await boss.click("Next page")
    assert "(page 2/2)" in second[0].text
    assert sorted(_listed(first[0].text) + _listed(second[0].text)) == sorted([refs["drugs"], refs["saigon"]])
    assert "(page 2/2)" in (await boss.send("/queue ma-tuy 7"))[0].text  # past the end: the last page


async def test_unknown_filters_are_explained_politely(services, tipline):
    await submit_tip(tipline, "111")
    officer = await enrol(services, tipline, "900")
    [reply] = await officer.send("/queue bogus")
    assert reply.text.startswith("I do not know the filter «bogus».") and "/queue drugs mine 2" in reply.text
    officer.language = "vi"
    [reply] = await officer.send("/queue khong-ro")
    assert "«khong-ro»" in reply.text and "lọc" in reply.text and "ma-tuy" in reply.text and "cua-toi" in reply.text
    officer.language = "en"
    [reply] = await officer.send("/queue moi mine ma-tuy ben-thanh mine")  # more than a page button can carry
    assert reply.text == "At most 4 filters at a time, please."


async def test_a_long_queue_is_counted_only_so_far(services, tipline, monkeypatch):
    """Past COUNTED tips the title says "more than" and the pages go on: counting a province's every verdict
    would cost more than the page."""
    from handlers.officer import queue
    refs = await _three_tips(services, tipline)
    monkeypatch.setattr(queue, "COUNTED", 1)
    services.settings = replace(services.settings, triage=replace(services.settings.triage, queue_page=1))
    boss = await enrol(services, tipline, "902", unit="ca-hcm", role="supervisor", name="Thiếu tá Minh")
    seen = []
    first = await boss.send("/queue")
    assert first[0].text.startswith("Open tips: more than 1 (page 1)\n")
    seen += _listed(first[0].text)
    second = await boss.click("Next page")
    assert second[0].text.startswith("Open tips: more than 2 (page 2)\n")
    seen += _listed(second[0].text)
    third = await boss.click("Next page")
    assert third[0].text.startswith("Open tips: 3 (page 3/3)\n")  # the end is in sight: counted exactly
    assert not any("Next page" in c.label for c in third[0].choices)
    seen += _listed(third[0].text)
    assert sorted(seen) == sorted(refs.values())
    assert (await boss.send("/queue 9"))[0].text.startswith("Open tips: 3 (page 3/3)\n")  # past the end: the last
    monkeypatch.setattr(queue, "COUNTED", 1_000)
    assert (await boss.send("/queue"))[0].text.startswith("Open tips: 3 (page 1/3)\n")
