"""Finds the phone numbers, bank accounts, plates, social accounts and e-wallets a tip mentions, each in
one canonical form, so that "0987 654 321" in one tip and "+84987654321" in another are the same thread.

Runs on answers in memory only; what it finds is stored as a blind index (storage/related.py), never as text.
Phone numbers are Google's libphonenumber rules (the `phonenumbers` package), not our own regex: they know
which Vietnamese prefixes exist and leave dates, sums of money and codes alone.
"""

from __future__ import annotations

import re
import unicodedata

from storage.related import Identifier

PHONE, BANK, PLATE, EWALLET = "phone", "bank_account", "plate", "ewallet"
FACEBOOK, ZALO, TELEGRAM, TIKTOK = "facebook", "zalo", "telegram", "tiktok"
KINDS = (PHONE, BANK, PLATE, EWALLET, FACEBOOK, ZALO, TELEGRAM, TIKTOK)

BULLET = "•"

# --- phone numbers -------------------------------------------------------------------------------------


_LINK = re.compile(r"(?:https?://|www\.)\S+|(?<![\w@.])(?:[\w-]+\.)+(?:com|me|vn|net|org|io|ly)/\S*", re.IGNORECASE)
_ZALO_LINK = re.compile(r"(?:https?://)?(?:www\.)?(?:chat\.)?zalo\.me/", re.IGNORECASE)


def _phonenumbers():
    # Loaded at the first tip indexed or number typed, not by every idle worker at start (~1 MB;
    # bench/RESULTS.md, "Memory of an idle worker").
    import phonenumbers
    return phonenumbers


def _canonical_phone(number) -> str:
    phonenumbers = _phonenumbers()
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def _phones(text: str) -> list[tuple[int, int, str]]:
    """(start, end, +84…) of every valid number; VALID leniency is what keeps dates and amounts out."""
    found = []
    # "sđt0987654321", "Số:0987…": the matcher wants no letter glued to a number; a space of the same
    # width keeps every offset right for the context checks that use them.
    # Only a word's last letter: the series letter of a plate ("69A00000") stays, or plates would read as phones.
    spaced = re.sub(r"(?<=[^\W\d_])[^\W\d_](?=[:+(]?\d)", " ", text)
    # Digits in a link's path are ids ("facebook.com/events/987654321"), not numbers someone typed; a Zalo link
    # is the exception: zalo.me/0987654321 is that phone number's account.
    links = [(m.start(), m.end()) for m in _LINK.finditer(text) if not _ZALO_LINK.match(m.group())]
    phonenumbers = _phonenumbers()
    for match in phonenumbers.PhoneNumberMatcher(spaced, "VN", leniency=phonenumbers.Leniency.VALID):
        if not any(start <= match.start < end for start, end in links):
            found.append((match.start, match.end, _canonical_phone(match.number)))
    return found


def parse_phone(value: str) -> str | None:
    """One typed value as a phone number (+84… form), or None if it is not a valid one."""
    phonenumbers = _phonenumbers()
    try:
        number = phonenumbers.parse(value, "VN")
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        # "84987654321" without its plus: the library reads it as a national number; try it as +84….
        digits = re.sub(r"\D", "", value)
        if digits.startswith("84") and not value.lstrip().startswith("+"):
            return parse_phone("+" + digits)
        return None
    return _canonical_phone(number)


def mask_phone(canonical: str) -> str:
    """+84987654456 → 09•••••456: the leading 0 form people know, only the last three digits shown."""
    national = "0" + canonical[3:] if canonical.startswith("+84") else canonical
    return national[:2] + BULLET * max(len(national) - 5, 1) + national[-3:]


# --- bank accounts ---------------------------------------------------------------------------------------
# Words that say "what follows (or precedes) is an account number", with and without accents, and the
# banks' usual names. Their absence is why "0071000123456" alone is no account: it could be anything.
BANK_NAMES = (
    "vietcombank", "vcb", "techcombank", "tcb", "mbbank", "mb bank", "mb", "bidv", "agribank", "vietinbank",
    "viettinbank", "vtb", "acb", "sacombank", "stb", "vpbank", "vp bank", "tpbank", "tp bank", "shb", "hdbank",
    "vib", "ocb", "seabank", "msb", "maritime", "eximbank", "lpbank", "lienvietpostbank", "namabank", "nam a",
    "bac a", "bacabank", "abbank", "scb", "pvcombank", "kienlongbank", "vietabank", "baovietbank", "ncb",
    "saigonbank", "gpbank", "oceanbank", "cbbank", "pgbank", "shinhan", "woori", "hsbc", "standard chartered",
    "uob", "cimb", "timo", "cake", "tnex", "ubank", "liobank", "vikki", "public bank", "indovinabank",
)
_BANK_WORDS = ("stk", "số tài khoản", "so tai khoan", "số tk", "so tk", "tài khoản", "tai khoan", "tk",
               "account", "acc", "a/c", "ngân hàng", "ngan hang", "nh", "bank", "chuyển khoản", "chuyen khoan",
               "ck")
