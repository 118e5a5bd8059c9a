"""The national divisions as a citizen's answer meets them: today's names, typos, old names, and map pins."""

from __future__ import annotations

import unicodedata

import pytest

from handlers.divisions import find_ward, former_names, name_index, national, wards_near
from handlers.divisions.catalog import read_tsv

HCM, HANOI = "79", "01"


def ward(name: str, province: str):
    """A ward by its exact official name, looked up by name so the tests never copy a code from the data."""
    found = [w for w in national().wards_of(province) if w.name == name]
    assert len(found) == 1, f"{name} in {province}: {found}"
    return found[0]


def names(wards) -> set[str]:
    return {w.name for w in wards}


def test_the_whole_country_loads_with_unique_official_codes_and_accented_names():
    catalog = national()
    # Read from the shipped rows, not the catalog's dict by code, which would fold a repeated code into one.
    rows, provinces = read_tsv("wards.tsv"), read_tsv("provinces.tsv")
    assert len(rows) == len({row[0] for row in rows}) == 3321
    assert len(provinces) == len({row[0] for row in provinces}) == 34
    assert len(catalog.provinces) == 34
    assert len(catalog.wards) == 3321
    kinds = [w.kind for w in catalog.wards.values()]
    assert (kinds.count("phường"), kinds.count("xã"), kinds.count("đặc khu")) == (687, 2621, 13)
    assert len({w.code for w in catalog.wards.values()} | set(catalog.provinces)) == 3321 + 34
    assert all(len(w.code) == 5 and w.code.isdigit() for w in catalog.wards.values())
    assert all(len(p.code) == 2 and p.code.isdigit() for p in catalog.provinces.values())
    for place in [*catalog.provinces.values(), *catalog.wards.values()]:
        assert unicodedata.normalize("NFC", place.name) == place.name
        assert place.name.split()[0] in {"Tỉnh", "Thành", "Phường", "Xã", "Đặc"}, place.name
    assert sum(len(catalog.wards_of(code)) for code in catalog.provinces) == 3321
    assert ward("Phường Bến Thành", HCM).display == "Phường Bến Thành, Thành phố Hồ Chí Minh"
    assert ward("Phường Hoàn Kiếm", HANOI).province.name == "Thành phố Hà Nội"
    # Names keep their diacritics (a list folded to ASCII would pass every check above).
    accented = [w for w in catalog.wards.values() if not w.short_name.isascii()]
    assert len(accented) > 0.9 * len(catalog.wards)


@pytest.mark.parametrize("typed", ["ben thanh", "Bến Thành", "BEN THANH", "phuong ben thanh", "P. Bến Thành",
                                   "Phường Bến Thành"])
def test_a_ward_typed_with_or_without_accents_is_one_exact_match(typed):
    assert find_ward(typed).exact == ward("Phường Bến Thành", HCM)


@pytest.mark.parametrize("typed, meant, province", [
    ("ben tahnh", "Phường Bến Thành", HCM),  # two letters swapped
    ("ben thnh", "Phường Bến Thành", HCM),  # one left out
    ("hoan kiemm", "Phường Hoàn Kiếm", HANOI),
    ("can gioo", "Xã Cần Giờ", HCM),
    ("ben th", "Phường Bến Thành", HCM),  # the start of a name
])
def test_a_misspelt_or_partial_name_is_suggested_but_not_taken_as_exact(typed, meant, province):
    lookup = find_ward(typed)
    assert lookup.exact is None
    assert ward(meant, province) in lookup.choices[:3]


def test_restricted_to_a_deployment_only_its_wards_are_suggested():
    saigon, ben_thanh = ward("Phường Sài Gòn", HCM), ward("Phường Bến Thành", HCM)
    lookup = find_ward("ben tahnh", within=[saigon.code, ben_thanh.code])
    assert lookup.choices == [ben_thanh]
    # A province code stands for all of its wards; Hà Nội's deployment does not see Hồ Chí Minh City's.
    assert find_ward("ben thanh", within=[HANOI]).exact is None
    assert find_ward("hoan kiem", within=[HANOI]).exact == ward("Phường Hoàn Kiếm", HANOI)
    assert all(w.province.code == HANOI for w in find_ward("thanh", within=[HANOI]).choices)
    # Nothing in the deployment's areas resembles it: nothing is suggested.
    assert find_ward("xyzzy qwerty", within=[HCM]).choices == []


