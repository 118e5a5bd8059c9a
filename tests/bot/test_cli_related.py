"""`tinbao related reindex`: a new related-index key, every tip indexed again from its sealed answers with a
progress bar, the old key gone from the keyring, while the bot keeps running and finding the same tips."""

from __future__ import annotations

import json

from sqlmodel import select

from storage.related import RelatedIdentifier
from tests.bot.test_cli_triage import bot, config_path, enrolled, tinbao  # noqa: F401  (fixtures)
from tests.handlers.test_related_use_cases import file_fraud_tip


async def test_reindex_rotates_the_index_key_with_a_progress_bar_while_the_bot_runs(bot, config_path,
                                                                                    capsys) -> None:
    services = bot.services
    first = await file_fraud_tip(services, bot, "111", scammer="Zalo 0909 123 456", people="Không rõ")
    second = await file_fraud_tip(services, bot, "222", scammer="gọi 0909.123.456", people="Không rõ")
    await file_fraud_tip(services, bot, "333", scammer="không nhớ", people="Không rõ")
    keyring_file = config_path.parent / "keyring.json"
    assert list(json.loads(keyring_file.read_text())["related_index"]["keys"]) == ["r1"]

    capsys.readouterr()
    assert await tinbao(config_path, "related", "reindex", "--batch", "2") == 0
    captured = capsys.readouterr()
    assert captured.out.startswith("related-index key r2 is active; 3 tips re-indexed (3 identifiers); "
                                   "old keys removed from the keyring: r1")
    assert f"re-indexing tips [{'.' * 30}] 0/3" in captured.err and f"re-indexing tips [{'#' * 30}] 3/3" in captured.err
    doc = json.loads(keyring_file.read_text())["related_index"]
    assert doc["active"] == "r2" and list(doc["keys"]) == ["r2"]
    async with services.db.transaction() as session:
        assert {row.key_id for row in (await session.exec(select(RelatedIdentifier))).all()} == {"r2"}

    # The running bot reads the new key from the file and finds the same tips by the same number.
    officer = await enrolled(bot, config_path, capsys, "900")
    await officer.send("/search +84909123456")
    assert "Tips of your units that mention it: 2" in officer.text and {first.ref, second.ref} <= set(officer.labels)
    await officer.send(f"/tip {second.ref}")
    assert f"• Same phone number 09•••••456: 1 in your units: {first.ref}" in officer.last[0].text

    assert await tinbao(config_path, "related", "reindex", "--same-key") == 0
    assert capsys.readouterr().out.startswith("related-index key r2 is active; 3 tips re-indexed (3 identifiers); "
                                              "old keys removed from the keyring: none")