_BANK_CONTEXT = re.compile(
    r"(?<![\w])(?:" + "|".join(sorted((re.escape(w) for w in _BANK_WORDS + BANK_NAMES), key=len, reverse=True))
    + r")(?![\w])", re.IGNORECASE)
# 6 to 19 digits, in groups split by one space, dot or dash ("1903 5555 888 012", "0071-000-123456").
_DIGIT_RUN = re.compile(r"(?<![\w.,/-])\d(?:[ .-]?\d){5,18}(?![\w]|[.,/-]\d)")
# What makes a digit run a sum of money rather than an account: a unit right after it.
_MONEY_AFTER = re.compile(r"\s*(?:đ|d\b|đồng|dong|vnd|vnđ|k\b|tr\b|triệu|trieu|nghìn|nghin|ngàn|ngan|usd|\$|%)",
                          re.IGNORECASE)
_DATE = re.compile(r"^\d{1,2}[./-]\d{1,2}[./-]\d{2,4}$")
# Between "STK" / the bank's name and its number only a few characters and no other number or list break:
# in "zalo 0987654321, STK 0071000123456 VCB" the phone is not the account.
_BEFORE_REACH, _AFTER_REACH = 25, 15
_BREAKS = re.compile(r"[\d;,\n]")


def _bound(text: str, contexts: list[tuple[int, int]], start: int, end: int, *, after_too: bool) -> bool:
    for c_start, c_end in contexts:
        if 0 <= start - c_end <= _BEFORE_REACH and not _BREAKS.search(text, c_end, start):
            return True
        if after_too and 0 <= c_start - end <= _AFTER_REACH and not _BREAKS.search(text, end, c_start):
            return True
    return False


def _banks(text: str, phone_spans: list[tuple[int, int, str]]) -> list[tuple[int, int, str]]:
    found = []
    contexts = [(m.start(), m.end()) for m in _BANK_CONTEXT.finditer(text)]
    if not contexts:
        return found
    for run in _DIGIT_RUN.finditer(text):
        raw = run.group()
        digits = re.sub(r"\D", "", raw)
        if not 6 <= len(digits) <= 19 or _DATE.match(raw) or _MONEY_AFTER.match(text, run.end()):
            continue
        # Thousands written with dots ("5.000.000") are money even without a unit.
        if re.fullmatch(r"\d{1,3}(?:\.\d{3})+", raw):
            continue
        # A phone number is an account only when the account word comes first ("STK 0987654321 MB"):
        # "gọi 0987654321 rồi chuyển khoản" names a phone.
        is_phone = any(s <= run.start() < e for s, e, _c in phone_spans)
        if _bound(text, contexts, run.start(), run.end(), after_too=not is_phone):
            found.append((run.start(), run.end(), digits))
    return found


def mask_digits(canonical: str) -> str:
    """An account or wallet shown as •••••123."""
    return BULLET * 5 + canonical[-3:]


# --- vehicle plates --------------------------------------------------------------------------------------
# Province code (11–99), a series (cars: 1–2 letters, "51F", "51LD"; motorbikes: a letter and a digit
# "59-X1", two letters "59-AA", or "MĐ1" for electric ones), then 4 digits (old) or 5 ("123.45").
# Letters are those plates use: no I, J, O, Q, W.
_SERIES = r"(?:MĐ\d?|MD\d|[A-HK-NPS-VX-Z]{1,2}\d?)"
_PLATE = re.compile(
    r"(?<![\w.-])(?P<province>[1-9]\d)\s?[-.]?\s?(?P<series>" + _SERIES + r")\s?[-.]?\s?"
    r"(?P<number>\d{3}[.\s]?\d{2}|\d{4})(?![\w]|[.,]\d)", re.IGNORECASE)


def _plates(text: str) -> list[tuple[int, int, str]]:
    found = []
    for match in _PLATE.finditer(text):
        province = int(match["province"])
        if province < 11:
            continue
        series = match["series"].upper().replace("MD", "MĐ")
        # "15k 1234" is a sum of money (k = nghìn) before a number, not a plate; "51K-123.45" stays one.
        if match["series"] == "k":
            continue
        number = re.sub(r"\D", "", match["number"])
        found.append((match.start(), match.end(), f"{province}{series}{number}"))
    return found


