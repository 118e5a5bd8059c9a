"""Identifiers in tips: each written the ways Vietnamese tipsters write them, found once in one canonical form;
dates, sums of money, receipt codes, ward codes and years are not identifiers."""

from __future__ import annotations

import os

import pytest
from hypothesis import given, settings, strategies as st

from handlers.related.extract import extract_identifiers, interpret_search

EXAMPLES = int(os.environ.get("TINBAO_PROPERTY_EXAMPLES", "200"))


def found(text: str) -> set[tuple[str, str]]:
    return {(i.kind, i.value) for i in extract_identifiers(text)}


def of_kind(text: str, kind: str) -> set[str]:
    return {value for k, value in found(text) if k == kind}


PHONES = [
    ("Nó gọi cho tôi từ số 0987 654 321", "+84987654321"),
    ("sdt 0987654321", "+84987654321"),
    ("sđt/zalo: 0987654321", "+84987654321"),
    ("LH 0987.654.321 (Mr Hùng)", "+84987654321"),
    ("số điện thoại là +84(0)987654321", "+84987654321"),
    ("098.765.4321", "+84987654321"),
    ("hotline 1800 1234", "+8418001234"),
    ("SĐT: 0987.654.321", "+84987654321"),
    ("số 0987-654-321 hay gọi đêm", "+84987654321"),
    ("gọi +84 987 654 321", "+84987654321"),
    ("gọi +84987654321", "+84987654321"),
    ("84987654321 là số của nó", "+84987654321"),
    ("(+84) 987654321", "+84987654321"),
    ("+84-98-765-43-21", "+84987654321"),
    ("đt 098 765 4321", "+84987654321"),
    ("0912345678", "+84912345678"),
    ("0912 345 678", "+84912345678"),
    ("0903.123.456", "+84903123456"),
    ("0333 444 555", "+84333444555"),
    ("0868 123 456", "+84868123456"),
    ("0705.111.222", "+84705111222"),
    ("0562 333 444", "+84562333444"),
    ("0888 999 000", "+84888999000"),
    ("0359-888-777", "+84359888777"),
    ("bàn 028 3829 5555", "+842838295555"),
    ("máy bàn 024.3942.1234", "+842439421234"),
    ("số nước ngoài +86 138 0013 8000", "+8613800138000"),
    ("số ảo +1 202 555 0147", "+12025550147"),
    ("tổng đài lừa đảo 1900 1234", "+8419001234"),
    ("Số0987654321", "+84987654321"),
]


@pytest.mark.parametrize("text, canonical", PHONES)
def test_phone_numbers_in_every_common_form_are_one_canonical_number(text: str, canonical: str) -> None:
    assert canonical in of_kind(text, "phone")


BANKS = [
    ("STK 0071000123456 Vietcombank", "0071000123456"),
    ("stk: 1903 5555 888 012 Techcombank", "19035555888012"),
    ("Số tài khoản 123456789 MB", "123456789"),
    ("so tai khoan 0123456789012 BIDV", "0123456789012"),
    ("chuyển khoản vào 102 874 512 345 VietinBank", "102874512345"),
    ("ck vô acb 12345678", "12345678"),
    ("TK Agribank 1500205123456", "1500205123456"),
    ("tài khoản ngân hàng: 0451-000-123456", "0451000123456"),
    ("0071000123456 Vietcombank", "0071000123456"),
    ("123456789 (MB Bank)", "123456789"),
    ("STK 0987654321 MB", "0987654321"),
    ("acc TPBank 00012345678", "00012345678"),
    ("NH Sacombank stk 060123456789", "060123456789"),
    ("bank: 9704 1234 5678 90", "970412345678" + "90"),
    ("Số TK: 19035555888012 - Techcombank - NGUYEN VAN A", "19035555888012"),
    ("VCB - 0071000123456 - TRAN THI B", "0071000123456"),
    ("Tài khoản: 123 456 789 (ACB)", "123456789"),
    ("ngân hàng BIDV số 21510001234567", "21510001234567"),
    ("chủ TK Nguyễn Văn A, STK 0451000123456", "0451000123456"),
    ("chuyển 2.000.000 vào STK 0071000123456 VCB", "0071000123456"),
    ("MB: 0987654321", "0987654321"),
]


