"""A unit's own Zalo Official Account end to end: our aiohttp client and webhook over real HTTP, against a
fake Zalo OA (OpenAPI + OAuth) on 127.0.0.1 that posts signed events to our webhook.

Zalo gives no language, so citizens are answered in Vietnamese (the default); texts are checked through the
same catalog the handlers use.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import logging
import re
from datetime import timedelta
from pathlib import Path

import pytest
from aiohttp.test_utils import TestServer
from PIL import Image
from sqlalchemy import func, text
from sqlmodel import select

from bot import runtime
from bot.channels import zalo_oa as oa_module
from bot.channels.zalo_oa import (BUTTON_PAYLOAD, CHANNEL, OASettings, TokenKeeper, ZaloOAChannel, ZaloOAClient,
                                  ZaloOAError, code_challenge, new_code_verifier, render, seen_key, to_inbound,
                                  verify_event)
from bot.config import ConfigError, load_config
from bot.delivery import Deliveries
from bot.reminders import BLOCKED, SENT, TRANSIENT, Outcome
from bot.webhook import ZALO_OA_WEBHOOK_PATH, zalo_oa_webhook_app
from handlers.i18n import translator
from handlers.messages import Choice, OutgoingFile, Reply, Route
from handlers.officer.accounts import create_invite_code
from storage import zalo_oa as store
from storage.crypto import Keyring
from storage.db import Database
from storage.keys import load_data_key
from storage.models import (Attachment, Conversation, ProcessedUpdate, Tip, TipField, ZaloOaButton, ZaloOaEvent,
                            ZaloOaInteraction)
from storage.tips import read_tip_fields
from tests.fakes.zalo_oa_api import APP_ID, APP_SECRET, OA_ID, OA_SECRET, FakeZaloOA
from tests.support.chat import ChatClient
from tests.support.images import GPS_IFD, jpeg_with_gps

USER = "8309393969855402319"  # Zalo user ids are long digit strings (this one from a logged event)
OTHER = "1423847451268726170"
AREA = "Phường Bến Thành, Thành phố Hồ Chí Minh"
DESCRIPTION = "Có người bán ma túy ở quán cà phê đầu hẻm, tối nào cũng có."
vi = translator("vi")


# --- fixtures ----------------------------------------------------------------------------------------

@pytest.fixture
async def fake():
    server = FakeZaloOA()
    await server.start()
    yield server
    await server.close()


def make_client(fake: FakeZaloOA, **kwargs) -> ZaloOAClient:
    return ZaloOAClient(app_id=APP_ID, app_secret=APP_SECRET, api_base=fake.base_url, oauth_base=fake.base_url,
                        **{"timeout": 5.0, "oauth_timeout": 5.0, **kwargs})


@pytest.fixture
async def client(fake):
    zalo = make_client(fake)
    yield zalo
    await zalo.close()


async def store_pair(services, access: str, refresh: str, *, age: timedelta = timedelta(hours=3)) -> int:
    """The pair as stored ``age`` ago (a pair refused minutes after it was issued is not refreshed again)."""
    async with services.db.transaction() as session:
        return await store.save_tokens(session=session, keyring=services.keyring, oa_id=OA_ID, access_token=access,
                                       refresh_token=refresh, expires_in=90_000, now=services.clock() - age)


@pytest.fixture
async def connected(fake, services) -> tuple[str, str]:
    """What `tinbao zalo-oa connect` leaves: the first pair, sealed in the database."""
    access, refresh = fake.issue_pair()
    await store_pair(services, access, refresh)
    return access, refresh


def oa_settings(**overrides) -> OASettings:
    return OASettings(**{"app_id": APP_ID, "oa_id": OA_ID, "secret_key": OA_SECRET, **overrides})


class Hooked:
    """The OA channel behind our real webhook server, with the fake posting to it."""

    def __init__(self, channel: ZaloOAChannel, server: TestServer) -> None:
        self.channel, self.server = channel, server

    async def close(self) -> None:
        await self.channel.drain()
        await self.server.close()


async def hook(fake: FakeZaloOA, channel: ZaloOAChannel) -> Hooked:
    server = TestServer(zalo_oa_webhook_app(channel), host="127.0.0.1")
    await server.start_server()
    fake.webhook_url = str(server.make_url(ZALO_OA_WEBHOOK_PATH))
    return Hooked(channel, server)


@pytest.fixture
def deliveries() -> Deliveries:
    return Deliveries()


@pytest.fixture
async def oa(fake, client, tipline, connected, deliveries):
    channel = ZaloOAChannel(client=client, tipline=tipline, settings=oa_settings(), deliveries=deliveries)
    hooked = await hook(fake, channel)
    yield channel
    await hooked.close()


class Citizen:
    """Acts on the fake as a person in an OA chat and returns what the bot answered."""

    def __init__(self, fake: FakeZaloOA, channel: ZaloOAChannel, user: str = USER) -> None:
        self.fake, self.channel, self.user = fake, channel, user

    async def _answer(self, act) -> str:
        before = len(self.fake.messages_to(self.user))
        self.last_id = await act()
        await self.fake.wait_for_messages(self.user, before + 1)
        await self.channel.drain()  # every part of every reply to this event is out
        self.last = self.fake.messages_to(self.user)[before:]
        return "\n\n".join(self.fake.texts_to(self.user)[before:])

    async def say(self, words: str) -> str:
        return await self._answer(lambda: self.fake.send_text(self.user, words))

    async def tap(self, title: str) -> str:
        return await self._answer(lambda: self.fake.click(self.user, title))

    async def image(self, data: bytes, caption: str | None = None) -> str:
        return await self._answer(lambda: self.fake.send_image(self.user, data, caption=caption))

    async def location(self, latitude: str, longitude: str) -> str:
        return await self._answer(lambda: self.fake.send_location(self.user, latitude, longitude))

    async def sticker(self) -> str:
        return await self._answer(lambda: self.fake.send_sticker(self.user))

    def titles(self) -> list[str]:
        return [b["title"] for m in self.last for b in self.fake.buttons(m)]


@pytest.fixture
def citizen(fake, oa) -> Citizen:
    return Citizen(fake, oa)


async def rows(services, model) -> int:
    async with services.db.transaction() as session:
        return (await session.exec(select(func.count()).select_from(model))).one()


async def fill_tip(citizen: Citizen) -> str:
    """The whole tip-off, with a map pin and a photo; returns the receipt message."""
    text = await citizen.say("/report")
    assert "Bạn muốn báo tin về loại vụ việc nào?" in text
    assert "Ma túy" in citizen.titles() and "Khác" in citizen.titles()  # all nine, as buttons
    assert "Hãy kể lại sự việc" in await citizen.tap("Ma túy")
    await citizen.say(DESCRIPTION)
    assert "113" in await citizen.tap("Đang xảy ra")
    await citizen.say("ben thanh")
    assert AREA in citizen.titles()
    text = await citizen.tap(AREA)
    assert "Trên Zalo, bạn có thể gửi vị trí" in text and vi("Skip") in citizen.titles()
    await citizen.location("10.7726", "106.6980")
    text = await citizen.say("Hai thanh niên đi xe Exciter màu đỏ")
    assert "Gửi ảnh, video, ghi âm" in text
    text = await citizen.image(jpeg_with_gps())
    assert vi("Files received so far: {count}.").format(count="1") in text
    await citizen.tap(vi("Done"))
    text = await citizen.tap(vi("Anonymous (recommended)"))
    assert "Vui lòng kiểm tra lại tin báo trước khi gửi" in text
    return await citizen.tap(vi("Send the tip"))


# --- the tip-off through the fake OA ------------------------------------------------------------------

async def test_a_whole_tip_off_with_an_image_and_a_location(fake, citizen, services):
    receipt = await fill_tip(citizen)
    assert re.search(r"TB-[0-9A-Z]{4,}-[0-9A-Z]{4,}", receipt) and "113" in receipt
    async with services.db.transaction() as session:
        tip = (await session.exec(select(Tip))).one()
        key = await load_data_key(session=session, keyring=services.keyring, owner_id=tip.id)
        fields = await read_tip_fields(session=session, data_key=key)
        attachment = (await session.exec(select(Attachment))).one()
        sealed = [f.sealed for f in (await session.exec(select(TipField))).all()]
        conversation = (await session.exec(select(Conversation))).one()
        events = (await session.exec(select(ZaloOaEvent))).all()
    assert (tip.channel, tip.category, tip.area_code, tip.urgent, tip.attachment_count) == (
        CHANNEL, "drugs", "79.26734", True, 1)
    assert json.loads(fields["description"])["text"] == DESCRIPTION
    assert json.loads(fields["place"]) == {"latitude": 10.7726, "longitude": 106.698}  # Zalo sent strings
    route = json.loads(fields["reply_route"])
    assert route["channel"] == CHANNEL and route["chat_id"] == USER
    assert all(DESCRIPTION.encode() not in blob and USER.encode() not in blob for blob in sealed)
    assert conversation.chat_key == services.keyring.pseudonym("zoa", USER)
    photo = services.blobs.read(data_key=key, attachment_id=attachment.id, blob_name=attachment.blob_name)
    assert attachment.kind == "photo" and photo[:2] == b"\xff\xd8" and b"CanaryPhoneMaker" not in photo
    assert GPS_IFD not in Image.open(io.BytesIO(photo)).getexif()
    assert fake.downloads == 1
    # Every event was stored before it was handled, and its payload shredded once it was.
    assert events and all(e.processed_at is not None and e.payload is None and e.key_id is None for e in events)
    # Tapped buttons came back as their payloads; no payload was ever shown as words.
    assert not any("#tb" in t for t in fake.texts_to(USER))


async def test_buttons_are_oa_query_hide_and_their_payload_maps_back_to_the_choice(fake, citizen, services):
    await citizen.say("/start")
    [message] = citizen.last
    buttons = fake.buttons(message)
    assert [b["type"] for b in buttons] == ["oa.query.hide"] * 3
    assert all(BUTTON_PAYLOAD.fullmatch(b["payload"]) for b in buttons)
    # The payload says nothing: what it stands for is sealed, and bound to this chat.
    async with services.db.transaction() as session:
        kept = (await session.exec(select(ZaloOaButton))).all()
    assert {b.token for b in kept} >= {b["payload"][3:] for b in buttons}
    assert all(b"menu:" not in row.sealed and USER.encode() not in row.sealed for row in kept)
    text = await citizen.tap(vi("Report a crime"))
    assert "Bạn muốn báo tin về loại vụ việc nào?" in text
    # Typed by somebody else, the same payload is not a tap of theirs; and it is never taken as words.
    payload = fake.button_payload(USER, "Ma túy")
    other = Citizen(fake, citizen.channel, OTHER)
    await other.say("/report")
    text = await other.say(payload)
    assert "Hãy kể lại sự việc" not in text and payload not in text
    assert "Hãy kể lại sự việc" in await citizen.say(payload)  # the citizen it was sent to: it works


def test_nine_choices_go_four_buttons_at_a_time_under_the_question():
    reply = Reply("Bạn muốn báo tin về loại vụ việc nào?", choices=[Choice(f"category:{i}", f"Mục {i}")
                                                                    for i in range(9)])
    parts = render(reply)
    assert [p.text for p in parts] == [reply.text, "…", "…"]
    assert [len(p.choices) for p in parts] == [4, 4, 1]
    long = render(Reply("x" * 2500, location_button="📍 Send my location"))
    assert len(long) == 2 and all(len(p.text) <= 2000 for p in long) and "Location" in long[-1].text


# --- an officer's verdict reaches the tipster on the OA --------------------------------------------------

class Collector:
    """Another channel of this process (the console here): what reached its chats."""

    def __init__(self) -> None:
        self.got: list[tuple[str, Reply]] = []

    async def __call__(self, chat_id: str, replies: list[Reply]) -> None:
        self.got += [(chat_id, r) for r in replies]

    def texts(self, chat_id: str) -> str:
        return "\n".join(r.text for c, r in self.got if c == chat_id)


async def enrol(services, tipline, chat_id: str, *, role: str = "officer", unit: str = "ca-benthanh") -> ChatClient:
    officer = ChatClient(tipline, chat_id=chat_id, channel="console", language="vi")
    code = await create_invite_code(services, unit_id=unit, role=role, name=f"Cán bộ {chat_id}")
    await officer.send(f"/enroll {code}")
    assert "/queue" in officer.text
    return officer


async def test_an_officer_s_verdict_on_another_channel_reaches_the_tipster_on_the_oa(
        fake, citizen, services, tipline, deliveries):
    console = Collector()
    deliveries.register("console", console)
    await fill_tip(citizen)
    officer = await enrol(services, tipline, "officer-lan")
    before = len(fake.messages_to(USER))
    await deliveries.send(await officer.send("/next"), origin=Route("console", "officer-lan"))
    async with services.db.transaction() as session:
        tip = (await session.exec(select(Tip))).one()
    assert tip.ref in console.texts("officer-lan") and DESCRIPTION in console.texts("officer-lan")
    reviewed = vi("Your tip of {date} is now being reviewed by an officer.").split("{date}")[0]
    [told] = (await fake.wait_for_messages(USER, before + 1))[before:]
    assert told["text"].startswith(reviewed)
    await deliveries.send(await officer.send(f"/valuable {tip.ref}"), origin=Route("console", "officer-lan"))
    valuable = vi("Your tip of {date} was judged valuable. Thank you for helping keep our community safe!")
    last = (await fake.wait_for_messages(USER, before + 2))[-1]["text"]
    assert last.startswith(valuable.split("{date}")[0]) and last.endswith(valuable.split("{date}")[1])
    assert USER not in console.texts("officer-lan")  # the officer never learns who the tipster is


async def test_an_officer_on_the_oa_gets_the_evidence_as_an_uploaded_image(fake, citizen, services, tipline, oa):
    await fill_tip(citizen)
    officer = Citizen(fake, oa, OTHER)
    code = await create_invite_code(services, unit_id="ca-benthanh", role="officer", name="Lan")
    assert "/queue" in await officer.say(f"/enroll {code}")
    await officer.say("/next")
    media = [m for m in fake.messages_to(OTHER) if (m["message"].get("attachment") or {}).get("payload", {})
             .get("template_type") == "media"]
    assert len(media) == 1
    attachment_id = media[0]["message"]["attachment"]["payload"]["elements"][0]["attachment_id"]
    uploaded = fake.uploads[attachment_id]
    assert uploaded[:2] == b"\xff\xd8" and b"CanaryPhoneMaker" not in uploaded  # the cleaned copy, never the original


async def test_a_photo_too_large_for_the_oa_is_shrunk_else_named_in_words(fake, client, tipline, connected, caplog):
    channel = ZaloOAChannel(client=client, tipline=tipline, settings=oa_settings(image_max_bytes=60_000))
    fake.followers.add(USER)
    noisy = Image.frombytes("RGB", (1200, 900), bytes((i * 7919) % 251 for i in range(1200 * 900 * 3)))
    big = io.BytesIO()
    noisy.save(big, format="JPEG", quality=95)
    assert len(big.getvalue()) > 60_000
    await channel.send(USER, [Reply("Bằng chứng:", files=[OutgoingFile("photo", big.getvalue())])])
    [upload] = fake.uploads.values()
    assert len(upload) <= 60_000 and Image.open(io.BytesIO(upload)).size[0] < 1200
    tiny = ZaloOAChannel(client=client, tipline=tipline, settings=oa_settings(image_max_bytes=200))
    await tiny.send(USER, [Reply("", files=[OutgoingFile("photo", big.getvalue()),
                                            OutgoingFile("video", b"\x00" * 3_000_000)])])
    notices = fake.texts_to(USER)[-2:]
    assert all("không gửi được qua Zalo OA" in t for t in notices)
    assert "video, 2.9 MB" in notices[1]
    assert len(fake.uploads) == 1


# --- the webhook: signatures, replays, duplicates, echoes ---------------------------------------------

def signed_body(event: dict) -> tuple[bytes, str]:
    body = json.dumps(event, ensure_ascii=False, separators=(",", ":")).encode()
    digest = hashlib.sha256(APP_ID.encode() + body + str(event["timestamp"]).encode() + OA_SECRET.encode())
    return body, "mac=" + digest.hexdigest()


def text_event(words: str = "/start", *, msg_id: str = "b8de7d84fa1b3043690c", timestamp: str | None = None) -> dict:
    import time
    return {"app_id": APP_ID, "event_name": "user_send_text", "sender": {"id": USER}, "recipient": {"id": OA_ID},
            "message": {"text": words, "msg_id": msg_id}, "timestamp": timestamp or str(int(time.time() * 1000))}


async def nothing_happened(fake: FakeZaloOA, channel: ZaloOAChannel, services) -> None:
    await asyncio.sleep(0.1)
    await channel.drain()
    assert fake.sent == []
    assert await rows(services, ZaloOaEvent) == 0 and await rows(services, ProcessedUpdate) == 0
    assert await rows(services, Conversation) == 0


@pytest.mark.parametrize("forgery", ["missing", "wrong mac", "other secret", "oa id for app id", "body changed",
                                     "not hex", "empty"])
async def test_a_bad_or_missing_signature_gets_401_and_nothing_else(fake, oa, services, forgery, caplog):
    event = text_event()
    body, good = signed_body(event)
    options: dict = {}
    if forgery == "missing":
        options = {"sign": False}
    elif forgery == "wrong mac":
        options = {"signature": "mac=" + "0" * 64}
    elif forgery == "other secret":
        options = {"secret": "another-OA-secret-0000"}
    elif forgery == "oa id for app id":
        options = {"signature": "mac=" + hashlib.sha256(OA_ID.encode() + body + event["timestamp"].encode()
                                                          + OA_SECRET.encode()).hexdigest()}
    elif forgery == "body changed":
        options = {"signature": good}  # signed for "/start", but the body says something else
        event["message"]["text"] = "/report"
    elif forgery == "not hex":
        options = {"signature": "mac=" + "z" * 64}
    elif forgery == "empty":
        options = {"signature": ""}
    assert await fake.push(event, **options) == 401
    await nothing_happened(fake, oa, services)
    assert OA_SECRET not in caplog.text and USER not in caplog.text


@pytest.mark.parametrize("minutes", [-(24 * 60 + 1), 11])
async def test_a_signed_event_older_than_zalo_s_retries_or_from_the_future_gets_401(fake, oa, services, minutes):
    """Correctly signed, but older than a day (Zalo stopped retrying long before) or 11 minutes ahead."""
    stamp = str(int((services.clock() + timedelta(minutes=minutes)).timestamp() * 1000))
    assert await fake.push(text_event(timestamp=stamp)) == 401
    await nothing_happened(fake, oa, services)
    assert oa.outcomes == {"refused": 1}


async def test_the_signature_is_checked_over_the_raw_bytes_and_mac_is_optional(fake, oa, services):
    import time
    fake.followers.add(USER)
    # Pretty-printed: re-serialising the JSON would give other bytes, and the signature would not match.
    assert await fake.push(text_event(msg_id="a1"), indent=2) == 200
    event = text_event("/help", msg_id="a2", timestamp=str(int(time.time() * 1000) - 4 * 60 * 1000))
    body, mac = signed_body(event)
    assert await fake.push(event, signature=mac.removeprefix("mac=")) == 200  # 4 minutes old, no "mac=" prefix
    await fake.wait_for_messages(USER, 2)


async def test_zalo_s_unsigned_probe_gets_200_and_changes_nothing(fake, oa, services):
    import aiohttp
    async with aiohttp.ClientSession() as http:
        for body in (b"{}", b"", b"{ }"):
            async with http.post(fake.webhook_url, data=body, headers={"Content-Type": "application/json"}) as r:
                assert r.status == 200
        async with http.get(fake.webhook_url) as r:
            assert r.status == 200
        async with http.post(fake.webhook_url, data=b"{not json") as r:
            assert r.status == 401
    await nothing_happened(fake, oa, services)


async def test_a_redelivered_msg_id_is_stored_and_answered_once(fake, citizen, services):
    assert "113" in await citizen.say("/start")
    first = citizen.last_id
    for _ in range(3):
        assert await fake.redeliver(first) == 200
    assert "/help" in await citizen.say("/help")  # a marker: once answered, the redeliveries were seen
    await citizen.channel.drain()
    assert len(fake.messages_to(USER)) == 2
    assert await rows(services, ZaloOaEvent) == 2


@pytest.mark.parametrize("name", ["oa_send_text", "oa_send_image", "oa_send_list", "user_received_message",
                                  "user_seen_message"])
async def test_echoes_of_what_the_oa_sent_are_never_answered(fake, oa, services, name):
    assert await fake.echo(name, USER) == 200
    await nothing_happened(fake, oa, services)


async def test_follow_greets_unfollow_forgets_and_a_sticker_is_refused_kindly(fake, citizen, services):
    before = len(fake.messages_to(USER))
    assert await fake.follow(USER) == 200
    [welcome] = (await fake.wait_for_messages(USER, before + 1))[before:]
    assert "113" in welcome["text"]
    await citizen.channel.drain()
    async with services.db.transaction() as session:
        seen = await store.last_interaction(session=session, keyring=services.keyring,
                                            seen_key=seen_key(services.keyring, USER))
    assert seen is not None and abs((services.clock() - seen).total_seconds()) < 60
    await citizen.say("/report")
    assert vi("Sorry, this kind of message cannot be used here.") in await citizen.sticker()
    assert await fake.unfollow(USER) == 200
    await citizen.channel.drain()
    assert await rows(services, ZaloOaInteraction) == 0  # nothing is kept of who left


# --- tokens --------------------------------------------------------------------------------------------

async def stored_pair(services) -> store.StoredTokens:
    async with services.db.transaction() as session:
        return await store.load_tokens(session=session, keyring=services.keyring, oa_id=OA_ID)


async def everything_in_the_database(services) -> bytes:
    """Every row of every table as bytes (and on SQLite the file and its WAL): for "not in clear" checks."""
    chunks: list[bytes] = []
    db = services.db
    async with db.engine.connect() as conn:
        if db.is_sqlite:
            path = Path(db.engine.url.database)
            for file in (path, path.with_name(path.name + "-wal")):
                if file.exists():
                    chunks.append(file.read_bytes())
        else:
            tables = (await conn.execute(text(
                "SELECT tablename FROM pg_tables WHERE schemaname='public'"))).scalars().all()
            for table in tables:
                chunks += [str(r).encode() for r in (await conn.execute(text(f'SELECT t::text FROM "{table}" t'))).all()]
    return b"\n".join(chunks)


async def test_a_token_expiring_mid_conversation_is_refreshed_once_and_the_message_retried(
        fake, citizen, services, connected, caplog):
    old_access, old_refresh = connected
    assert "Bạn muốn báo tin về loại vụ việc nào?" in await citizen.say("/report")
    fake.expire_access_tokens()  # 25 hours later, in the middle of the tip-off
    assert "Hãy kể lại sự việc" in await citizen.tap("Ma túy")
    assert fake.refresh_calls == [old_refresh] and fake.reused_refresh == []
    assert ("/v3.0/oa/message/cs", -216) in fake.refused
    stored = await stored_pair(services)
    new_access, new_refresh = stored.access_token, stored.refresh_token
    assert stored.version == 2 and fake.access_tokens[new_access] and fake.refresh_tokens[new_refresh] == "live"
    assert stored.refresh_state == "ok" and citizen.channel.tokens.refreshes == 1
    # Sealed: neither pair is in the database in clear (nor in SQLite's file or WAL), nor in the log.
    dump = await everything_in_the_database(services)
    for token in (old_access, old_refresh, new_access, new_refresh):
        assert token.encode() not in dump and token not in caplog.text
    assert "Vui lòng" not in caplog.text and USER not in caplog.text
    # Refused again minutes after it was issued: not refreshed again (no refresh per message for a dead grant).
    fake.expire_access_tokens()
    await fake.send_text(USER, "/help")
    await asyncio.sleep(0.3)
    await citizen.channel.drain()
    assert fake.refresh_calls == [old_refresh] and "withdrawn the app's permission" in caplog.text


async def keeper_on_its_own_connection(fake, services, url: str) -> tuple[TokenKeeper, Database, ZaloOAClient]:
    """A second worker: its own database pool and HTTP session, the same database and OA."""
    database = Database(url)
    from handlers.context import Services
    other = Services(db=database, keyring=services.keyring, blobs=services.blobs, settings=services.settings)
    zalo = make_client(fake)
    return TokenKeeper(other, zalo, OA_ID), database, zalo


@pytest.mark.parametrize("workers", [2, 5])
async def test_workers_refreshing_at_once_spend_the_refresh_token_exactly_once(
        fake, services, connected, database_url, workers):
    fake.refresh_delay = 0.5  # the OAuth call is slow: every worker is waiting on the lock meanwhile
    keepers = [await keeper_on_its_own_connection(fake, services, database_url) for _ in range(workers)]
    try:
        tokens = await asyncio.wait_for(asyncio.gather(
            *(keeper.refresh(stale_version=1) for keeper, _db, _c in keepers)), 30)
    finally:
        for _keeper, database, zalo in keepers:
            await zalo.close()
            await database.dispose()
    assert fake.refresh_calls == [connected[1]] and fake.reused_refresh == []
    stored = await stored_pair(services)
    assert stored.version == 2 and set(tokens) == {stored.access_token}
    assert sum(keeper.refreshes for keeper, _db, _c in keepers) == 1


async def test_a_refresh_whose_answer_never_came_is_not_sent_again_and_the_admins_are_told(
        fake, client, services, tipline, connected, deliveries, caplog):
    console = Collector()
    deliveries.register("console", console)
    await enrol(services, tipline, "admin-ha", role="admin", unit="ca-hcm")
    slow = make_client(fake, oauth_timeout=0.3)
    channel = ZaloOAChannel(client=slow, tipline=tipline, settings=oa_settings(), deliveries=deliveries)
    fake.hang_after_spending = 1.0
    try:
        assert await channel.tokens.refresh(stale_version=1) is None
        assert await channel.tokens.refresh(stale_version=1) is None  # asked again: nothing is sent
    finally:
        await slow.close()
    assert fake.refresh_calls == [connected[1]]
    stored = await stored_pair(services)
    assert (stored.version, stored.refresh_state, stored.access_token) == (1, "unknown", connected[0])
    assert "tinbao zalo-oa connect" in console.texts("admin-ha")


async def test_a_failed_refresh_alerts_the_admins_and_keeps_the_old_pair(
        fake, citizen, services, tipline, connected, deliveries, caplog):
    console = Collector()
    deliveries.register("console", console)
    await enrol(services, tipline, "admin-ha", role="admin", unit="ca-hcm")
    await enrol(services, tipline, "officer-lan")  # not an admin: not told
    caplog.set_level(logging.INFO)
    fake.fail_next_refresh()  # HTTP 200, without an access_token
    fake.expire_access_tokens()
    assert await fake.send_text(USER, "/start")
    await asyncio.sleep(0.3)
    await citizen.channel.drain()
    assert fake.messages_to(USER) == []  # the reply could not go: the token is dead and was not replaced
    alert = console.texts("admin-ha")
    assert "Zalo OA" in alert and "-14014" in alert and "tinbao zalo-oa connect" in alert
    assert console.texts("officer-lan") == ""
    assert "Zalo OA token refresh failed" in caplog.text and "stored pair is kept" in caplog.text
    stored = await stored_pair(services)
    assert (stored.version, stored.access_token, stored.refresh_token) == (1, *connected)
    assert (stored.refresh_state, stored.failure) == ("failed", "-14014 Invalid refresh token")
    assert fake.refresh_calls == [connected[1]]
    # A second message within the hour does not hammer Zalo with the refused token.
    await fake.send_text(USER, "/help")
    await asyncio.sleep(0.3)
    await citizen.channel.drain()
    assert fake.refresh_calls == [connected[1]]
    for token in connected:
        assert token not in caplog.text and token not in alert


async def test_the_scheduled_refresh_runs_about_every_20_hours(fake, client, tipline, services, connected):
    channel = ZaloOAChannel(client=client, tipline=tipline, settings=oa_settings())
    assert await channel.tokens.refresh_if_due() is False and fake.refresh_calls == []
    start = services.clock()
    services.clock = lambda: start + timedelta(hours=20, minutes=1)
    assert await channel.tokens.refresh_if_due() is True
    assert await channel.tokens.refresh_if_due() is False  # just refreshed
    assert fake.refresh_calls == [connected[1]] and (await stored_pair(services)).version == 2


# --- the 7-day window and reminders --------------------------------------------------------------------

REMINDER = Reply("🔔 Ngày hội toàn dân bảo vệ an ninh Tổ quốc\n📅 19/08/2026",
                 choices=[Choice("remind:off", "🔕 Tắt nhắc")])


async def seen(services, user: str, ago: timedelta | None) -> None:
    async with services.db.transaction() as session:
        if ago is None:
            await store.forget_interaction(session=session, seen_key=seen_key(services.keyring, user))
        else:
            await store.record_interaction(session=session, keyring=services.keyring,
                                           seen_key=seen_key(services.keyring, user), at=services.clock() - ago)


@pytest.mark.parametrize("paid, ago, expected", [
    (False, timedelta(hours=1), "message"), (False, timedelta(hours=47), "message"),
    (False, timedelta(days=3), "outside"), (False, timedelta(days=8), "outside"), (False, None, "outside"),
    (True, timedelta(days=3), "message"), (True, timedelta(days=6, hours=23), "message"),
    (True, timedelta(days=8), "outside"),
])
async def test_a_reminder_inside_the_window_is_a_message_outside_it_is_refused(
        fake, client, tipline, services, connected, paid, ago, expected):
    channel = ZaloOAChannel(client=client, tipline=tipline, settings=oa_settings(reminders_in_paid_window=paid))
    fake.followers.add(USER)
    await seen(services, USER, ago)
    outcome = await channel.send_reminder(USER, REMINDER)
    if expected == "message":
        assert outcome == SENT
        [message] = fake.messages_to(USER)
        assert message["text"] == REMINDER.text
        [button] = fake.buttons(message)
        assert button["type"] == "oa.query.hide" and button["title"] == "🔕 Tắt nhắc"
    else:
        assert outcome == Outcome.refused("outside_window") and fake.sent == [] and fake.templates == []


async def test_outside_the_window_a_configured_template_is_used(fake, client, tipline, services, connected):
    channel = ZaloOAChannel(client=client, tipline=tipline, settings=oa_settings(
        reminder_template_id="301234", reminder_template_param="noi_dung"))
    fake.followers.add(USER)
    await seen(services, USER, timedelta(days=9))
    assert await channel.send_reminder(USER, REMINDER) == SENT
    [template] = fake.templates
    assert template["template_id"] == "301234" and template["user_id"] == USER
    assert template["template_data"] == {"noi_dung": REMINDER.text}
    # Zalo's own count of the window wins over ours: -230 on a message sends the template instead.
    fake.outside_window.add(USER)
    await seen(services, USER, timedelta(hours=1))
    assert await channel.send_reminder(USER, REMINDER) == SENT and len(fake.templates) == 2


async def test_reminder_refusals_become_outcomes_the_dispatcher_understands(fake, client, tipline, services, connected):
    channel = ZaloOAChannel(client=client, tipline=tipline, settings=oa_settings())
    await seen(services, USER, timedelta(hours=1))
    assert await channel.send_reminder(USER, REMINDER) == BLOCKED  # -213: no longer follows the OA
    fake.followers.add(USER)
    for code, outcome in ((-32, Outcome.wait(30)), (-211, TRANSIENT), (-218, Outcome("rejected")),
                          (-230, Outcome.refused("outside_window"))):
        fake.fail_next("/v3.0/oa/message/cs", code, "refused")
        assert await channel.send_reminder(USER, REMINDER) == outcome, code


async def test_the_outbox_dispatcher_sends_oa_reminders_through_the_channel(fake, client, tipline, services, connected):
    from bot.reminders import Dispatcher, tick
    from handlers.reminders.festival_calendar import ReminderSettings
    from storage import outbox
    from storage import reminders as reminders_store
    from tests.bot.test_reminder_delivery import DAYTIME
    from tests.support.reminders import Clock, add_subscribers
    services.clock = Clock(DAYTIME, running=True)
    channel = ZaloOAChannel(client=client, tipline=tipline, settings=oa_settings())
    fake.followers.update({USER, OTHER})
    await add_subscribers(services, [USER, OTHER], channel=CHANNEL)
    await seen(services, USER, timedelta(hours=2))  # OTHER last wrote long ago (nothing kept)
    config = ReminderSettings(rate_per_second=50, retry_seconds=0.2)
    now = services.clock()
    async with services.db.transaction() as session:
        await reminders_store.create_broadcast(session=session, key="announce:oa", kind="announcement", send_at=now,
                                               now=now, text="Mời bà con dự Ngày hội.")
    assert (await tick(services, config)).queued == 2
    worker = Dispatcher(services, config, {CHANNEL: channel.send_reminder}, idle_seconds=0.05, flush_seconds=0.05,
                        grace_seconds=0)
    await asyncio.wait_for(worker.run(until_idle=True), 30)
    async with services.db.transaction() as session:
        counts = await outbox.count_by_status(session=session)
        reasons = (await session.exec(select(text("reason")).select_from(text("reminder_outbox"))
                                      .where(text("status = 'skipped'")))).all()
    assert counts.get("sent") == 1 and counts.get("skipped") == 1 and list(reasons) == ["outside_window"]
    assert [m["user_id"] for m in fake.sent] == [USER] and "Ngày hội" in fake.sent[0]["text"]


async def test_the_last_interaction_is_sealed_and_keyed_apart_from_the_conversation(citizen, services):
    await citizen.say("/start")
    async with services.db.transaction() as session:
        [row] = (await session.exec(select(ZaloOaInteraction))).all()
        conversation = (await session.exec(select(Conversation))).one()
    assert row.seen_key != conversation.chat_key and USER not in row.seen_key
    assert USER.encode() not in row.sealed and str(services.clock().year).encode() not in row.sealed


# --- events, the client, PKCE -------------------------------------------------------------------------

def _fetcher(url):
    async def fetch() -> bytes:
        return b""
    return fetch


def test_event_shapes_become_inbounds():
    base = {"app_id": APP_ID, "sender": {"id": USER}, "recipient": {"id": OA_ID}, "timestamp": "1751100041636"}
    location = to_inbound({**base, "event_name": "user_send_location", "message": {
        "msg_id": "m1", "text": "Cơm Coffee", "attachments": [{"type": "location", "payload": {"coordinates": {
            "latitude": "10.7923119", "longitude": "106.7820651"}}}]}}, oa_id=OA_ID, fetcher=_fetcher)
    assert location.location.latitude == pytest.approx(10.7923119) and location.text is None
    assert location.update_id == "m1" and location.language is None and location.channel == CHANNEL
    broken = to_inbound({**base, "event_name": "user_send_location", "message": {"msg_id": "m2", "attachments": [
        {"type": "location", "payload": {"coordinates": {"latitude": "abc", "longitude": "1"}}}]}},
        oa_id=OA_ID, fetcher=_fetcher)
    assert broken.location is None and broken.unsupported == "location"
    document = to_inbound({**base, "event_name": "user_send_file", "message": {"msg_id": "m3", "attachments": [
        {"type": "file", "payload": {"url": "https://f.zalo.me/a.pdf", "name": "hop-dong.pdf", "size": "1024"}}]}},
        oa_id=OA_ID, fetcher=_fetcher)
    assert [(f.kind, f.size, f.filename, f.mime) for f in document.files] == [
        ("document", 1024, "hop-dong.pdf", "application/pdf")]
    voice = to_inbound({**base, "event_name": "user_send_audio", "message": {"msg_id": "m4", "attachments": [
        {"type": "audio", "payload": {"url": "https://f.zalo.me/v.aac"}}]}}, oa_id=OA_ID, fetcher=_fetcher)
    assert [f.kind for f in voice.files] == ["voice"]
    info = to_inbound({**base, "event_name": "user_submit_info", "info": {"name": "A", "phone": "0912345678"}},
                      oa_id=OA_ID, fetcher=_fetcher)
    assert info.contact.phone == "0912345678" and info.contact.is_own and info.update_id
    assert to_inbound({**base, "event_name": "user_send_gif", "message": {"msg_id": "m5"}},
                      oa_id=OA_ID, fetcher=_fetcher).unsupported == "gif"
    assert to_inbound({**base, "event_name": "unfollow", "follower": {"id": USER}}, oa_id=OA_ID,
                      fetcher=_fetcher) is None
    assert to_inbound({**base, "sender": {"id": OA_ID}, "event_name": "user_send_text",
                       "message": {"msg_id": "m6", "text": "hi"}}, oa_id=OA_ID, fetcher=_fetcher) is None


def test_verify_event_reads_the_body_timestamp_or_the_header_s():
    import time
    now = int(time.time() * 1000)
    event = text_event(timestamp=str(now))
    body, mac = signed_body(event)
    common = {"app_id": APP_ID, "secret_key": OA_SECRET, "now_ms": now}
    assert verify_event(body, mac, **common).event["message"]["msg_id"] == event["message"]["msg_id"]
    header_ts = str(now + 1)
    header_mac = "mac=" + hashlib.sha256(APP_ID.encode() + body + header_ts.encode() + OA_SECRET.encode()).hexdigest()
    assert verify_event(body, header_mac, timestamp_header=header_ts, **common).status == 200
    assert verify_event(body, header_mac, **common).status == 401
    assert verify_event(body, mac, **{**common, "secret_key": ""}).status == 401


async def test_the_client_checks_error_and_never_shows_the_token(fake, client, connected):
    access, _refresh = connected
    fake.followers.add(USER)
    fake.fail_next("/v3.0/oa/message/cs", -201, f"user_id {USER} with token {access} is invalid")
    with pytest.raises(ZaloOAError) as caught:
        await client.send_message(access, USER, {"text": "xin chào"})
    assert caught.value.error_code == -201 and access not in str(caught.value) and USER not in str(caught.value)
    assert access not in repr(client)
    with pytest.raises(ZaloOAError) as expired:
        await client.send_message("not-a-token", USER, {"text": "xin chào"})
    assert expired.value.error_code == -216


def test_the_pkce_challenge_reads_the_same_in_base64_and_base64url():
    for _ in range(20):
        verifier = new_code_verifier()
        challenge = code_challenge(verifier)
        assert len(verifier) == 43 and verifier.isalnum()
        import base64
        digest = hashlib.sha256(verifier.encode()).digest()
        assert challenge == base64.b64encode(digest).decode().rstrip("=")


# --- `tinbao zalo-oa connect` and `tinbao run` ----------------------------------------------------------

AREAS = ('[[areas]]\ncode = "79"\nname = "Thành phố Hồ Chí Minh"\n[[areas]]\ncode = "79.26734"\n'
         'name = "Phường Bến Thành"\nparent = "79"\n')


def oa_config_file(tmp_path: Path, fake: FakeZaloOA, port: int) -> Path:
    Keyring.create(tmp_path / "keyring.json")
    path = tmp_path / "config.toml"
    path.write_text(
        '[bot]\ndata_dir = "data"\nkeyring = "keyring.json"\n'
        f'[zalo_oa]\napp_id = "{APP_ID}"\noa_id = "{OA_ID}"\nredirect_uri = "https://tin.example.vn/zalo-oa/granted"\n'
        f'api_base = "{fake.base_url}"\noauth_base = "{fake.base_url}"\n'
        f'webhook_listen = "127.0.0.1:{port}"\n[reminders]\nenabled = false\n' + AREAS, encoding="utf-8")
    return path


def _free_port() -> int:
    import socket
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


async def test_connect_then_run_serves_the_oa(tmp_path, fake, monkeypatch, capsys, caplog):
    from bot import cli
    port = _free_port()
    path = oa_config_file(tmp_path, fake, port)
    monkeypatch.setenv("TINBAO_ZALO_OA_SECRET_KEY", OA_SECRET)
    monkeypatch.setenv("TINBAO_ZALO_OA_APP_SECRET", APP_SECRET)

    def paste(prompt: str) -> str:
        url = re.search(r"(http://\S+/v4/oa/permission\?\S+)", capsys.readouterr().out).group(1)
        code, state = fake.permission_code(url)
        return f"https://tin.example.vn/zalo-oa/granted?code={code}&oa_id={OA_ID}&state={state}"
    monkeypatch.setattr("builtins.input", paste)
    assert await asyncio.to_thread(cli.main, ["--config", str(path), "zalo-oa", "connect"]) == 0
    assert "Connected" in capsys.readouterr().out
    assert await asyncio.to_thread(cli.main, ["--config", str(path), "zalo-oa", "status"]) == 0
    assert "version 1" in capsys.readouterr().out
    [issued] = [t for t, state in fake.refresh_tokens.items() if state == "live"]
    config = load_config(path)
    task = asyncio.create_task(runtime.run(config))
    try:
        fake.webhook_url = f"http://127.0.0.1:{port}{ZALO_OA_WEBHOOK_PATH}"
        async with asyncio.timeout(15):
            while True:
                try:
                    await fake.send_text(USER, "/start")
                    break
                except Exception:
                    await asyncio.sleep(0.1)  # the server is still starting
        [reply] = await fake.wait_for_messages(USER, 1, timeout=15)
        assert "113" in reply["text"]
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert issued not in caplog.text and OA_SECRET not in caplog.text


async def test_connect_refuses_a_grant_for_another_oa_or_attempt(tmp_path, fake, services, monkeypatch):
    path = oa_config_file(tmp_path, fake, 8080)
    section = load_config(path, environ={"TINBAO_ZALO_OA_SECRET_KEY": OA_SECRET,
                                         "TINBAO_ZALO_OA_APP_SECRET": APP_SECRET}).zalo_oa
    said: list[str] = []
    for answer, problem in (("https://x/?code=C&oa_id=999&state={state}", "the grant is for OA 999"),
                            ("https://x/?code=C&state=other", "another attempt"), ("", "no code")):
        def ask(prompt: str, answer=answer) -> str:
            state = re.search(r"state=([^&\s]+)", said[-1]).group(1)
            return answer.replace("{state}", state)
        with pytest.raises(oa_module.ConnectError, match=problem):
            await oa_module.connect(section, services, ask=ask, say=said.append)
    assert await stored_pair(services) is None


def test_an_oa_section_without_its_secret_names_the_key(tmp_path):
    path = tmp_path / "config.toml"
    path.write_text(f'[zalo_oa]\napp_id = "{APP_ID}"\noa_id = "{OA_ID}"\n' + AREAS, encoding="utf-8")
    with pytest.raises(ConfigError, match=r"zalo_oa\.secret_key: is required"):
        load_config(path, environ={})
    with pytest.raises(ConfigError, match=r"zalo_oa\.app_secret: is required") as caught:
        load_config(path, environ={"TINBAO_ZALO_OA_SECRET_KEY": OA_SECRET})
    assert OA_SECRET not in str(caught.value)


# --- durability: stored first, handled even if the worker that stored it stopped --------------------------

async def test_an_event_a_stopped_worker_stored_is_handled_by_the_sweeper(fake, client, tipline, services, connected):
    fake.followers.add(USER)
    event = text_event("/start", msg_id="left-behind")
    raw, _mac = signed_body(event)
    async with services.db.transaction() as session:  # what a worker that died after answering Zalo left
        await store.store_event(session=session, keyring=services.keyring, dedup_key=oa_module.dedup_key(event, OA_ID),
                                event_name="user_send_text", raw=raw, worker="oa-dead",
                                now=services.clock() - timedelta(minutes=3))
        sealed = (await session.exec(select(ZaloOaEvent))).one().payload
    assert b"/start" not in sealed and USER.encode() not in sealed  # sealed while it waits
    channel = ZaloOAChannel(client=client, tipline=tipline, settings=oa_settings())
    assert await channel.sweep() == 1
    await channel.drain()
    [reply] = fake.messages_to(USER)
    assert "113" in reply["text"]
    assert await channel.sweep() == 0  # handled: not taken again
    async with services.db.transaction() as session:
        [row] = (await session.exec(select(ZaloOaEvent))).all()
    assert row.processed_at is not None and row.payload is None


async def test_an_event_stored_too_slowly_gets_503_and_is_still_handled_once(fake, oa, services, monkeypatch):
    monkeypatch.setattr(oa_module, "STORE_DEADLINE", 0.05)
    real_store = oa._store

    async def slow_store(event, raw):
        await asyncio.sleep(0.3)  # the database is busy (on SQLite: a refresh holds the writer)
        return await real_store(event, raw)
    monkeypatch.setattr(oa, "_store", slow_store)
    msg_id = await fake.send_text(USER, "/start")
    assert fake.pushes == [503]  # Zalo is asked to retry rather than wait past its 2 seconds
    [reply] = await fake.wait_for_messages(USER, 1)  # the late insert is handled when it lands
    monkeypatch.setattr(oa, "_store", real_store)
    assert await fake.redeliver(msg_id) == 200  # Zalo's retry: a duplicate, nothing twice
    await oa.drain()
    assert "113" in reply["text"] and len(fake.messages_to(USER)) == 1
