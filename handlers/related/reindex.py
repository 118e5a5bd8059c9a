"""`tinbao related reindex`: a new related-index key, then every tip's identifiers indexed again from its sealed
answers, tip by tip, while the bot runs; the old key leaves the keyring once no index row needs it.

Also the way to index tips sent before related tips existed (``new_key=False``: the active key is kept).
During a rotation a search looks under every key in the keyring, so it finds tips not yet re-indexed; "Liên
quan" compares index rows, so a tip re-indexed and one not yet are not shown as related until the run ends.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from handlers.context import Services
from handlers.related.extract import extract_identifiers
from handlers.related.indexing import texts_of_sealed_fields
from storage import keys as key_store
from storage import related
from storage import tips as tip_store
from storage.audit import append_audit


@dataclass(frozen=True)
class ReindexResult:
    key_id: str  # the active related-index key, under which every tip is now indexed
    tips: int  # tips read
    rows: int  # index rows written
    retired: tuple[str, ...]  # old keys removed from the keyring


async def reindex(services: Services, *, new_key: bool = True, batch: int = 200,
                  on_total: Callable[[int], None] = lambda total: None,
                  progress: Callable[[int], None] = lambda done: None) -> ReindexResult:
    """Index every unpurged tip again under the active related-index key (a new one first when ``new_key``)."""
    keyring = services.keyring
    key_id = keyring.add_related_key() if new_key else keyring.related_active_id
    async with services.db.transaction() as session:
        on_total(await related.count_tips_to_index(session=session))
    after, tips, rows = "", 0, 0
    while True:
        # One short transaction per batch: the running bot is never held up for long, and an interrupted
        # run is finished by `--same-key`.
        async with services.db.transaction() as session:
            tip_ids = await related.tips_to_index(session=session, after_id=after, limit=batch)
            rows += await _reindex_tips(services, session, tip_ids)
        if not tip_ids:
            break
        after = tip_ids[-1]
        tips += len(tip_ids)
        progress(len(tip_ids))
    async with services.db.transaction() as session:
        # A worker that had not yet seen the new key (it looks at most once a second) may have indexed a
        # tip under the old one meanwhile: that tip is read again, not dropped.
        late = await related.tips_indexed_under_other_keys(session=session, key_id=key_id)
        rows += await _reindex_tips(services, session, late)
        for old in (k for k in keyring.related_key_ids if k != key_id):
            await related.delete_rows_of_key(session=session, key_id=old)  # only tips with nothing left to read
        retired = tuple(k for k in keyring.related_key_ids if k != key_id)
        await append_audit(session=session, keyring=keyring, actor="cli", action="reindex",
                           detail=f"key={key_id} tips={tips} rows={rows} retired={'+'.join(retired) or '-'}")
    for old in retired:
        keyring.remove_related_key(old)
    return ReindexResult(key_id=key_id, tips=tips, rows=rows, retired=tuple(retired))


async def _reindex_tips(services: Services, session, tip_ids: list[str]) -> int:
    rows = 0
    for tip_id in tip_ids:
        data_key = await key_store.load_data_key(session=session, keyring=services.keyring, owner_id=tip_id)
        if data_key is None:  # nothing sealed left to read: nothing to index either
            await related.delete_identifiers(session=session, tip_id=tip_id)
            continue
        fields = await tip_store.read_tip_fields(session=session, data_key=data_key)
        texts = texts_of_sealed_fields(fields=fields, questionnaire=services.settings.questionnaire)
        rows += await related.replace_identifiers(
            session=session, keyring=services.keyring, data_key=data_key,
            identifiers=[found for text in texts for found in extract_identifiers(text)])
    return rows