def parse_plate(value: str) -> str | None:
    match = _PLATE.fullmatch(value.strip())
    if not match:
        return None
    plates = _plates(value.strip())
    return plates[0][2] if plates else None


def mask_plate(canonical: str) -> str:
    """51F12345 → 51F•••45: the province and series letters, the last two digits."""
    head = re.match(r"\d{2}\D+", canonical)
    return (head.group() if head else canonical[:2]) + BULLET * 3 + canonical[-2:]


# --- social accounts and e-wallets -----------------------------------------------------------------------
_URL_TAIL = r"(?P<handle>[A-Za-z0-9._-]{2,64})"
_URLS = (
    # m.me/<name> is Messenger's link to the same Facebook account.
    (FACEBOOK, re.compile(r"(?:https?://)?(?:(?:www|m|web|mbasic)\.)?(?:(?:facebook|fb)\.com|m\.me)/"
                          r"(?:profile\.php\?id=(?P<id>\d{5,20})|(?:people/[^/\s]+/(?P<pid>\d{5,20}))|"
                          + _URL_TAIL + r")", re.IGNORECASE)),
    (ZALO, re.compile(r"(?:https?://)?(?:www\.)?(?:chat\.)?zalo\.me/(?:g/)?" + _URL_TAIL, re.IGNORECASE)),
    # A private group's invite (t.me/+AbC…, t.me/joinchat/AbC…) is case-sensitive, unlike a username.
    (TELEGRAM, re.compile(r"(?:https?://)?(?:www\.)?(?:t|telegram)\.me/(?:(?:\+|joinchat/)(?P<invite>[A-Za-z0-9_-]{8,64})|"
                          r"@?" + _URL_TAIL + ")", re.IGNORECASE)),
    (TIKTOK, re.compile(r"(?:https?://)?(?:(?:www|m)\.)?tiktok\.com/@" + _URL_TAIL, re.IGNORECASE)),
)
_FACEBOOK_NOT_PROFILES = {"groups", "pages", "watch", "share", "story.php", "permalink.php", "photo.php",
                          "events", "marketplace", "reel", "reels", "login", "home.php", "help", "profile.php",
                          "photo", "photos", "photo.php", "video", "videos", "stories", "hashtag", "search", "gaming",
                          "live", "notes", "media", "business", "ads", "privacy", "policies", "dialog", "sharer",
                          "sharer.php", "plugins", "l.php", "messages", "friends", "notifications", "settings",
                          "bookmarks", "posts", "fundraisers", "legal", "about", "pg", "story", "people"}
_PLATFORM_WORDS = {
    FACEBOOK: r"facebook|fb|face|phây|phay|fây",
    ZALO: r"zalo|za lô|zl",
    TELEGRAM: r"telegram|tele|tg|tele gram",
    TIKTOK: r"tiktok|tik tok|tóp tóp",
}
# "Zalo: @lan.nguyen", "tele @scam_boss", "tiktok: @shop.uytin": a handle right after the platform's name.
_HANDLE_AFTER = {kind: re.compile(r"(?<![\w])(?:" + words + r")\s*[:\-]?\s*(?:là|la|nick|id|acc)?\s*[:\-]?\s*"
                                  r"@(?P<handle>[A-Za-z0-9._]{3,64})", re.IGNORECASE)
                 for kind, words in _PLATFORM_WORDS.items()}
# "zalo 0987 654 321": a phone number named as the platform's account (Zalo is found by phone number).
_PHONE_PLATFORMS = {ZALO: _PLATFORM_WORDS[ZALO], TELEGRAM: _PLATFORM_WORDS[TELEGRAM]}
_WALLETS = r"momo|mo mo|zalopay|zalo pay|viettelpay|viettel pay|viettel money|shopeepay|shopee pay|vnpay|" \
           r"moca|smartpay|vnpt pay|vnptpay|airpay|ví điện tử|vi dien tu|ví|payoo|money ?lover"
_REACH = 30  # characters between a wallet's or platform's name and the number


def _handle(kind: str, raw: str) -> str:
    return raw.strip("._-").lower()


def _social(text: str) -> list[tuple[int, int, str, str]]:
    found = []
    for kind, pattern in _URLS:
        for match in pattern.finditer(text):
            if kind == FACEBOOK and (match["id"] or match["pid"]):
                found.append((match.start(), match.end(), kind, "id:" + (match["id"] or match["pid"])))
                continue
            if kind == TELEGRAM and match["invite"]:
                found.append((match.start(), match.end(), kind, "invite:" + match["invite"]))
                continue
            handle = _handle(kind, match["handle"])
            if kind == FACEBOOK and handle in _FACEBOOK_NOT_PROFILES:
                continue
            if kind == FACEBOOK and handle.isdigit() and len(handle) >= 5:
                handle = "id:" + handle  # facebook.com/1000… is the profile.php?id=1000… account
            if kind == ZALO and (phone := parse_phone(handle)):
                handle = phone
            if handle:
                found.append((match.start(), match.end(), kind, handle))
    for kind, pattern in _HANDLE_AFTER.items():
        for match in pattern.finditer(text):
            found.append((match.start(), match.end(), kind, _handle(kind, match["handle"])))
    return found


