"""The ward step: one match is confirmed, close spellings and old names (before July 2025) lead to today's wards
as choices, a whole city is never taken silently, and «I don't know» sends the tip to the province's unit.

Driven through the channel-neutral tip line; the Zalo chats type what a Zalo citizen types (numbers, "có").
"""

from __future__ import annotations

import pytest
from sqlmodel import select

from storage.models import Tip
from tests.support.chat import ChatClient
from tests.support.state import stored


async def reach_area(citizen) -> None:
    await citizen.send("/report")
    await citizen.click("category:theft")
    await citizen.send("Hai thanh niên giật túi xách của một phụ nữ trước chợ.")
    await citizen.click("when:today")
    assert "ward or commune" in citizen.text or "phường, xã" in citizen.text


async def finish(citizen) -> Tip:
    """Skip what is left, send the tip, and return it as stored."""
    await citizen.click("place:skip")
    await citizen.click("people:skip")
    await citizen.click("evidence:done")
    await citizen.click("identity:anonymous")
    review = citizen.text
    await citizen.click("review:submit")
    assert "TB-" in citizen.text
    return review


async def the_tip(services) -> Tip:
    async with services.db.transaction() as session:
        return (await session.exec(select(Tip))).one()


async def test_a_single_match_is_confirmed_in_vietnamese(citizen, services):
    await reach_area(citizen)
    await citizen.send("hoan kiem")
    assert citizen.text == "Có phải Phường Hoàn Kiếm, TP. Hà Nội?"
    assert citizen.labels == ["Có", "Không, nhập tên khác", "Tôi không rõ phường, xã"]
    assert (await stored(services, citizen))["draft"]["step"] == "area"  # nothing is taken before the «Có»
    await citizen.click("Có")
    assert "bản đồ" in citizen.text  # the next question: the place
    assert (await stored(services, citizen))["draft"]["answers"]["area"] == {"code": "01.00070"}


async def test_on_zalo_a_typed_co_or_number_confirms(tipline, services):
    for chat_id, typed in (("zl-1", "co"), ("zl-2", "có"), ("zl-3", "1")):
        citizen = ChatClient(tipline, chat_id=chat_id, channel="zalo")
        await reach_area(citizen)
        await citizen.send("hoan kiem")
        assert "Có phải Phường Hoàn Kiếm, TP. Hà Nội?" in citizen.text
        await citizen.send(typed)
        assert (await stored(services, citizen))["draft"]["answers"]["area"] == {"code": "01.00070"}, typed


async def test_no_asks_for_the_name_again_and_changes_nothing_else(citizen, services):
    citizen.language = "en"
    await reach_area(citizen)
    before = await stored(services, citizen)
    await citizen.send("hoan kiem")
    await citizen.click("No, type another name")
    assert citizen.text.startswith("Then please type the name of the ward or commune again")
    assert "In which ward or commune did it happen?" in citizen.text
    assert await stored(services, citizen) == before
    await citizen.send("khong")  # a typed "no" where no confirmation is asked is just a name that matches nothing
    assert "No ward or commune matches «khong»" in citizen.text


async def test_a_close_spelling_is_suggested(citizen, services):
    citizen.language = "en"
    await reach_area(citizen)
    await citizen.send("ben tahnh")
    assert citizen.text == "Is it Phường Bến Thành, TP. Hồ Chí Minh?"
    await citizen.click("Yes")
    assert (await stored(services, citizen))["draft"]["answers"]["area"] == {"code": "79.26734"}


async def test_another_name_typed_at_the_confirmation_is_searched(citizen, services):
    citizen.language = "en"
    await reach_area(citizen)
    await citizen.send("ben tahnh")
    await citizen.send("tan dinh")
    assert citizen.text == "Is it Phường Tân Định, TP. Hồ Chí Minh?"
    await citizen.send("yes")
    assert (await stored(services, citizen))["draft"]["answers"]["area"] == {"code": "79.26740"}