@pytest.mark.parametrize("text, canonical", BANKS)
def test_bank_accounts_with_or_without_the_banks_name_are_their_digits(text: str, canonical: str) -> None:
    assert canonical in of_kind(text, "bank_account")


def test_the_same_account_written_differently_in_two_tips_is_the_same() -> None:
    assert of_kind("STK 0071 000 123 456 VCB", "bank_account") == of_kind(
        "chuyển vào Vietcombank 0071000123456", "bank_account")


PLATES = [
    ("xe ô tô biển 51F-123.45", "51F12345"),
    ("51F 123.45", "51F12345"),
    ("51f-12345", "51F12345"),
    ("xe 29A 12345", "29A12345"),
    ("29A-123.45", "29A12345"),
    ("30LD-123.45", "30LD12345"),
    ("xe tải 15C-012.34", "15C01234"),
    ("biển cũ 30A-1234", "30A1234"),
    ("xe máy 59-X1 123.45", "59X112345"),
    ("59X1-123.45", "59X112345"),
    ("59 X1 12345", "59X112345"),
    ("xe máy biển 29-B1 234.56", "29B123456"),
    ("honda 43-E1 123.45", "43E112345"),
    ("xe điện 29-MĐ1 123.45", "29MĐ112345"),
    ("59-AA 123.45", "59AA12345"),
    ("biển kiểm soát 77C1-234.56", "77C123456"),
    ("xe Air Blade 59-T1 234.56", "59T123456"),
    ("biển 51G-888.88", "51G88888"),
    ("Xe 30E-123.45 màu trắng", "30E12345"),
    ("29 A 123.45", "29A12345"),
    ("xe 36B1-12345", "36B112345"),
    ("biển số 92-H1 012.34", "92H101234"),
    ("xe 14LD 02345", "14LD02345"),
]


@pytest.mark.parametrize("text, canonical", PLATES)
def test_vehicle_plates_in_vietnamese_formats(text: str, canonical: str) -> None:
    assert canonical in of_kind(text, "plate")


SOCIAL = [
    ("https://www.facebook.com/nguyen.van.a.99", "facebook", "nguyen.van.a.99"),
    ("facebook.com/Nguyen.Van.A.99", "facebook", "nguyen.van.a.99"),
    ("m.facebook.com/nguyen.van.a.99?mibextid=abc", "facebook", "nguyen.van.a.99"),
    ("fb.com/shopuytin", "facebook", "shopuytin"),
    ("https://facebook.com/profile.php?id=100012345678901", "facebook", "id:100012345678901"),
    ("web.facebook.com/people/Lan-Shop/100087654321012/", "facebook", "id:100087654321012"),
    ("fb: @shop.uytin", "facebook", "shop.uytin"),
    ("link fb https://www.facebook.com/100012345678901", "facebook", "id:100012345678901"),
    ("facebook.com/lan.nguyen.5?ref=xyz", "facebook", "lan.nguyen.5"),
    ("inbox fb m.me/shopuytin", "facebook", "shopuytin"),
    ("zalo.me/0987654321", "zalo", "+84987654321"),
    ("https://zalo.me/g/abcxyz123", "zalo", "abcxyz123"),
    ("Zalo 0987 654 321", "zalo", "+84987654321"),
    ("kết bạn zalo: 0912.345.678", "zalo", "+84912345678"),
    ("https://t.me/lua_dao_vip", "telegram", "lua_dao_vip"),
    ("telegram.me/ScamBoss", "telegram", "scamboss"),
    ("tele @scam_boss", "telegram", "scam_boss"),
    ("kênh telegram t.me/+AbCdEf123", "telegram", "invite:AbCdEf123"),
    ("https://t.me/joinchat/AbCdEf12345", "telegram", "invite:AbCdEf12345"),
    ("www.tiktok.com/@le.van.c/video/7234567890123456789", "tiktok", "le.van.c"),
    ("nhóm zalo zalo.me/g/xyz123", "zalo", "xyz123"),
    ("Telegram: @Crypto_Dau_Tu", "telegram", "crypto_dau_tu"),
    ("https://www.tiktok.com/@shop.uytin.99", "tiktok", "shop.uytin.99"),
    ("tiktok.com/@Hang_Re", "tiktok", "hang_re"),
    ("tiktok @banhang.online", "tiktok", "banhang.online"),
]


