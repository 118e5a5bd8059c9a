"""/tip on Telegram: the place as a map link and a pin, the evidence with the first view and then on request."""

from __future__ import annotations

from tests.bot.test_telegram_triage import CITIZEN, COLLEAGUE, OFFICER, fake, filed, world  # noqa: F401 (fixtures)

OSM = "https://www.openstreetmap.org/?mlat=10.77260&mlon=106.69800#map=17/10.77260/106.69800"


def _methods(sent, chat: int) -> list[str]:
    return [m["method"].lower() for m in sent.to(chat)]


async def test_the_place_comes_as_a_link_and_a_pin_and_the_files_once(world, filed):
    _code, ref = filed
    first = await world.say(OFFICER, "/next")
    assert _methods(first, OFFICER) == ["sendmessage", "sendlocation", "sendmessage", "sendphoto"]
    view, pin = first.to(OFFICER)[:2]
    assert OSM in view["text"]
    assert pin["location"] == {"latitude": 10.7726, "longitude": 106.698}
    again = await world.say(OFFICER, f"/tip {ref}")
    assert _methods(again, OFFICER) == ["sendmessage", "sendlocation"]  # the files are not sent a second time
    assert "📎 Files (1)" in [label for label, _d in world.fake.buttons(again.to(OFFICER)[0])]
    tapped = await world.tap(OFFICER, "📎 Files (1)")
    assert _methods(tapped, OFFICER) == ["sendmessage", "sendphoto"] and tapped.to(CITIZEN) == []
    assert tapped.to(OFFICER)[1]["photo"][:2] == b"\xff\xd8"
    assert [e.detail for e in await world.audit("evidence")] == ["files=1", "files=1"]
    await world.enrol(COLLEAGUE, name="Trung úy Hải")
    theirs = await world.say(COLLEAGUE, f"/tip {ref}")  # a colleague's first look brings the files to them
    assert "sendphoto" in _methods(theirs, COLLEAGUE)
    assert len(await world.audit("evidence")) == 3


async def test_the_timeline_reads_in_order_on_telegram(world, filed):
    _code, ref = filed
    await world.say(OFFICER, "/next")
    await world.say(OFFICER, f"/ask {ref} Mấy giờ?")
    await world.say(CITIZEN, "Khoảng 9 giờ tối")
    await world.say(OFFICER, f"/valuable {ref} Đã chuyển đội 2")
    view = (await world.say(OFFICER, f"/tip {ref}")).to(OFFICER)[0]["text"]
    lines = view.splitlines()
    timeline = [line.split(" · ", 2)[1:] for line in lines[lines.index("Timeline:") + 1:] if line.startswith("• ")]
    assert timeline[:3] == [["Đại úy Lan", "Question to the tipster: Mấy giờ?"],
                            ["the tipster", "Answer: Khoảng 9 giờ tối"],
                            ["Đại úy Lan", "Verdict: valuable · Note: Đã chuyển đội 2"]]
