"""An attacker with the database alone (a stolen copy, no keyring) tries to tell which pseudonym sent which
tip, and whether a tip is identified or open to follow-up: by the rows a tip has, the sealed lengths, the
times across tables, the rate counters. Each attempt is written as the attacker would run it, on the raw
rows, and must find nothing."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import text

from tests.handlers.officer.test_triage import enrol
from tests.support.chat import ChatClient
from tests.support.images import jpeg_with_gps

CLOSE = timedelta(seconds=60)  # what an attacker would call "at the same moment"


async def send_tip(tipline, chat_id: str, identity: str) -> None:
    citizen = ChatClient(tipline, chat_id=chat_id, language="en")
    await citizen.send("/report")
    await citizen.click("Drugs")
    await citizen.send("Người đàn ông áo đỏ bán ma túy ở đầu hẻm mỗi tối.")
    await citizen.click("Happening now")
    await citizen.send("ben thanh")
    await citizen.click("Phường Bến Thành, Thành phố Hồ Chí Minh")
    await citizen.send_location(10.7725, 106.698)
    await citizen.send("Xe máy Wave biển số 59X1-123.45")
    await citizen.send_file(jpeg_with_gps(), kind="photo")
    await citizen.click("Done")
    await citizen.click(f"identity:{identity}")
    if identity == "phone":
        await citizen.send_contact("0909123456")
    assert "Please check your tip" in citizen.text
    await citizen.click("Send the tip")
    assert "Receipt code" in citizen.text


async def _rows(services, sql: str) -> list:
    async with services.db.engine.connect() as conn:
        return (await conn.execute(text(sql))).all()


def _aware(value):
    from datetime import datetime, timezone
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


async def test_the_database_alone_links_no_tip_to_its_tipster(services, tipline):
    for chat_id, identity in (("501", "anonymous"), ("502", "phone"), ("503", "no_followup"), ("504", "anonymous")):
        await send_tip(tipline, chat_id, identity)
    tips = await _rows(services, "SELECT id, created_at FROM tip")
    assert len(tips) == 4

    # 1. Which rows a tip has, and how long each sealed value is: the same for every tip, whoever sent it
    # (read before an officer adds notes or questions, which the audit log names anyway).
    shapes = {}
    for tip_id, _at in tips:
        fields = await _rows(services, f"SELECT name, length(sealed) FROM tip_field WHERE tip_id = '{tip_id}'")
        shapes[tip_id] = sorted(fields)
    assert len({tuple(shape) for shape in shapes.values()}) == 1, shapes
    sizes = await _rows(services, "SELECT DISTINCT size FROM attachment")
    assert len(sizes) == 1  # one bucket for the four photos, whatever their exact size

    officer = await enrol(services, tipline, "900")
    await officer.send("/next")
    ref = officer.last[0].text.split(" · ")[0].split()[-1]
    await officer.send(f"/ask {ref} Bạn có nhớ biển số xe không?")
    assert "sent to the tipster" in officer.last[0].text

    # 2. Times: no conversation, question or data key carries a time that matches a tip's or a question's.
    conversations = await _rows(services, "SELECT chat_key, created_at, updated_at FROM conversation")
    for _tip_id, tip_at in tips:
        for _key, created, updated in conversations:
            assert abs(_aware(updated) - _aware(tip_at)) > CLOSE and abs(_aware(created) - _aware(tip_at)) > CLOSE
    asks = [at for (at,) in await _rows(services, "SELECT at FROM audit_entry WHERE action = 'ask'")]
    assert len(asks) == 1
    questions = await _rows(services, "SELECT f.chat_key, f.created_at, k.created_at FROM follow_up f "
                                      "JOIN data_key k ON k.id = f.id")
    assert len(questions) == 1
    for _key, asked, key_made in questions:
        assert abs(_aware(asked) - _aware(asks[0])) > CLOSE and abs(_aware(key_made) - _aware(asks[0])) > CLOSE

    # 3. Rate counters: none is named by a pseudonym, none says what it counts.
    pseudonyms = {key for key, _c, _u in conversations}
    counters = await _rows(services, "SELECT chat_key, bucket FROM rate_counter")
    assert counters and not ({key for key, _b in counters} & pseudonyms)
    assert {bucket for _k, bucket in counters} == {"-"}


def test_padding_hides_short_values_but_a_bucket_grows_with_the_content():
    from storage.crypto import DataKey
    key = DataKey.generate("x")
    assert len(key.seal("contact", "")) == len(key.seal("contact", "0909123456"))  # padded: same length
    assert len(key.seal("text", "a" * 300)) > len(key.seal("text", ""))  # but the bucket grows with the content
