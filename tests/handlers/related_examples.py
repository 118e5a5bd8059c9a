"""The extraction table: for each kind of identifier, at least 100 texts written the way tipsters write them,
with the one canonical form each must give; and texts with dates, sums of money, receipt codes, years and
other numbers that must give none.

Each kind is a list of written values (real shapes: carriers' prefixes, banks' account lengths, provinces'
plate codes, handles as people choose them) put into sentences taken from tips; every pair is spelled out
when the module loads, so a failing case names its exact text.
"""

from __future__ import annotations

# --- phone numbers: Viettel, VinaPhone, MobiFone, Vietnamobile, Gmobile, Itel, landlines, abroad --------------
PHONE_VALUES = [
    ("0987 654 321", "+84987654321"), ("0912.345.678", "+84912345678"), ("0903-123-456", "+84903123456"),
    ("+84 868 123 456", "+84868123456"), ("84333444555", "+84333444555"), ("(+84) 705111222", "+84705111222"),
    ("098 765 4321", "+84987654321"), ("+84-97-765-43-21", "+84977654321"), ("0862.555.888", "+84862555888"),
    ("0961 234 567", "+84961234567"), ("0971234567", "+84971234567"), ("0326 789 012", "+84326789012"),
    ("0345.678.901", "+84345678901"), ("0356-111-222", "+84356111222"), ("0378 999 000", "+84378999000"),
    ("0395 246 810", "+84395246810"), ("0888 123 123", "+84888123123"), ("0916.888.999", "+84916888999"),
    ("0945 321 654", "+84945321654"), ("0818 765 432", "+84818765432"), ("0836.456.789", "+84836456789"),
    ("0855 112 233", "+84855112233"), ("0898 765 123", "+84898765123"), ("0901 357 913", "+84901357913"),
    ("0933.246.135", "+84933246135"), ("0707 070 707", "+84707070707"), ("0765-432-109", "+84765432109"),
    ("0789 012 345", "+84789012345"), ("0923 456 780", "+84923456780"), ("0563 210 987", "+84563210987"),
    ("0587.654.320", "+84587654320"), ("0993 111 444", "+84993111444"), ("0879 555 666", "+84879555666"),
    ("+84 91 234 5678", "+84912345678"), ("+84.98.765.4321", "+84987654321"), ("84 903 123 456", "+84903123456"),
    ("028 3829 5555", "+842838295555"), ("024.3942.1234", "+842439421234"), ("0236 3822 111", "+842363822111"),
    ("+86 138 0013 8000", "+8613800138000"), ("+855 12 345 678", "+85512345678"), ("1900 6789", "+8419006789"),
]
PHONE_FRAMES = [
    "Nó gọi cho tôi từ số {}",
    "sđt: {}",
    "LH {} (anh Tuấn)",
    "số lạ {} nhắn tin báo trúng thưởng",
    "đối tượng xưng là công an, gọi bằng số {} lúc 9h sáng",
    "SĐT của nó là {}.",
]

# --- bank accounts: the banks' usual lengths and names, the words before them ---------------------------------
BANK_VALUES = [
    ("0071000123456", "Vietcombank"), ("1903 5555 888 012", "Techcombank"), ("123456789", "MB"),
    ("0123456789012", "BIDV"), ("102 874 512 345", "VietinBank"), ("12345678", "ACB"),
    ("1500205123456", "Agribank"), ("0451-000-123456", "VCB"), ("060123456789", "Sacombank"),
    ("00012345678", "TPBank"), ("21510001234567", "BIDV"), ("19036789012345", "Techcombank"),
    ("0331000456789", "Vietcombank"), ("9704229212345678", "MB Bank"), ("108869012345", "VietinBank"),
    ("4521 0000 1234", "BIDV"), ("3100 2056 78901", "Agribank"), ("0501 0001 2345", "Sacombank"),
    ("17520987654", "SHB"), ("246810121416", "HDBank"), ("0194 1234 5678", "VIB"),
    ("0061 0034 5678", "OCB"), ("000 012 345 6789", "SeABank"), ("03801012345678", "MSB"),
    ("1001 4567 8910", "Eximbank"), ("0222 3456 7890", "LPBank"), ("123 4567 890", "Nam A"),
    ("88881234567", "ABBank"), ("1111 2222 3333", "PVcomBank"), ("9021 0001 234", "Timo"),
]
BANK_FRAMES = [
    "STK {v} {b}",
    "số tài khoản: {v} - {b} - NGUYEN VAN A",
    "chuyển khoản vào {b} {v}",
    "tk {v} ngân hàng {b}",
]