async def test_an_old_district_leads_to_the_wards_that_replaced_it(tipline, services):
    citizen = ChatClient(tipline, chat_id="zl-quan-1", channel="zalo", language="en")
    await reach_area(citizen)
    await citizen.send("quan 1")
    assert citizen.text.startswith("«Quận 1 (Thành phố Hồ Chí Minh)» is a name from before 1 July 2025. Its area "
                                   "is now divided among the wards and communes below")
    # Quận 1's wards that this deployment serves (Cầu Ông Lãnh is not one of them), then «I don't know».
    assert citizen.labels == ["Phường Tân Định, Thành phố Hồ Chí Minh", "Phường Sài Gòn, Thành phố Hồ Chí Minh",
                              "Phường Bến Thành, Thành phố Hồ Chí Minh", "I don't know the ward or commune"]
    await citizen.send("2")  # as typed on Zalo, where the choices are a numbered list
    assert (await stored(services, citizen))["draft"]["answers"]["area"] == {"code": "79.26737"}
    await finish(citizen)
    tip = await the_tip(services)
    assert (tip.area_code, tip.unit_id) == ("79.26737", "ca-saigon")


async def test_a_former_ward_merged_into_one_is_confirmed(citizen, services):
    citizen.language = "en"
    await reach_area(citizen)
    await citizen.send("phuong ben nghe")
    assert citizen.text == ("«Phường Bến Nghé (Quận 1, Thành phố Hồ Chí Minh)» is a name from before 1 July 2025; "
                            "that area is now part of Phường Sài Gòn, TP. Hồ Chí Minh.\nIs it Phường Sài Gòn, "
                            "TP. Hồ Chí Minh?")
    await citizen.click("Yes")
    assert (await stored(services, citizen))["draft"]["answers"]["area"] == {"code": "79.26737"}


async def test_a_whole_city_is_never_taken_silently(citizen, services):
    citizen.language = "en"
    await reach_area(citizen)
    await citizen.send("ha noi")
    assert citizen.text.startswith("Thành phố Hà Nội is a whole province or city. In which ward or commune did it "
                                   "happen?")
    assert citizen.labels == ["I don't know the ward or commune"]
    assert (await stored(services, citizen))["draft"]["step"] == "area"
    await citizen.click("I don't know the ward or commune")
    assert (await stored(services, citizen))["draft"]["answers"]["area"] == {"code": "01"}
    review = await finish(citizen)
    assert "Area: Thành phố Hà Nội (ward or commune not known)" in review
    tip = await the_tip(services)
    assert (tip.area_code, tip.unit_id) == ("01", "ca-hn")  # the city's own police take it


async def test_i_dont_know_asks_which_province_when_there_are_several(citizen, services):
    citizen.language = "en"
    await reach_area(citizen)
    assert citizen.labels == ["I don't know the ward or commune"]  # offered from the first asking
    await citizen.click("I don't know the ward or commune")
    assert citizen.text == "In which province or city did it happen?"
    assert citizen.labels == ["Thành phố Hồ Chí Minh", "Thành phố Hà Nội"]
    await citizen.click("Thành phố Hồ Chí Minh")
    assert (await stored(services, citizen))["draft"]["answers"]["area"] == {"code": "79"}
    await finish(citizen)
    assert (await the_tip(services)).unit_id == "ca-hcm"


async def test_no_match_says_so_and_offers_i_dont_know(citizen, services):
    await reach_area(citizen)
    await citizen.send("Phường Không Có Thật")
    assert citizen.text.startswith("Không tìm thấy phường, xã nào khớp với «Phường Không Có Thật».")
    assert "Tôi không rõ phường, xã" in citizen.text and citizen.labels == ["Tôi không rõ phường, xã"]