@pytest.mark.parametrize("text, kind, canonical", SOCIAL)
def test_social_accounts_by_link_or_by_handle_after_the_platforms_name(text: str, kind: str, canonical: str) -> None:
    assert canonical in of_kind(text, kind)


WALLETS = [
    ("chuyển qua MoMo 0987654321", "+84987654321"),
    ("ví momo: 0987 654 321", "+84987654321"),
    ("ZaloPay 0912.345.678", "+84912345678"),
    ("Viettel Money 0333444555", "+84333444555"),
    ("ShopeePay số 0868123456", "+84868123456"),
    ("ck qua momo sdt 0987 654 321", "+84987654321"),
    ("viettelpay: 0333 444 555", "+84333444555"),
]


@pytest.mark.parametrize("text, canonical", WALLETS)
def test_e_wallets_are_their_phone_numbers_and_the_phone_is_found_too(text: str, canonical: str) -> None:
    assert canonical in of_kind(text, "ewallet")
    assert canonical in of_kind(text, "phone")


NOT_IDENTIFIERS = [
    "Ngày 12/05/2024 lúc 21:30",
    "ngày 12.05.2024",
    "hôm 2024-05-12",
    "nó lấy mất 5.000.000 đ",
    "chuyển khoản 15.000.000 VND",
    "STK bị lừa 20.000.000đ",
    "ck 500k cho nó",
    "mất 150 triệu",
    "mã tin báo TB-7K3MP-9QXFA",
    "phường có mã 26743",
    "năm 2025, năm 2026",
    "tôi 25 tuổi, nhà số 123 đường 3/2",
    "lúc 10h30 ngày 1/7",
    "giá 1.250.000 đồng",
    "số tiền 2,5 tỷ",
    "CCCD 079123456789 của tôi",
    "ngày 30/4/2025 lúc 8h",
    "mất 3tr5",
    "lừa 12.500.000d",
    "Phường 26743 và xã 27001",
    "khoảng năm 2019-2020",
    "10:30 ngày 12/5",
    "https://www.facebook.com/groups/123456789",
    "facebook.com/share/abc",
    "gọi 0987654321 rồi chuyển khoản, gọi lại 113",
]


@pytest.mark.parametrize("text", NOT_IDENTIFIERS)
def test_dates_money_codes_and_counts_are_not_phone_or_bank_numbers(text: str) -> None:
    assert not {(k, v) for k, v in found(text) if k in ("bank_account", "plate", "facebook")}
    phones = of_kind(text, "phone")
    assert phones <= {"+84987654321"}, phones


def test_a_wallet_named_after_a_transfer_word_is_no_bank_account() -> None:
    assert not of_kind("ck qua momo sdt 0987 654 321", "bank_account")


def test_a_number_given_as_phone_is_not_taken_for_the_account_that_follows() -> None:
    text = "Lừa qua zalo 0987 654 321, chuyển khoản STK 0071000123456 Vietcombank, ví MoMo 0912.345.678"
    assert found(text) == {("phone", "+84987654321"), ("zalo", "+84987654321"),
                           ("bank_account", "0071000123456"), ("phone", "+84912345678"),
                           ("ewallet", "+84912345678")}


def test_each_identifier_is_found_once_with_a_masked_form_showing_only_its_end() -> None:
    identifiers = extract_identifiers("gọi 0987654456, lại gọi 0987 654 456, STK 0071000123456 VCB, xe 51F-123.45")
    assert [(i.kind, i.masked) for i in identifiers] == [
        ("phone", "09•••••456"), ("bank_account", "•••••456"), ("plate", "51F•••45")]
    assert "0987654456" not in repr(identifiers)


def test_a_searched_value_alone_is_read_as_every_kind_it_fits() -> None:
    kinds = {(i.kind, i.value) for i in interpret_search("0987 654 321")}
    assert {("phone", "+84987654321"), ("ewallet", "+84987654321"), ("zalo", "+84987654321"),
            ("bank_account", "0987654321")} <= kinds
    assert ("plate", "51F12345") in {(i.kind, i.value) for i in interpret_search("51F-123.45")}
    assert ("telegram", "scam_boss") in {(i.kind, i.value) for i in interpret_search("@Scam_Boss")}
    assert interpret_search("hôm qua") == []


# --- properties --------------------------------------------------------------------------------------------