def _named_phones(text: str, phones: list[tuple[int, int, str]], names: str) -> list[tuple[int, int, str]]:
    """Phones that come within reach after one of ``names`` ("MoMo 0987…", "zalo: 0912…")."""
    pattern = re.compile(r"(?<![\w])(?:" + names + r")(?![\w])", re.IGNORECASE)
    ends = [m.end() for m in pattern.finditer(text)]
    return [(s, e, c) for s, e, c in phones if any(0 <= s - end <= _REACH for end in ends)]


def mask_handle(canonical: str) -> str:
    """lan.nguyen.99 → la•••••: enough to tell two handles apart when reading, not to find the person."""
    if canonical.startswith("+"):
        return mask_phone(canonical)
    if canonical.startswith("id:"):
        return "id:" + BULLET * 5 + canonical[-3:]
    return canonical[:2] + BULLET * 5


# --- the whole text ------------------------------------------------------------------------------------


def _identifier(kind: str, canonical: str) -> Identifier:
    if kind in (PHONE, EWALLET):
        masked = mask_phone(canonical)
    elif kind == BANK:
        masked = mask_digits(canonical)
    elif kind == PLATE:
        masked = mask_plate(canonical)
    else:
        masked = mask_handle(canonical)
    return Identifier(kind=kind, value=canonical, masked=masked)


def normalize_text(text: str) -> str:
    # NFC so "Đ" typed as D + combining stroke still reads as one letter; full-width digits to ASCII.
    return unicodedata.normalize("NFKC", text)


def extract_identifiers(text: str) -> list[Identifier]:
    """Every identifier in a piece of text, each once, in the order they first appear."""
    text = normalize_text(text)
    phones = _phones(text)
    found: list[tuple[int, str, str]] = [(s, PHONE, c) for s, _e, c in phones]
    wallets = _named_phones(text, phones, _WALLETS)
    found += [(s, EWALLET, c) for s, _e, c in wallets]
    for kind, names in _PHONE_PLATFORMS.items():
        found += [(s, kind, c) for s, _e, c in _named_phones(text, phones, names)]
    social = _social(text)
    found += [(s, kind, c) for s, _e, kind, c in social]
    taken = [(s, e) for s, e, _k, _c in social]
    for start, end, digits in _banks(text, phones):
        if any(s <= start < e for s, e in taken) or any(s == start for s, _e, _c in wallets):
            continue  # "ck qua momo 0987…": a wallet, not an account
        # A number that is also a valid phone stays a phone too: many banks let the owner use their
        # phone number as account number ("STK 0987654321 MB"), and both threads are worth following.
        found.append((start, BANK, digits))
    for start, end, plate in _plates(text):
        if any(s <= start < e for s, e in taken) or any(s <= start < e for s, e, _c in phones):
            continue
        found.append((start, PLATE, plate))
    seen: dict[tuple[str, str], Identifier] = {}
    for _start, kind, canonical in sorted(found, key=lambda f: f[0]):
        seen.setdefault((kind, canonical), _identifier(kind, canonical))
    return list(seen.values())


def interpret_search(value: str) -> list[Identifier]:
    """What an officer's /search value could be: a typed value alone ("0987654321", "@handle", "51F12345")
    is read as every kind it fits, since nothing around it says which."""
    value = normalize_text(value).strip()
    found = {(i.kind, i.value): i for i in extract_identifiers(value)}
    digits = re.sub(r"[\s.-]", "", value)
    if (phone := parse_phone(value)) is not None:
        for kind in (PHONE, EWALLET, ZALO, TELEGRAM):
            found.setdefault((kind, phone), _identifier(kind, phone))
    if digits.isdigit() and 6 <= len(digits) <= 19:
        found.setdefault((BANK, digits), _identifier(BANK, digits))
    if (plate := parse_plate(value)) is not None:
        found.setdefault((PLATE, plate), _identifier(PLATE, plate))
    handle = value.lstrip("@")
    if re.fullmatch(r"[A-Za-z][A-Za-z0-9._]{2,63}", handle):
        for kind in (FACEBOOK, ZALO, TELEGRAM, TIKTOK):
            found.setdefault((kind, _handle(kind, handle)), _identifier(kind, _handle(kind, handle)))
    return list(found.values())