def test_official_codes_from_areas_import_need_no_names_to_match():
    from handlers.areas import Area, AreaIndex
    areas = AreaIndex([Area("79", "Thành phố Hồ Chí Minh"), Area("26743", "Phường Bến Thành", "79"),
                       Area("26740", "Phường Sài Gòn", "79"), Area("26758", "Phường Cầu Ông Lãnh", "79"),
                       Area("99999", "Khu A", "79")])
    assert areas.find_place("q1").choices == ("26740", "26743", "26758")  # Quận 1's wards that are configured
    assert areas.find_place("khu a").choices == ("99999",)  # a code of one's own still matches its name
    assert areas.find_place("tp hcm").province == "79"


async def test_a_deployments_own_old_names_lead_to_their_areas(tmp_path, database_url):
    from bot.config import ConfigError, load_config
    from tests.support.deployment import config_toml
    (tmp_path / "place_names.toml").write_text(
        '[[names]]\nname = "Khu phố Chợ Cũ"\nareas = ["79.26734", "79.26737"]\n', encoding="utf-8")
    config = tmp_path / "config.toml"
    config.write_text(config_toml(database_url, extra='[questionnaire]\nplace_names = "./place_names.toml"\n'),
                      encoding="utf-8")
    areas = load_config(config).tipline_settings().areas
    found = areas.find_place("khu pho cho cu")
    assert found.former == (("Khu phố Chợ Cũ", ("79.26734", "79.26737")),)
    assert found.choices == ("79.26734", "79.26737")
    (tmp_path / "place_names.toml").write_text('[[names]]\nname = "Chợ Cũ"\nareas = ["79.99999"]\n',
                                               encoding="utf-8")
    with pytest.raises(ConfigError, match=r'questionnaire.place_names: .*names\[0\]\.areas: "79.99999" is not the '
                                          r'code of any \[\[areas\]\] entry'):
        load_config(config).tipline_settings()


# --- a map pin at the ward question ------------------------------------------------------------------------------
# Landmarks and where they are (coordinates read off the map; the ward from the resolutions cited in
# tests/handlers/test_divisions.py: the old ward each stood in, and the new ward that took it over).
NOTRE_DAME = (10.7798, 106.6990)  # Nhà thờ Đức Bà, old phường Bến Nghé → Phường Sài Gòn, well inside it
BEN_THANH_MARKET = (10.7725, 106.6980)  # Chợ Bến Thành → Phường Bến Thành, about 250 m from Phường Sài Gòn
MAUSOLEUM = (21.0368, 105.8346)  # Lăng Chủ tịch Hồ Chí Minh → Phường Ba Đình, which the test areas do not have
OFF_VUNG_TAU = (10.2000, 107.3000)  # the East Sea, 20 km offshore: in no ward at all


async def test_a_pin_inside_one_ward_is_asked_about_and_then_kept_as_the_place(citizen, services):
    await reach_area(citizen)
    assert citizen.last[-1].location_button == "📍 Gửi vị trí của tôi"
    await citizen.send_location(*NOTRE_DAME)
    assert citizen.text == "Vị trí này thuộc Phường Sài Gòn, TP. Hồ Chí Minh?"
    assert citizen.labels == ["Có", "Không, nhập tên khác", "Tôi không rõ phường, xã"]
    draft = (await stored(services, citizen))["draft"]
    assert draft["step"] == "area" and "area" not in draft["answers"] and "place" not in draft["answers"]
    await citizen.click("Có")
    assert citizen.text.startswith("Vị trí bạn gửi được giữ làm địa điểm xảy ra sự việc")
    assert "người hoặc phương tiện" in citizen.text  # the place question is not asked again
    answers = (await stored(services, citizen))["draft"]["answers"]
    assert answers["area"]["code"] == "79.26737"
    assert answers["place"] == {"latitude": NOTRE_DAME[0], "longitude": NOTRE_DAME[1]}
    await citizen.click("people:skip")
    await citizen.click("evidence:done")
    await citizen.click("identity:anonymous")
    assert "Khu vực: Phường Sài Gòn, Thành phố Hồ Chí Minh" in citizen.text
    assert "Địa điểm: Vị trí trên bản đồ (10.77980, 106.69900)" in citizen.text
    await citizen.click("review:submit")
    tip = await the_tip(services)
    assert (tip.area_code, tip.unit_id) == ("79.26737", "ca-saigon")