# --- plates: provinces' codes, car series, motorbike series with a digit, electric MĐ, old 4-digit numbers -----
PLATE_VALUES = [
    ("51F-123.45", "51F12345"), ("30A 123.45", "30A12345"), ("29A-12345", "29A12345"), ("30LD-123.45", "30LD12345"),
    ("15C-012.34", "15C01234"), ("30A-1234", "30A1234"), ("59-X1 123.45", "59X112345"), ("59X1-123.45", "59X112345"),
    ("29-B1 234.56", "29B123456"), ("43-E1 123.45", "43E112345"), ("29-MĐ1 123.45", "29MĐ112345"),
    ("59-AA 123.45", "59AA12345"), ("77C1-234.56", "77C123456"), ("59-T1 234.56", "59T123456"),
    ("51G-888.88", "51G88888"), ("30E-123.45", "30E12345"), ("36B1-12345", "36B112345"), ("92-H1 012.34", "92H101234"),
    ("14LD 02345", "14LD02345"), ("61A-456.78", "61A45678"), ("72A-111.22", "72A11122"), ("65C-098.76", "65C09876"),
    ("47A-333.44", "47A33344"), ("37K-123.45", "37K12345"), ("88A-567.89", "88A56789"), ("99A-246.80", "99A24680"),
    ("34A-135.79", "34A13579"), ("20C-111.11", "20C11111"), ("60B3-456.78", "60B345678"), ("62-K1 234.56", "62K123456"),
    ("66-L1 987.65", "66L198765"), ("68-N1 123.45", "68N112345"), ("70-H1 555.66", "70H155566"),
    ("75-D1 234.56", "75D123456"), ("81-B1 876.54", "81B187654"), ("83-P1 123.45", "83P112345"),
    ("86-B1 321.09", "86B132109"), ("93-C1 456.78", "93C145678"), ("94-F1 123.45", "94F112345"),
    ("95-G1 234.56", "95G123456"), ("97-S1 345.67", "97S134567"), ("98-B2 456.78", "98B245678"),
    ("50-U1 567.89", "50U156789"), ("54-V1 678.90", "54V167890"), ("55-Z1 789.01", "55Z178901"),
    ("16-M1 123.45", "16M112345"), ("17B1-234.56", "17B123456"), ("18-A1 345.67", "18A134567"),
    ("19-Y1 456.78", "19Y145678"), ("21-G1 567.89", "21G156789"),
]
PLATE_FRAMES = [
    "xe ô tô biển {}",
    "xe máy BKS {} chạy hướng chợ",
]

# --- e-wallets: named right before their phone number ---------------------------------------------------------
WALLET_VALUES = [
    ("0987654321", "+84987654321"), ("0987 654 321", "+84987654321"), ("0912.345.678", "+84912345678"),
    ("0333444555", "+84333444555"), ("0868 123 456", "+84868123456"), ("0903-123-456", "+84903123456"),
    ("0961 234 567", "+84961234567"), ("0345.678.901", "+84345678901"), ("0888 123 123", "+84888123123"),
    ("0945 321 654", "+84945321654"), ("0789 012 345", "+84789012345"), ("0563 210 987", "+84563210987"),
    ("+84 916 888 999", "+84916888999"), ("84901357913", "+84901357913"), ("0707 070 707", "+84707070707"),
    ("0395 246 810", "+84395246810"), ("0855 112 233", "+84855112233"), ("0923 456 780", "+84923456780"),
    ("0836.456.789", "+84836456789"), ("0933.246.135", "+84933246135"),
]
WALLET_FRAMES = [
    "chuyển qua MoMo {}",
    "ví ZaloPay: {}",
    "Viettel Money {} tên Lê Văn C",
    "nạp tiền vào ShopeePay số {}",
    "ck qua ví momo sdt {}",
]

# --- social accounts: links as apps share them, handles after the platform's name --------------------------
HANDLES = ["nguyen.van.a.99", "shopuytin", "lan.nguyen.5", "hang.xach.tay.hcm", "tuan.anh.2k", "banhang.online",
           "shop.giare.vn", "minh.thu.1995", "duc.huy.official", "thoitrang.nu", "vay.nhanh.24h", "viec.lam.online",
           "ho.tro.vay.von", "dau.tu.crypto", "san.sale.99", "nhan.kiem.tien", "hoa.my.12", "cskh.ngan.hang",
           "quang.cao.fb", "giao.hang.tan.noi", "tuyen.ctv.online", "ngoc.anh.0912", "mua.ban.xe.cu",
           "hang.hieu.si", "anh.dung.88"]
FACEBOOK_FORMS = [
    ("https://www.facebook.com/{h}", "{h}"), ("facebook.com/{H}", "{h}"), ("m.facebook.com/{h}?mibextid=ZbWKwL", "{h}"),
    ("fb: @{h}", "{h}"),
]
FACEBOOK_IDS = ["100012345678901", "100087654321012", "100004567890123", "61551234567890", "100091234567890",
                "100023456789012", "100076543210987", "100001112223334", "61559876543210", "100045678901234"]
