"""Sending through the Zalo OA against the platform's real behaviour: reminder templates by user_id on the OA
API, each of Zalo's refusals with its own outcome, a photo under 1,000,000 bytes, and a token that another
worker has just replaced. Our real client over HTTP against the fake OA.
"""

from __future__ import annotations

import io
import logging
from datetime import timedelta

import pytest
from PIL import Image

from bot.channels.base import BLOCKED, REJECTED, SENT, TRANSIENT, Outcome
from bot.channels.zalo_oa.channel import ZaloOAChannel, channel_from_config
from bot.channels.zalo_oa.client import TEMPLATE_PATH, ZaloOAError
from bot.channels.zalo_oa.rendering import IMAGE_LIMIT
from bot.config import load_config
from bot.delivery import Deliveries
from handlers.messages import OutgoingFile, Reply
from tests.bot.test_zalo_oa import (OTHER, USER, client, connected, deliveries, fake,  # noqa: F401
                                    make_client, oa_settings)
from tests.bot.test_zalo_oa_reminders import REMINDER, seen
from tests.bot.test_zalo_oa_tokens import oa_config_file, stored_pair

MESSAGE = "/v3.0/oa/message/cs"
TEMPLATE = {"reminder_template_id": "301234", "reminder_template_param": "noi_dung"}


# --- templates by user_id -------------------------------------------------------------------------------

async def test_a_reminder_outside_the_window_goes_as_a_template_by_user_id(fake, client, tipline, services,
                                                                          connected):
    channel = ZaloOAChannel(client=client, tipline=tipline, settings=oa_settings(**TEMPLATE))
    fake.followers.add(USER)
    await seen(services, USER, timedelta(days=9))
    assert await channel.send_reminder(USER, REMINDER) == SENT
    [sent] = fake.templates
    message_id = sent.pop("message_id")  # what the fake answered in data.message_id
    assert sent == {"user_id": USER, "template_id": "301234", "template_data": {"noi_dung": REMINDER.text}}
    assert message_id and fake.sent == []  # no consultation message was tried: the window is closed


async def test_the_fake_refuses_the_old_template_shapes(fake, client, connected):
    """So the test above would fail on the old call: a tracking_id, a phone or a recipient object on the UID
    channel is refused, and the phone channel (business.openapi…/message/template) wants a phone number."""
    access, _refresh = connected
    fake.followers.add(USER)
    good = {"user_id": USER, "template_id": "301234", "template_data": {"noi_dung": "x"}}
    for extra in ({"tracking_id": "a1b2c3"}, {"phone": "84912345678"}, {"recipient": {"user_id": USER}}):
        with pytest.raises(ZaloOAError) as refused:
            await client.call(TEMPLATE_PATH, access_token=access, json_body={**good, **extra})
        assert refused.value.error_code == -201
    with pytest.raises(ZaloOAError) as by_phone:
        await client.call("/message/template", access_token=access, json_body={**good, "tracking_id": "a1b2c3"})
    assert by_phone.value.error_code == -108
    assert (await client.send_template(access, user_id=USER, template_id="301234",
                                       template_data={"noi_dung": "x"}))["message_id"]


@pytest.mark.parametrize("code, outcome", [
    (-249, REJECTED), (-221, REJECTED), (-224, REJECTED),  # the operator is told, once
    (-234, TRANSIENT), (-211, TRANSIENT), (-32, Outcome.wait(30)),
    (-213, BLOCKED), (-227, REJECTED), (-218, REJECTED), (-201, REJECTED),
])
async def test_template_refusals_become_their_outcomes(fake, client, tipline, services, connected, caplog,
                                                       code, outcome):
    channel = ZaloOAChannel(client=client, tipline=tipline, settings=oa_settings(**TEMPLATE))
    fake.followers.add(USER)
    for _ in range(2):
        fake.fail_next(TEMPLATE_PATH, code, "refused")
        assert await channel.send_reminder(USER, REMINDER) == outcome
    operator = [r for r in caplog.records if r.levelno == logging.ERROR and "refuses reminders" in r.getMessage()]
    assert len(operator) == (1 if code in (-249, -221, -224) else 0)  # one line, not one per citizen
    if code == -249:
        assert "zalo_oa.reminder_template_id" in operator[0].getMessage()
    assert fake.templates == []