def test_a_name_shared_by_several_communes_is_not_an_exact_single_match():
    search = name_index().search("tan phu")
    assert search.exact is None
    assert len([s for s in search.suggestions if s.score >= 100]) > 1
    assert name_index().search("tan phu", within=[HCM]).exact is not None or \
        len([w for w in national().wards_of(HCM) if w.short_name == "Tân Phú"]) > 1


# Old names → the wards that replaced them, written from the resolutions' text, not from the data:
#   HCM  = Nghị quyết 1685/NQ-UBTVQH15 (16/6/2025), sắp xếp ĐVHC cấp xã của TP. Hồ Chí Minh, Điều 1, khoản 1–4
#          (Quận 1's ten wards into Sài Gòn, Tân Định, Bến Thành, Cầu Ông Lãnh), as printed by cafef.vn; Củ Chi's
#          seven communes as the resolution adopted them from the district's plan (reported by cgvdt.vn and PLO).
#   HN   = Nghị quyết 1656/NQ-UBTVQH15 (16/6/2025), Thành phố Hà Nội, Điều 1, khoản 1–3 (Hoàn Kiếm, Cửa Nam,
#          Ba Đình), as printed by thuviennhadat.vn; thị xã Sơn Tây's plan as reported by Nhân Dân (21/4/2025).
#   QH   = Nghị quyết 202/2025/QH15 (12/6/2025), sắp xếp ĐVHC cấp tỉnh (the merged provinces), checked against the
#          province list of sapnhap.bando.com.vn.
# "only" rows: the resolution puts the whole old unit (or all its parts) into exactly these wards.
# "among" rows: the text read names these successors; the old unit may also have lent a part elsewhere.
QUAN_1 = {"Phường Sài Gòn", "Phường Tân Định", "Phường Bến Thành", "Phường Cầu Ông Lãnh"}
CU_CHI = {"Xã An Nhơn Tây", "Xã Thái Mỹ", "Xã Nhuận Đức", "Xã Tân An Hội", "Xã Củ Chi", "Xã Phú Hòa Đông",
          "Xã Bình Mỹ"}