ZALO_PHONES = [v for v in WALLET_VALUES]
ZALO_GROUPS = ["abcxyz123", "xyz123", "lua0dao9vip", "dautu99", "kiemtien24h", "nhomvay01", "ctvonline7",
               "sanhang88", "tuyendung5", "giaodich2"]
TELEGRAM_HANDLES = ["lua_dao_vip", "scamboss", "scam_boss", "crypto_dau_tu", "kiem_tien_online", "vay_von_nhanh",
                    "tuyen_ctv_2024", "san_hang_si", "ho_tro_khach", "dautu_forex", "hang_xach_tay", "job_online_vn",
                    "binance_support_vn", "nhom_keo_bao", "sale_hang_hieu", "cskh_momo_vn", "tai_xiu_uytin",
                    "airdrop_free", "nhan_nhiem_vu", "like_share_kiemtien"]
TELEGRAM_INVITES = ["AbCdEf123", "AbCdEf12345", "Xy9_KLmn01", "QwErTy7788", "ZZtop-12ab", "HjKl0987Pq",
                    "mNbV5544cx", "Tt_rr33ee", "Lop9KiJu8", "GhYt6R5eW"]
TIKTOK_HANDLES = ["le.van.c", "shop.uytin.99", "hang_re", "banhang.online", "review.do.an", "livestream.sale",
                  "thoitrang.nu99", "my.pham.chinh.hang", "dien.thoai.cu", "xe.may.gia.re", "vay.tien.nhanh",
                  "kiemtien.tainha", "nhan.order", "giay.sneaker", "dong.ho.nam", "tui.xach.nu", "nuoc.hoa.auth",
                  "dochoi.tre.em", "laptop.cu.hcm", "san.deal.hot", "sach.giam.gia", "phu.kien.xe", "trai.cay.sach",
                  "hai.san.tuoi", "gom.su.bat.trang"]


def _fill(values, frames):
    """Every value in every frame."""
    return [(frame.format(value), canonical) for frame in frames for value, canonical in values]


PHONES = _fill(PHONE_VALUES, PHONE_FRAMES)
BANKS = [(frame.format(v=value, b=bank), value.replace(" ", "").replace("-", "")) for frame in BANK_FRAMES
         for value, bank in BANK_VALUES]
PLATES = _fill(PLATE_VALUES, PLATE_FRAMES)
WALLETS = _fill(WALLET_VALUES, WALLET_FRAMES)
FACEBOOK = ([(f"Nó lừa qua {form.format(h=h, H=h.title())}", canonical.format(h=h))
             for form, canonical in FACEBOOK_FORMS for h in HANDLES]
            + [(f"link https://facebook.com/profile.php?id={i}", f"id:{i}") for i in FACEBOOK_IDS]
            + [(f"tài khoản fb https://www.facebook.com/{i}", f"id:{i}") for i in FACEBOOK_IDS]
            + [(f"inbox m.me/{h} để đặt hàng", h) for h in HANDLES[:10]])
ZALO = ([(f"kết bạn zalo: {v}", c) for v, c in ZALO_PHONES] + [(f"Zalo {v} tên Ngọc", c) for v, c in ZALO_PHONES]
        + [(f"link zalo.me/{v.replace(' ', '').replace('.', '').replace('-', '')}", c) for v, c in ZALO_PHONES
           if not v.startswith(("+", "84"))]
        + [(f"vào nhóm https://zalo.me/g/{g} để nhận việc", g.lower()) for g in ZALO_GROUPS]
        + [(f"nhóm zalo zalo.me/g/{g}", g.lower()) for g in ZALO_GROUPS]
        + [(f"zalo: @{h}", h) for h in HANDLES[:15]]
        + [(f"Zalo: {v} (chị Hoa)", c) for v, c in ZALO_PHONES])
TELEGRAM = ([(f"nhắn telegram https://t.me/{h}", h) for h in TELEGRAM_HANDLES]
            + [(f"tele @{h} hướng dẫn đầu tư", h) for h in TELEGRAM_HANDLES]
            + [(f"Telegram: @{h.title()}", h) for h in TELEGRAM_HANDLES]
            + [(f"kênh telegram.me/{h}", h) for h in TELEGRAM_HANDLES[:10]]
            + [(f"vào nhóm t.me/+{i}", f"invite:{i}") for i in TELEGRAM_INVITES]
            + [(f"link https://t.me/joinchat/{i}", f"invite:{i}") for i in TELEGRAM_INVITES]
            + [(f"telegram {v}", c) for v, c in WALLET_VALUES[:10]])