async def test_a_pin_near_a_boundary_offers_its_ward_first_and_the_neighbour(citizen, services):
    citizen.language = "en"
    await reach_area(citizen)
    await citizen.send_location(*BEN_THANH_MARKET)
    assert citizen.text == ("Is this location in Phường Bến Thành, TP. Hồ Chí Minh? It is close to a boundary: pick "
                            "the ward or commune where it happened, or type another name.")
    assert citizen.labels == ["Phường Bến Thành, Thành phố Hồ Chí Minh", "Phường Sài Gòn, Thành phố Hồ Chí Minh",
                              "I don't know the ward or commune"]
    assert (await stored(services, citizen))["draft"]["step"] == "area"
    await citizen.click("Phường Sài Gòn")  # the citizen knows better than the outline
    assert (await stored(services, citizen))["draft"]["answers"]["area"]["code"] == "79.26737"


async def test_on_zalo_the_pins_wards_are_numbered_choices(tipline, services):
    citizen = ChatClient(tipline, chat_id="zoa-pin", channel="zalo_oa")
    await reach_area(citizen)
    # No location button is offered on Zalo (it would be shown as "type the address"), but a pin sent with
    # Zalo's own «Vị trí» is read all the same.
    assert citizen.last[-1].location_button is None and "Gửi vị trí" not in citizen.text
    await citizen.send_location(*BEN_THANH_MARKET)
    assert citizen.text.startswith("Vị trí này thuộc Phường Bến Thành, TP. Hồ Chí Minh?")
    assert citizen.labels == ["Phường Bến Thành, Thành phố Hồ Chí Minh", "Phường Sài Gòn, Thành phố Hồ Chí Minh",
                              "Tôi không rõ phường, xã"]
    await citizen.send("1")
    assert (await stored(services, citizen))["draft"]["answers"]["area"]["code"] == "79.26734"
    other = ChatClient(tipline, chat_id="zl-pin", channel="zalo")
    await reach_area(other)
    await other.send_location(*NOTRE_DAME)
    await other.send("có")
    assert (await stored(services, other))["draft"]["answers"]["area"]["code"] == "79.26737"


async def test_no_to_the_pins_ward_drops_the_pin_and_asks_the_name(citizen, services):
    citizen.language = "en"
    await reach_area(citizen)
    await citizen.send_location(*NOTRE_DAME)
    await citizen.click("No, type another name")
    assert "In which ward or commune did it happen?" in citizen.text
    await citizen.send("tan dinh")
    await citizen.click("Yes")
    answers = (await stored(services, citizen))["draft"]["answers"]
    assert answers["area"] == {"code": "79.26740"} and "place" not in answers
    assert "location pin" in citizen.text  # the place question comes as usual


@pytest.mark.parametrize("pin, said", [
    (MAUSOLEUM, "Sorry, this location is in Phường Ba Đình, Thành phố Hà Nội, which is not among the wards and "
                "communes this tip line serves."),
    (OFF_VUNG_TAU, "Sorry, this location is not in any ward or commune this tip line serves."),
])
async def test_a_pin_outside_every_configured_ward_is_said_politely_and_the_question_asked_again(
        citizen, services, pin, said):
    citizen.language = "en"
    await reach_area(citizen)
    before = await stored(services, citizen)
    await citizen.send_location(*pin)
    assert citizen.text.startswith(said + "\n\nIn which ward or commune did it happen?")
    assert citizen.labels == ["I don't know the ward or commune"]
    assert await stored(services, citizen) == before
    await citizen.send("hoan kiem")
    assert citizen.text == "Is it Phường Hoàn Kiếm, TP. Hà Nội?"


