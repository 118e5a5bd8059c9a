"""Telegram updates shaped as the Bot API sends them (https://core.telegram.org/bots/api#update, up to
Bot API 10.3 as aiogram 3.31 models it), each carrying canary strings: every update kind, forwarded
messages of every origin, text that is NFD, right-to-left, zero-width or holds NUL, stickers, contacts,
locations, group and channel posts; and what aiogram's models reject (the hidden-user origin without a
name of aiogram issue #1840, a field of a shape it does not know, a kind it does not know, entries that
are not updates at all).

Every entry says what the bot must make of it: "handled", "ignored" or "undecodable". Ids and texts are
canaries; ``canaries()`` lists them for the scanner.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field
from typing import Any

from tests.support.canaries import Canary, number_canary, phone_canary, text_canary

DATE = 1_760_000_000
# Private chats: each a canary id (no log line may name a citizen's chat).
CHATS = [6_283_104_571 + 1_000_003 * n for n in range(40)]
GROUP, SUPERGROUP, CHANNEL = -4_719_305_268, -1_002_846_193_057, -1_009_371_546_280
PHONES = ["0987650123", "+84912345678", "84 903 141 592", "0868.271.828"]
# Vietnamese in decomposed form (NFD), as some keyboards send it; the bot normalises to NFC.
NFD_TEXT = unicodedata.normalize("NFD", "Tôi bị lừa chuyển khoản ở phường Bến Thành")


@dataclass
class Entry:
    """One getUpdates entry (or webhook body), what the bot must make of it, and its canaries."""

    label: str
    raw: Any
    outcome: str  # handled, ignored, undecodable
    well_formed: bool = True  # fits the Bot API as documented (python-telegram-bot must read it too)
    canaries: list[Canary] = field(default_factory=list)


class Corpus:
    """Builds the entries; update ids are given by the caller (the fake server's next ids, or any)."""

    def __init__(self, first_update_id: int) -> None:
        self.next_id = first_update_id
        self.entries: list[Entry] = []
        self._chat = iter(CHATS)
        self._count = 0

    # ----------------------------------------------------------------- pieces
    def token(self, label: str) -> str:
        """A canary word for this entry: unique, ASCII, never a substring of another."""
        self._count += 1
        return f"CNRY{self._count:03d}{label.upper().replace('_', '')[:10]}Z"

    @staticmethod
    def user(chat: int, name: str = "Nguyen") -> dict:
        return {"id": chat, "is_bot": False, "first_name": name, "language_code": "en"}

    @staticmethod
    def private(chat: int, name: str = "Nguyen") -> dict:
        return {"id": chat, "type": "private", "first_name": name}

    def message(self, chat: int, token: str, **content: Any) -> dict:
        body = {"message_id": 7, "date": DATE, "chat": self.private(chat, token), "from": self.user(chat, token)}
        return body | (content or {"text": f"Có kẻ gian {token}"})

    def add(self, label: str, body: dict | Any, outcome: str, *, well_formed: bool = True,
            extra: list[Canary] | None = None, token: str | None = None, chat: int | None = None,
            raw: bool = False) -> Entry:
        update_id = self._take_id()  # an entry without an id still takes its place in the queue
        update = body if raw else {"update_id": update_id, **body}
        canaries = [text_canary(label, token)] if token else []
        if chat is not None:
            canaries.append(number_canary(f"{label} chat id", chat))
        entry = Entry(label, update, outcome, well_formed, canaries + (extra or []))
        self.entries.append(entry)
        return entry

    def _take_id(self) -> int:
        self.next_id += 1
        return self.next_id - 1

    # --------------------------------------------------------------- the corpus
    def build(self) -> Corpus:
        self._rejected_first()
        self._private_messages()
        self._forwards()
        self._other_kinds()
        return self

    def _rejected_first(self) -> None:
        """Bad entries come first in the batch: the good ones behind them must still be answered."""
        chat, token = next(self._chat), self.token("hidden")
        # aiogram issue #1840: a legacy forward whose hidden-user origin has no sender_user_name.
        self.add("hidden_user_without_name", {"message": self.message(
            chat, token, text=f"fwd {token}", forward_origin={"type": "hidden_user", "date": 1_422_450_181})},
            "undecodable", well_formed=False, token=token, chat=chat)
        chat, token = next(self._chat), self.token("origin")
        self.add("unknown_origin_type", {"message": self.message(
            chat, token, text=f"fwd {token}", forward_origin={"type": "bot_" + token, "date": DATE})},
            "undecodable", well_formed=False, token=token, chat=chat)
        chat, token = next(self._chat), self.token("wrongtype")
        # pydantic's error text would quote the value: it must never reach the log.
        self.add("message_id_not_a_number", {"message": {**self.message(chat, token), "message_id": token}},
                 "undecodable", well_formed=False, token=token, chat=chat)
        chat, token = next(self._chat), self.token("chatshape")
        self.add("chat_is_a_string", {"message": {**self.message(chat, token), "chat": f"{chat} {token}"}},
                 "undecodable", well_formed=False, token=token, chat=chat)
        chat, token = next(self._chat), self.token("phonebad")
        phone = phone_canary("phone in a bad contact", PHONES[1])
        self.add("contact_without_name", {"message": self.message(
            chat, token, contact={"phone_number": PHONES[1], "user_id": chat, "vcard": token})},
            "undecodable", well_formed=False, token=token, chat=chat, extra=[phone])
        token = self.token("noid")
        self.add("no_update_id", {"message": {"text": token}}, "undecodable", well_formed=False, token=token,
                 raw=True)
        token = self.token("notobject")
        self.add("not_an_object", [token, 1, None], "undecodable", well_formed=False, token=token, raw=True)
        token = self.token("newkind")
        # An update kind the Bot API may add tomorrow: aiogram would warn with its JSON.
        self.add("unknown_update_kind", {"message_draft_" + token.lower(): {"text": token, "chat": {"id": 1}}},
                 "ignored", well_formed=False, token=token)

    def _private_messages(self) -> None:
        chat, token = next(self._chat), self.token("start")
        self.first_start = self.add("start_after_bad_ones", {"message": self.message(
            chat, token, text="/start", entities=[{"type": "bot_command", "offset": 0, "length": 6}])},
            "handled", chat=chat)
        texts = {
            "nfd_text": lambda t: f"{NFD_TEXT} {t}",
            "rtl_text": lambda t: f"\u202e{t}\u202c مرحبا \u200f",
            "zero_width_text": lambda t: f"\u200b\u200d{t}\u2060\ufeff",
            "nul_text": lambda t: f"a\x00{t}\x00b",
            "long_text": lambda t: ("Bến Thành " * 400)[:4000] + t,
            "emoji_and_combining": lambda t: f"👨‍👩‍👧 e\u0301\u0323 {t}",
        }
        for label, make in texts.items():
            chat, token = next(self._chat), self.token(label)
            self.add(label, {"message": self.message(chat, token, text=make(token))}, "handled", token=token,
                     chat=chat)
        chat, token = next(self._chat), self.token("unknownfield")
        # A field aiogram does not know yet: kept aside by its models, never in our log.
        self.add("unknown_field", {"message": self.message(
            chat, token, text=f"xin chào {token}", paid_star_count_v99={"note": token, "phone": PHONES[0]})},
            "handled", well_formed=False, token=token, chat=chat, extra=[phone_canary("phone in a field", PHONES[0])])
        chat, token = next(self._chat), self.token("sticker")
        self.add("sticker", {"message": self.message(chat, token, sticker={
            "file_id": f"sticker-{token}", "file_unique_id": f"u{token}", "type": "regular", "width": 512,
            "height": 512, "is_animated": False, "is_video": False, "emoji": "👍", "set_name": token})},
            "handled", token=token, chat=chat)
        for index, phone in enumerate(PHONES):
            chat, token = next(self._chat), self.token(f"contact{index}")
            self.add(f"contact_{index}", {"message": self.message(chat, token, contact={
                "phone_number": phone, "first_name": token, "user_id": chat})},
                "handled", token=token, chat=chat, extra=[phone_canary(f"phone {phone}", phone)])
        chat, token = next(self._chat), self.token("location")
        self.add("location", {"message": self.message(chat, token, location={
            "latitude": 10.7726113, "longitude": 106.6980237, "horizontal_accuracy": 12.5})},
            "handled", token=token, chat=chat, extra=[text_canary("latitude", "10.7726113")])
        chat, token = next(self._chat), self.token("venue")
        self.add("venue", {"message": self.message(chat, token, location={"latitude": 21.0285, "longitude": 105.8542},
                                                   venue={"location": {"latitude": 21.0285, "longitude": 105.8542},
                                                          "title": token, "address": f"Số 1 {token}"})},
                 "handled", token=token, chat=chat)
        chat, token = next(self._chat), self.token("button")
        bot_message = {"message_id": 3, "date": DATE, "chat": self.private(chat), "text": f"Hỏi {token}",
                       "from": {"id": 123456, "is_bot": True, "first_name": "Tinbao"}}
        self.add("callback_query", {"callback_query": {"id": f"cb{chat}", "from": self.user(chat, token),
                                                      "chat_instance": "-77", "data": f"x:{token}"[:64],
                                                      "message": bot_message}},
                 "handled", token=token, chat=chat)
        chat, token = next(self._chat), self.token("inaccessible")
        self.add("callback_on_inaccessible_message", {"callback_query": {
            "id": f"cb{chat}", "from": self.user(chat, token), "chat_instance": "-78", "data": token,
            "message": {"message_id": 2, "date": 0, "chat": self.private(chat)}}}, "handled", token=token, chat=chat)
        chat, token = next(self._chat), self.token("group")
        self.add("group_message", {"message": {"message_id": 9, "date": DATE, "from": self.user(chat, token),
                                               "chat": {"id": GROUP, "type": "group", "title": token},
                                               "text": f"/start {token}"}},
                 "ignored", token=token, chat=chat, extra=[number_canary("group id", GROUP)])
        chat, token = next(self._chat), self.token("supergroup")
        self.add("supergroup_message", {"message": {
            "message_id": 10, "date": DATE, "from": self.user(chat, token), "is_topic_message": True,
            "message_thread_id": 4, "chat": {"id": SUPERGROUP, "type": "supergroup", "title": token,
                                             "is_forum": True}, "text": token}},
            "ignored", token=token, chat=chat, extra=[number_canary("supergroup id", SUPERGROUP)])

    def _forwards(self) -> None:
        for origin in ("user", "hidden_user", "chat", "channel"):
            chat, token = next(self._chat), self.token(f"fwd{origin}")
            shapes = {
                "user": {"type": "user", "date": DATE, "sender_user": self.user(chat + 1, token)},
                "hidden_user": {"type": "hidden_user", "date": DATE, "sender_user_name": f"Ẩn danh {token}"},
                "chat": {"type": "chat", "date": DATE, "author_signature": token,
                         "sender_chat": {"id": GROUP, "type": "group", "title": token}},
                "channel": {"type": "channel", "date": DATE, "message_id": 99, "author_signature": token,
                            "chat": {"id": CHANNEL, "type": "channel", "title": token}},
            }
            self.add(f"forward_from_{origin}", {"message": self.message(
                chat, token, text=f"chuyển tiếp {token}", forward_origin=shapes[origin])}, "handled", token=token,
                chat=chat)

    def _other_kinds(self) -> None:
        """Every other update kind of the Bot API: none is for the tip line, each is counted as ignored."""
        chat = next(self._chat)
        kinds: dict[str, Any] = {}
        for kind in ("edited_message", "business_message", "edited_business_message", "guest_message"):
            token = self.token(kind)
            message = self.message(chat, token, text=token)
            if kind.startswith("edited"):
                message["edit_date"] = DATE + 60
            if "business" in kind:
                message["business_connection_id"] = f"bc-{token}"
            if kind == "guest_message":
                message["guest_query_id"] = f"gq-{token}"
            kinds[kind] = (token, message)
        for kind in ("channel_post", "edited_channel_post"):
            token = self.token(kind)
            post = {"message_id": 11, "date": DATE, "text": token,
                    "chat": {"id": CHANNEL, "type": "channel", "title": token},
                    "sender_chat": {"id": CHANNEL, "type": "channel", "title": token}}
            if kind.startswith("edited"):
                post["edit_date"] = DATE + 5
            kinds[kind] = (token, post)
        user = self.user(chat)
        group = {"id": GROUP, "type": "group", "title": "Nhóm"}
        premium = {"source": "premium", "user": user}
        shaped = {
            "business_connection": lambda t: {"id": f"bc-{t}", "user": self.user(chat, t), "user_chat_id": chat,
                                              "date": DATE, "is_enabled": True, "rights": {"can_reply": True}},
            "deleted_business_messages": lambda t: {"business_connection_id": f"bc-{t}",
                                                    "chat": self.private(chat, t), "message_ids": [1, 2]},
            "message_reaction": lambda t: {"chat": self.private(chat, t), "message_id": 5, "user": user,
                                           "date": DATE, "old_reaction": [],
                                           "new_reaction": [{"type": "emoji", "emoji": "👍"}]},
            "message_reaction_count": lambda t: {"chat": {"id": CHANNEL, "type": "channel", "title": t},
                                                 "message_id": 5, "date": DATE,
                                                 "reactions": [{"type": {"type": "emoji", "emoji": "❤"},
                                                                "total_count": 3}]},
            "inline_query": lambda t: {"id": "iq1", "from": self.user(chat, t), "query": t, "offset": ""},
            "chosen_inline_result": lambda t: {"result_id": "r1", "from": self.user(chat, t), "query": t},
            "shipping_query": lambda t: {"id": "sq1", "from": user, "invoice_payload": t, "shipping_address": {
                "country_code": "VN", "state": "", "city": "Hà Nội", "street_line1": t, "street_line2": "",
                "post_code": "100000"}},
            "pre_checkout_query": lambda t: {"id": "pq1", "from": user, "currency": "VND", "total_amount": 10000,
                                             "invoice_payload": t},
            "purchased_paid_media": lambda t: {"from": user, "paid_media_payload": t},
            "poll": lambda t: {"id": "p1", "question": t, "total_voter_count": 0, "is_closed": False,
                               "is_anonymous": True, "type": "regular", "allows_multiple_answers": False,
                               "allows_revoting": False, "members_only": False,
                               "options": [{"persistent_id": "o1", "text": t, "voter_count": 0},
                                           {"persistent_id": "o2", "text": "Không", "voter_count": 0}]},
            "poll_answer": lambda t: {"poll_id": "p1", "user": self.user(chat, t), "option_ids": [0],
                                      "option_persistent_ids": ["o1"]},
            # A citizen blocking the bot arrives as my_chat_member: kicked.
            "my_chat_member": lambda t: {"chat": self.private(chat, t), "from": self.user(chat, t), "date": DATE,
                                         "old_chat_member": {"status": "member", "user": user},
                                         "new_chat_member": {"status": "kicked", "user": user, "until_date": 0}},
            "chat_member": lambda t: {"chat": {**group, "title": t}, "from": user, "date": DATE,
                                      "old_chat_member": {"status": "left", "user": self.user(chat, t)},
                                      "new_chat_member": {"status": "member", "user": self.user(chat, t)}},
            "chat_join_request": lambda t: {"chat": {**group, "title": t}, "from": user, "user_chat_id": chat,
                                            "date": DATE, "bio": t},
            "chat_boost": lambda t: {"chat": {"id": CHANNEL, "type": "channel", "title": t}, "boost": {
                "boost_id": f"b-{t}", "add_date": DATE, "expiration_date": DATE + 86_400, "source": premium}},
            "removed_chat_boost": lambda t: {"chat": {"id": CHANNEL, "type": "channel", "title": t},
                                             "boost_id": f"b-{t}", "remove_date": DATE, "source": premium},
            "managed_bot": lambda t: {"user": self.user(chat, t), "bot": {"id": 777, "is_bot": True,
                                                                               "first_name": t}},
            "subscription": lambda t: {"user": self.user(chat, t), "invoice_payload": t, "state": "active"},
            "stopped_message_generation": lambda t: {"chat": self.private(chat, t), "draft_id": 5},
        }
        for kind, make in shaped.items():
            token = self.token(kind)
            kinds[kind] = (token, make(token))
        for kind, (token, body) in kinds.items():
            self.add(f"kind_{kind}", {kind: body}, "ignored", token=token, chat=chat,
                     well_formed=kind not in PTB_DOES_NOT_KNOW)

    # ------------------------------------------------------------------- views
    def canaries(self) -> list[Canary]:
        unique: dict[tuple, Canary] = {}
        for entry in self.entries:
            for canary in entry.canaries:
                unique.setdefault(canary.forms, canary)
        return list(unique.values())

    def expected(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for entry in self.entries:
            counts[entry.outcome] = counts.get(entry.outcome, 0) + 1
        return counts


# Bot API kinds newer than python-telegram-bot 22.8 (Bot API 10.0) knows: it keeps them aside.
PTB_DOES_NOT_KNOW = frozenset({"subscription", "stopped_message_generation"})