async def test_a_template_with_a_token_zalo_calls_invalid_is_refreshed_and_sent_once(fake, client, tipline,
                                                                                     services, connected):
    channel = ZaloOAChannel(client=client, tipline=tipline, settings=oa_settings(**TEMPLATE))
    fake.followers.add(USER)
    fake.fail_next(TEMPLATE_PATH, -124, "Access token invalid")  # the ZBS family's word for it
    assert await channel.send_reminder(USER, REMINDER) == SENT
    assert len(fake.templates) == 1 and fake.refresh_calls == [connected[1]]


# --- consultation reminders and replies -----------------------------------------------------------------

@pytest.mark.parametrize("code, without_template, with_template", [
    (-230, Outcome.refused("outside_window"), SENT), (-232, Outcome.refused("outside_window"), SENT),
    (-244, REJECTED, SENT),  # consultation messages turned off: a template is another kind of message
    (-227, REJECTED, REJECTED), (-217, REJECTED, REJECTED), (-213, BLOCKED, BLOCKED),
    (-234, TRANSIENT, TRANSIENT), (-248, REJECTED, REJECTED),
])
async def test_a_reminder_refused_inside_the_window(fake, client, tipline, services, connected, code,
                                                    without_template, with_template):
    fake.followers.add(USER)
    await seen(services, USER, timedelta(hours=1))
    plain = ZaloOAChannel(client=client, tipline=tipline, settings=oa_settings())
    fake.fail_next(MESSAGE, code, "refused")
    assert await plain.send_reminder(USER, REMINDER) == without_template
    templated = ZaloOAChannel(client=client, tipline=tipline, settings=oa_settings(**TEMPLATE))
    fake.fail_next(MESSAGE, code, "refused")
    assert await templated.send_reminder(USER, REMINDER) == with_template
    assert len(fake.templates) == (1 if with_template == SENT else 0)


@pytest.mark.parametrize("code", [-227, -244, -217, -221, -224, -211, -218, -213, -230])
async def test_a_reply_refused_because_the_chat_cannot_be_reached_drops_the_rest(fake, client, tipline, services,
                                                                                connected, caplog, code):
    channel = ZaloOAChannel(client=client, tipline=tipline, settings=oa_settings())
    fake.followers.add(USER)
    fake.fail_next(MESSAGE, code, "refused")
    replies = [Reply("Một"), Reply("Hai"), Reply("Ba")]
    assert await channel.send(USER, replies) == 3
    assert fake.sent == [] and fake.refused == [(MESSAGE, code)]  # the other two were never tried
    assert f"({code}: " in caplog.text and USER not in caplog.text


async def test_a_reply_part_refused_for_itself_drops_that_part_only(fake, client, tipline, services, connected):
    channel = ZaloOAChannel(client=client, tipline=tipline, settings=oa_settings())
    fake.followers.add(USER)
    fake.fail_next(MESSAGE, -201, "text is invalid")
    assert await channel.send(USER, [Reply("Một"), Reply("Hai"), Reply("Ba")]) == 1
    assert fake.texts_to(USER) == ["Hai", "Ba"]


# --- a token another worker has just replaced -------------------------------------------------------------

async def test_a_message_sent_with_a_token_just_replaced_is_sent_once(fake, client, tipline, services, connected):
    """Worker A holds the access token in memory; worker B refreshes (its scheduled refresh), and Zalo kills the
    old token at once. A's next message meets -216: A re-reads the pair B stored, spends nothing, sends once."""
    fake.followers.add(USER)
    other = make_client(fake)
    try:
        worker_a = ZaloOAChannel(client=client, tipline=tipline, settings=oa_settings(), deliveries=Deliveries())
        worker_b = ZaloOAChannel(client=other, tipline=tipline, settings=oa_settings(), deliveries=Deliveries())
        await worker_a.send(USER, [Reply("Một")])  # A now holds version 1
        start = services.clock()
        services.clock = lambda: start + timedelta(hours=20, minutes=1)
        assert await worker_b.tokens.refresh_if_due() is True
        assert not fake.access_tokens[connected[0]]  # the fake did kill the old token
        await worker_a.send(USER, [Reply("Hai")])
        await seen(services, USER, timedelta(hours=1))  # the citizen wrote an hour ago: inside the window
        assert await worker_a.send_reminder(USER, Reply("Ba")) == SENT  # the outbox's sender, likewise
    finally:
        await other.close()
    assert fake.texts_to(USER) == ["Một", "Hai", "Ba"]  # not lost, not twice
    assert fake.refused == [(MESSAGE, -216)]  # A's stale token, refused once
    assert fake.refresh_calls == [connected[1]] and fake.reused_refresh == []
    assert (worker_a.tokens.refreshes, worker_b.tokens.refreshes) == (0, 1)
    assert (await stored_pair(services)).version == 2