OLD_NAMES = [
    # HCM, khoản 1: toàn bộ phường Bến Nghé, một phần Đa Kao và Nguyễn Thái Bình → phường Sài Gòn
    ("phường Bến Nghé", HCM, "only", {"Phường Sài Gòn"}),
    ("phuong ben nghe", None, "only", {"Phường Sài Gòn"}),
    ("Bến Nghé", None, "only", {"Phường Sài Gòn"}),
    ("P. Ben Nghe, Q1", None, "only", {"Phường Sài Gòn"}),
    ("ben nghe quan 1", None, "only", {"Phường Sài Gòn"}),
    ("ben nge", None, "only", {"Phường Sài Gòn"}),  # misspelt
    # HCM, khoản 1–2: Đa Kao split between Sài Gòn and Tân Định
    ("phường Đa Kao", HCM, "only", {"Phường Sài Gòn", "Phường Tân Định"}),
    ("da kao", None, "only", {"Phường Sài Gòn", "Phường Tân Định"}),
    # HCM, khoản 1 and 3: Nguyễn Thái Bình split between Sài Gòn and Bến Thành
    ("phuong nguyen thai binh", HCM, "only", {"Phường Sài Gòn", "Phường Bến Thành"}),
    # HCM, khoản 3: toàn bộ Bến Thành, Phạm Ngũ Lão → Bến Thành; Cầu Ông Lãnh split with khoản 4
    ("Phạm Ngũ Lão, Quận 1", None, "only", {"Phường Bến Thành"}),
    ("pham ngu lao", HCM, "only", {"Phường Bến Thành"}),
    ("phường Cầu Ông Lãnh", HCM, "only", {"Phường Bến Thành", "Phường Cầu Ông Lãnh"}),
    # HCM, khoản 4: toàn bộ Nguyễn Cư Trinh, Cầu Kho, Cô Giang → Cầu Ông Lãnh
    ("phường Cô Giang", HCM, "only", {"Phường Cầu Ông Lãnh"}),
    ("co giang", HCM, "only", {"Phường Cầu Ông Lãnh"}),
    ("Cầu Kho", HCM, "only", {"Phường Cầu Ông Lãnh"}),
    ("nguyen cu trinh", HCM, "only", {"Phường Cầu Ông Lãnh"}),
    ("nguyen cu trin", HCM, "only", {"Phường Cầu Ông Lãnh"}),  # misspelt
    # HCM, khoản 1–4: the whole of Quận 1
    ("Quận 1", None, "only", QUAN_1),
    ("quan 1", None, "only", QUAN_1),
    ("q1", None, "only", QUAN_1),
    ("Q.1", None, "only", QUAN_1),
    ("quận 1, TP HCM", None, "only", QUAN_1),
    # HCM, Củ Chi
    ("huyện Củ Chi", None, "only", CU_CHI),
    ("huyen cu chi", None, "only", CU_CHI),
    ("H. Củ Chi", None, "only", CU_CHI),
    ("huyen cu chj", None, "only", CU_CHI),  # misspelt
    ("thị trấn Củ Chi", None, "only", {"Xã Tân An Hội"}),
    ("tt cu chi", None, "only", {"Xã Tân An Hội"}),
    ("xã Phú Mỹ Hưng", HCM, "only", {"Xã An Nhơn Tây"}),
    ("xa an phu, huyen cu chi", None, "only", {"Xã An Nhơn Tây"}),
    ("Trung Lập Thượng", HCM, "only", {"Xã Thái Mỹ"}),
    ("xa phuoc thanh, cu chi", None, "only", {"Xã Thái Mỹ"}),
    ("trung lap ha", HCM, "only", {"Xã Nhuận Đức"}),
    ("Phạm Văn Cội", HCM, "only", {"Xã Nhuận Đức"}),
    ("phuoc hiep, cu chi", None, "only", {"Xã Tân An Hội"}),
    ("tan thong hoi", HCM, "only", {"Xã Củ Chi"}),
    ("Tân Phú Trung", HCM, "only", {"Xã Củ Chi"}),
    ("phuoc vinh an", HCM, "only", {"Xã Củ Chi"}),
    # HN, khoản 1: toàn bộ Hàng Bạc, Hàng Bồ, Hàng Buồm, Hàng Đào, Hàng Gai, Hàng Mã, Lý Thái Tổ → Hoàn Kiếm
    ("phường Hàng Bạc", None, "only", {"Phường Hoàn Kiếm"}),
    ("hang bo", HANOI, "only", {"Phường Hoàn Kiếm"}),
    ("Hàng Buồm", HANOI, "only", {"Phường Hoàn Kiếm"}),
    ("hang dao", HANOI, "only", {"Phường Hoàn Kiếm"}),
    ("Hàng Gai", HANOI, "only", {"Phường Hoàn Kiếm"}),
    ("phuong hang ma", HANOI, "only", {"Phường Hoàn Kiếm"}),
    ("Lý Thái Tổ, Hoàn Kiếm", None, "only", {"Phường Hoàn Kiếm"}),
    # HN, khoản 1–2: Hàng Bông, Hàng Trống, Tràng Tiền split between Hoàn Kiếm and Cửa Nam
    ("hang trong", HANOI, "only", {"Phường Hoàn Kiếm", "Phường Cửa Nam"}),
    ("phường Hàng Bông", HANOI, "only", {"Phường Hoàn Kiếm", "Phường Cửa Nam"}),
    ("trang tien", HANOI, "only", {"Phường Hoàn Kiếm", "Phường Cửa Nam"}),
    # HN, khoản 2: toàn bộ Hàng Bài, Phan Chu Trinh, Trần Hưng Đạo → Cửa Nam
    ("Hàng Bài", HANOI, "only", {"Phường Cửa Nam"}),
    ("phan chu trinh, hoan kiem", None, "only", {"Phường Cửa Nam"}),
    ("Trần Hưng Đạo, quận Hoàn Kiếm", None, "only", {"Phường Cửa Nam"}),
    # HN, khoản 3: toàn bộ Quán Thánh, Trúc Bạch → Ba Đình; phần còn lại Cửa Đông, Đồng Xuân → Ba Đình
    ("phường Quán Thánh", None, "only", {"Phường Ba Đình"}),
    ("truc bach", HANOI, "only", {"Phường Ba Đình"}),
    ("truc bac", HANOI, "only", {"Phường Ba Đình"}),  # misspelt
    ("cua dong", HANOI, "only", {"Phường Hoàn Kiếm", "Phường Ba Đình"}),
    ("Đồng Xuân, Hoàn Kiếm", None, "only", {"Phường Hoàn Kiếm", "Phường Ba Đình"}),
    ("phường Cửa Nam, quận Hoàn Kiếm", None, "among", {"Phường Hoàn Kiếm", "Phường Cửa Nam", "Phường Ba Đình"}),
    ("dien bien, ba dinh", None, "among", {"Phường Hoàn Kiếm", "Phường Ba Đình"}),
    ("quận Hoàn Kiếm", None, "among", {"Phường Hoàn Kiếm", "Phường Cửa Nam"}),
    # HN, thị xã Sơn Tây: toàn bộ Phú Thịnh, Ngô Quyền, Viên Sơn, xã Đường Lâm → Sơn Tây
    ("thị xã Sơn Tây", None, "among", {"Phường Sơn Tây", "Phường Tùng Thiện", "Xã Đoài Phương"}),
    ("tx son tay", None, "among", {"Phường Sơn Tây", "Phường Tùng Thiện", "Xã Đoài Phương"}),
    ("phuong ngo quyen, son tay", None, "only", {"Phường Sơn Tây"}),
    ("xã Đường Lâm", HANOI, "only", {"Phường Sơn Tây"}),
    ("vien son, thi xa son tay", None, "only", {"Phường Sơn Tây"}),
]