# Ranges the carriers use in whole (089 is only partly allocated, so it is left out rather than guessed).
MOBILE_PREFIXES = ["32", "33", "34", "35", "36", "37", "38", "39", "56", "58", "70", "76", "77", "78", "79",
                   "81", "82", "83", "84", "85", "86", "88", "90", "91", "93", "94", "96", "97", "98"]


@st.composite
def written_phone(draw) -> tuple[str, str]:
    """A mobile number and one way a person writes it: 0…, +84…, 84…, grouped by spaces, dots or dashes."""
    national = draw(st.sampled_from(MOBILE_PREFIXES)) + draw(st.text("0123456789", min_size=7, max_size=7))
    lead = draw(st.sampled_from(["0", "+84", "84", "+84 ", "(+84) ", "+84-"]))
    sep = draw(st.sampled_from(["", " ", ".", "-"]))
    cuts = draw(st.sampled_from([(3, 6), (2, 5, 7), (3, 5, 7), (4, 7), ()]))
    parts, last = [], 0
    for cut in cuts:
        parts.append(national[last:cut])
        last = cut
    parts.append(national[last:])
    return lead + sep.join(parts), "+84" + national


@settings(max_examples=EXAMPLES, deadline=None)
@given(written_phone(), st.sampled_from(["gọi {} nhé", "{}", "SĐT: {}.", "nó dùng số {}, rất hay gọi"]))
def test_any_written_form_of_a_phone_number_normalises_to_the_same(phone: tuple[str, str], frame: str) -> None:
    written, canonical = phone
    assert of_kind(frame.format(written), "phone") == {canonical}


@st.composite
def written_plate(draw) -> tuple[str, str]:
    province = draw(st.integers(11, 99))
    series = draw(st.sampled_from(["A", "F", "LD", "X1", "B1", "AA", "E2"]))
    number = draw(st.text("0123456789", min_size=5, max_size=5))
    sep1 = draw(st.sampled_from(["", "-", " ", " - "]))
    sep2 = draw(st.sampled_from(["", ".", " "]))
    written = f"{province}{sep1}{series}{draw(st.sampled_from(['', ' ', '-']))}{number[:3]}{sep2}{number[3:]}"
    return draw(st.sampled_from([written, written.lower()])), f"{province}{series}{number}"


@settings(max_examples=EXAMPLES, deadline=None)
@given(written_plate())
def test_any_written_form_of_a_plate_normalises_to_the_same(plate: tuple[str, str]) -> None:
    written, canonical = plate
    assert of_kind(f"xe biển {written} chạy mất", "plate") == {canonical}


@settings(max_examples=EXAMPLES, deadline=None)
@given(st.text(max_size=400) | st.text(alphabet="0123456789 .-+/:đkSTKstkMoMozalo@", max_size=200))
def test_extraction_never_fails_and_finding_again_finds_the_same(text: str) -> None:
    first = extract_identifiers(text)
    assert extract_identifiers(text) == first
    assert len({(i.kind, i.value) for i in first}) == len(first)
    for identifier in first:
        assert identifier.value and identifier.masked and "•" in identifier.masked


# --- the extraction table (tests/handlers/related_examples.py): at least 100 per kind -----------------------

from tests.handlers import related_examples as table  # noqa: E402

TABLE = [("phone", table.PHONES), ("bank_account", table.BANKS), ("plate", table.PLATES),
         ("ewallet", table.WALLETS), ("facebook", table.FACEBOOK), ("zalo", table.ZALO),
         ("telegram", table.TELEGRAM), ("tiktok", table.TIKTOK)]


def test_the_table_has_at_least_100_distinct_examples_of_every_kind_and_of_nothing() -> None:
    assert {kind: len(set(rows)) >= 100 for kind, rows in TABLE} == {kind: True for kind, _rows in TABLE}
    assert len(set(table.NOT_IDENTIFIERS)) >= 100


@pytest.mark.parametrize("kind, text, canonical", [(kind, text, canonical) for kind, rows in TABLE
                                                   for text, canonical in rows])
def test_every_example_of_the_table_gives_its_canonical_form(kind: str, text: str, canonical: str) -> None:
    assert canonical in of_kind(text, kind)


@pytest.mark.parametrize("text", table.NOT_IDENTIFIERS)
def test_no_example_of_nothing_gives_any_identifier(text: str) -> None:
    assert found(text) == set()