TIKTOK = ([(f"kênh https://www.tiktok.com/@{h}", h) for h in TIKTOK_HANDLES]
          + [(f"xem video www.tiktok.com/@{h}/video/7234567890123456789", h) for h in TIKTOK_HANDLES]
          + [(f"tiktok @{h} bán hàng giả", h) for h in TIKTOK_HANDLES]
          + [(f"m.tiktok.com/@{h.upper()}", h) for h in TIKTOK_HANDLES])

# --- nothing to find: dates, money, receipt codes, years, times, addresses, ids that are not accounts ----------
NOT_IDENTIFIERS = [
    # dates and times
    "Ngày 12/05/2024 lúc 21:30", "ngày 12.05.2024", "hôm 2024-05-12", "ngày 30/4/2025 lúc 8h", "lúc 10h30 ngày 1/7",
    "10:30 ngày 12/5", "khoảng 22h15 tối thứ bảy", "từ 01/01/2026 đến 31/03/2026", "sáng 5-6-2024",
    "ngày 5 tháng 6 năm 2024", "đêm 31/12 rạng sáng 1/1", "19 giờ 45 phút", "hôm thứ 2 (15/7)", "ngày 02/09/2025",
    "tuần trước, khoảng 20-25/11", "lúc 0h05", "ngày 1.1.2026", "chiều 14/02/2025 khoảng 16h", "3 ngày trước",
    "mùng 3 Tết", "ngày 27.07.2024 lúc 23:59",
    # years and ages
    "năm 2025, năm 2026", "khoảng năm 2019-2020", "sinh năm 1995", "từ năm 2018 đến nay", "tôi 25 tuổi",
    "ông khoảng 60 tuổi", "năm ngoái (2024)", "cuối năm 2023", "đời xe 2015", "học lớp 12",
    # money
    "nó lấy mất 5.000.000 đ", "chuyển khoản 15.000.000 VND", "STK bị lừa 20.000.000đ", "ck 500k cho nó", "mất 150 triệu",
    "giá 1.250.000 đồng", "số tiền 2,5 tỷ", "mất 3tr5", "lừa 12.500.000d", "chuyển 3.500.000 VNĐ vào tài khoản",
    "đã ck 700.000đ", "phí 99.000 đồng", "trả trước 30%", "lãi 5% một ngày", "mất hơn 200 triệu đồng",
    "nó đòi 50 triệu", "tổng cộng 1.000.000.000 đ", "ck 2tr", "chuyển khoản 10.000.000 đồng cho STK trên",
    "giá 350k/người", "hoàn tiền 120.000 VND", "tiền cọc 15 triệu", "nợ 7.500 USD", "đặt cọc 2.000.000₫",
    # receipt codes, references, ward codes
    "mã tin báo TB-7K3MP-9QXFA", "mã tra cứu TB-4H9W-22KQ", "phường có mã 26743", "Phường 26743 và xã 27001",
    "mã vụ 125/2026/HS", "số hồ sơ 45/QĐ-CA", "công văn số 1234/CAT-PV", "mã đơn SPX-2024-77", "quyết định 12/2025",
    # addresses, counts and sizes
    "tôi 25 tuổi, nhà số 123 đường 3/2", "số 45 ngõ 12 Láng Hạ", "hẻm 123/45/6 Lê Văn Sỹ", "phòng 1208 tòa A2",
    "tầng 15, căn 15.06", "km 23 quốc lộ 1A", "cao 1m70, nặng 65kg", "xe 150cc", "khoảng 3-4 người",
    "nhà 3 tầng, mặt tiền 5m", "lô B12 khu công nghiệp", "ấp 3 xã 5", "khu phố 6", "tổ 12 khu vực 4",
    # ids that are not accounts, and numbers without a bank's name or an account word
    "CCCD 079123456789 của tôi", "mã số thuế 0312345678-001", "số seri 123456789012", "IMEI 356938035643809",
    "đơn hàng 240512ABCDEF", "mã vận đơn 8123456789012", "vé số 123456", "mã OTP 482913", "mã PIN 1234",
    "số khung RLHJC1234AB567890", "mã sản phẩm 8934567890123",
    # links and words that are no one's account
    "https://www.facebook.com/groups/123456789", "facebook.com/share/abc", "facebook.com/watch/?v=12345",
    "facebook.com/marketplace/item/123456", "https://www.facebook.com/events/987654321", "tiktok.com/foryou",
    "https://www.facebook.com/photo/?fbid=123456789", "facebook.com/groups/123456789/posts/987654321",
    "https://www.facebook.com/reel/912345678", "xem https://vnexpress.net/lua-dao-0987654321.html",
    "nhắn qua zalo", "trên telegram", "có tài khoản facebook", "gọi lại 113 hoặc 114",
]