# A deployment made by `tinbao areas import --province 79 --province 01`: every ward, by its official code.
def imported_areas():
    from handlers.areas import Area, AreaIndex
    from handlers.divisions import national
    catalog = national()
    areas = []
    for province in ("79", "01"):
        areas.append(Area(province, catalog.provinces[province].name))
        areas += [Area(w.code, w.name, province) for w in catalog.wards_of(province)]
    return AreaIndex(areas)


LANDMARKS = [  # the old ward each stands in, and the new ward (Nghị quyết 1685 and 1656/NQ-UBTVQH15)
    ("Chợ Bến Thành (old P. Bến Thành, Quận 1)", BEN_THANH_MARKET, "Phường Bến Thành"),
    ("Nhà thờ Đức Bà (old P. Bến Nghé)", NOTRE_DAME, "Phường Sài Gòn"),
    ("Đền Trần Hưng Đạo, 36 Võ Thị Sáu (old P. Tân Định, Quận 1)", (10.7915, 106.6953), "Phường Tân Định"),
    ("Chợ Bàn Cờ (old Phường 3, Quận 3)", (10.7712, 106.6808), "Phường Bàn Cờ"),
    ("Bãi biển Cần Thạnh (old thị trấn Cần Thạnh)", (10.4069, 106.9660), "Xã Cần Giờ"),
    ("Hồ Gươm (old P. Hàng Trống)", (21.0287, 105.8522), "Phường Hoàn Kiếm"),
    ("Hoàng thành Thăng Long (old P. Điện Biên)", (21.0352, 105.8403), "Phường Ba Đình"),
    ("Nhà hát Lớn Hà Nội (old P. Tràng Tiền)", (21.0245, 105.8576), "Phường Cửa Nam"),
]


@pytest.mark.parametrize("landmark, pin, expected", LANDMARKS, ids=[row[0] for row in LANDMARKS])
async def test_a_pin_in_a_known_ward_of_an_imported_deployment_offers_that_ward_first(
        landmark, pin, expected, db, keyring, tmp_path):
    from handlers.context import Services, TipLineSettings
    from handlers.router import TipLine
    from handlers.units import Unit, UnitTree
    from storage.blobs import BlobStore
    areas = imported_areas()
    units = UnitTree([Unit("ca-hcm", "Công an Thành phố Hồ Chí Minh", None, ("79",)),
                      Unit("ca-hn", "Công an Thành phố Hà Nội", None, ("01",))], areas)
    services = Services(db=db, keyring=keyring, blobs=BlobStore(tmp_path / "blobs"),
                        settings=TipLineSettings(areas=areas, units=units))
    citizen = ChatClient(TipLine(services), chat_id="800", language="en")
    await reach_area(citizen)
    await citizen.send_location(*pin)
    assert citizen.text.startswith("Is this location in ")
    pending = (await stored(services, citizen))["draft"]["pending"]
    offered = [areas.get(code).name for code in ([pending["confirm"]] if "confirm" in pending
                                                 else pending["area_options"])]
    assert expected in offered[:2], offered
    assert citizen.text.startswith(f"Is this location in {offered[0]}, ")


async def test_areas_of_ones_own_offer_no_location_button_and_say_a_pin_cannot_tell(db, keyring, tmp_path):
    from handlers.areas import Area, AreaIndex
    from handlers.context import Services, TipLineSettings
    from handlers.router import TipLine
    from storage.blobs import BlobStore
    areas = AreaIndex([Area("KV1", "Khu vực chợ Cũ"), Area("KV2", "Khu vực bến xe")])  # no official ward among them
    services = Services(db=db, keyring=keyring, blobs=BlobStore(tmp_path / "blobs"),
                        settings=TipLineSettings(areas=areas))
    citizen = ChatClient(TipLine(services), chat_id="801", language="en")
    await reach_area(citizen)
    assert citizen.last[-1].location_button is None and "tap «" not in citizen.text
    await citizen.send_location(*NOTRE_DAME)
    assert citizen.text.startswith("A map location cannot tell the ward or commune here; please type its name.")
    await citizen.send("cho cu")
    assert citizen.text == "Is it Khu vực chợ Cũ?"