@pytest.mark.parametrize("typed, within, mode, expected", OLD_NAMES, ids=[row[0] for row in OLD_NAMES])
def test_an_old_name_leads_to_the_wards_that_replaced_it(typed, within, mode, expected):
    found = names(former_names().wards_for(typed, within=None if within is None else [within]))
    if mode == "only":
        assert found == expected
    else:
        assert found >= expected
    assert expected <= names(find_ward(typed, within=None if within is None else [within]).choices)


def test_there_are_fifty_old_names_written_from_the_resolutions():
    assert len(OLD_NAMES) >= 50


@pytest.mark.parametrize("typed, province", [("tỉnh Bình Dương", "Thành phố Hồ Chí Minh"),
                                             ("Bà Rịa - Vũng Tàu", "Thành phố Hồ Chí Minh"),
                                             ("tinh ha giang", "Tỉnh Tuyên Quang"),
                                             ("Yên Bái", "Tỉnh Lào Cai"), ("tinh quang nam", "Thành phố Đà Nẵng")])
def test_an_old_province_leads_to_the_province_it_joined(typed, province):  # QH, Điều 1
    units = [u for u in former_names().lookup(typed) if u.level == "province"]
    assert [p.name for p in units[0].provinces] == [province]


def test_an_old_name_outside_the_deployment_offers_nothing_of_its_own():
    ben_thanh = ward("Phường Bến Thành", HCM)
    assert former_names().wards_for("phuong ben nghe", within=[ben_thanh.code]) == []
    assert former_names().wards_for("quan 1", within=[ben_thanh.code]) == [ben_thanh]
    assert former_names().wards_for("quan 1", within=[HANOI]) == []


def test_an_old_unit_split_between_wards_says_so():
    (unit,) = [u for u in former_names().lookup("phường Đa Kao") if u.parents.startswith("Quận 1")]
    assert unit.split and unit.display == "Phường Đa Kao (Quận 1, Thành phố Hồ Chí Minh)"
    (whole,) = [u for u in former_names().lookup("phường Bến Nghé") if u.parents.startswith("Quận 1")]
    assert not whole.split


# Landmarks and where they are (coordinates read off the map, the ward from the resolutions above):
LANDMARKS = [
    ("Chợ Bến Thành", 10.7725, 106.6980, "Phường Bến Thành", HCM),
    ("Nhà thờ Đức Bà Sài Gòn", 10.7798, 106.6990, "Phường Sài Gòn", HCM),  # old Bến Nghé
    ("Hồ Gươm, Đền Ngọc Sơn", 21.0287, 105.8522, "Phường Hoàn Kiếm", HANOI),
    ("Lăng Chủ tịch Hồ Chí Minh", 21.0368, 105.8346, "Phường Ba Đình", HANOI),
]


@pytest.mark.parametrize("landmark, lat, lon, expected, province", LANDMARKS, ids=[row[0] for row in LANDMARKS])
def test_a_pin_suggests_the_ward_it_falls_in_first(landmark, lat, lon, expected, province):
    nearby = wards_near(lat, lon)
    assert nearby[0].ward == ward(expected, province)
    assert nearby[0].inside and nearby[0].metres == 0
    assert all(not n.inside and n.metres > 0 for n in nearby[1:])


def test_a_pin_restricted_to_a_deployment_offers_its_nearest_wards_with_distances():
    saigon, tan_dinh = ward("Phường Sài Gòn", HCM), ward("Phường Tân Định", HCM)
    nearby = wards_near(10.7725, 106.6980, within=[saigon.code, tan_dinh.code], limit=2)
    assert [n.ward for n in nearby] == [saigon, tan_dinh]
    assert not nearby[0].inside and 50 < nearby[0].metres < 1_000 < nearby[1].metres
    assert wards_near(10.7725, 106.6980, within=[HANOI], max_metres=5_000) == []