async def test_a_refresh_kills_the_old_access_token_in_the_fake(fake, client, connected):
    access, refresh = connected
    pair = await client.refresh(refresh)
    fake.followers.add(USER)
    with pytest.raises(ZaloOAError) as stale:
        await client.send_message(access, USER, {"text": "cũ"})
    assert stale.value.error_code == -216
    assert (await client.send_message(pair.access_token, USER, {"text": "mới"}))["message_id"]


# --- photos: 1,000,000 bytes, not 1 MiB ---------------------------------------------------------------------

def jpeg_between_1_mb_and_1_mib() -> bytes:
    """A real photo whose JPEG is over 1,000,000 bytes but under 1,048,576: the old limit sent it as it was."""
    for height in range(780, 900, 4):
        image = Image.frombytes("RGB", (1300, height),
                                bytes((i * 7919 + (i >> 7) * 31) % 251 for i in range(1300 * height * 3)))
        out = io.BytesIO()
        image.save(out, format="JPEG", quality=95)
        if IMAGE_LIMIT < out.tell() < 1024 * 1024:
            return out.getvalue()
    raise AssertionError("no test photo of the size wanted")


async def test_a_photo_over_1000000_bytes_is_shrunk_under_it(fake, client, tipline, services, connected):
    assert IMAGE_LIMIT == 1_000_000 and fake.image_limit == 1_000_000
    photo = jpeg_between_1_mb_and_1_mib()
    fake.followers.add(OTHER)
    channel = ZaloOAChannel(client=client, tipline=tipline, settings=oa_settings())  # the default limit
    await channel.send(OTHER, [Reply("Bằng chứng:", files=[OutgoingFile("photo", photo)])])
    [upload] = fake.uploads.values()
    assert len(upload) <= 1_000_000 and Image.open(io.BytesIO(upload)).format == "JPEG"
    assert ("/v2.0/oa/upload/image", -210) not in fake.refused
    # The fake would have refused it as it was: the check above can fail.
    with pytest.raises(ZaloOAError) as too_big:
        await client.upload_image(connected[0], photo, filename="image.jpg", mime="image/jpeg")
    assert too_big.value.error_code == -210


# --- config: what older config files still say --------------------------------------------------------------

async def test_an_older_config_still_starts_and_says_what_to_change(tmp_path, fake, tipline, caplog):
    path = oa_config_file(tmp_path, fake, 8080)
    text = path.read_text(encoding="utf-8").replace(
        "[zalo_oa]\n", '[zalo_oa]\ntemplate_api_base = "https://business.openapi.zalo.me"\nimage_max_kb = 1024\n')
    path.write_text(text, encoding="utf-8")
    section = load_config(path, environ={"TINBAO_ZALO_OA_SECRET_KEY": "fake-OA-Secret_key-0123456789",
                                         "TINBAO_ZALO_OA_APP_SECRET": "fake-App-Secret_key-9876543210"}).zalo_oa
    channel = channel_from_config(section, tipline=tipline, deliveries=Deliveries())
    try:
        assert channel.settings.image_max_bytes == IMAGE_LIMIT
        lines = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
        assert any("zalo_oa.template_api_base is no longer used" in line for line in lines)
        assert any("zalo_oa.image_max_kb = 1024 is over Zalo's 1 MB" in line for line in lines)
    finally:
        await channel.client.close()
    fresh = load_config(oa_config_file(tmp_path / "new", fake, 8080), environ={
        "TINBAO_ZALO_OA_SECRET_KEY": "fake-OA-Secret_key-0123456789",
        "TINBAO_ZALO_OA_APP_SECRET": "fake-App-Secret_key-9876543210"}).zalo_oa
    assert (fresh.image_max_kb, fresh.template_api_base) == (1000, "")
