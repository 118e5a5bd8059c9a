"""Tips and their evidence: created sealed, found by receipt hash."""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Mapping, Sequence

from sqlalchemy import bindparam, delete, func, update
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from storage.blobs import BlobStore
from storage import keys as key_store
from storage.crypto import DataKey, Keyring, padded_size
from storage.models import Attachment, DataKeyRecord, Tip, TipField


def new_id() -> str:
    """Random ids: sequential ones would tell how many tips a unit receives."""
    return secrets.token_hex(16)


# Officer references: short enough to type, random so they say nothing about volume or order.
REF_ALPHABET = "23456789ABCDEFGHJKMNPQRSTVWXYZ"


async def _new_ref(session: AsyncSession) -> str:
    while True:
        ref = "".join(secrets.choice(REF_ALPHABET) for _ in range(6))
        if (await session.exec(select(Tip.id).where(Tip.ref == ref))).first() is None:
            return ref


async def save_attachment(*, session: AsyncSession, blobs: BlobStore, data_key: DataKey, kind: str,
                          data: bytes, filename: str | None, mime: str | None) -> Attachment:
    """Seal the bytes to a file and record it; the filename and type are sealed too."""
    attachment_id = new_id()
    blob_name = blobs.write(data_key=data_key, attachment_id=attachment_id, data=data)
    meta = data_key.seal(f"attachment-meta:{attachment_id}",
                         f"{mime or ''}\n{filename or ''}".encode())
    # The size in clear is the sealed file's bucket, not the evidence's own size.
    record = Attachment(id=attachment_id, owner_id=data_key.owner_id, kind=kind, size=padded_size(len(data)),
                        blob_name=blob_name, meta=meta)
    session.add(record)
    await session.flush()
    return record


async def count_attachments(*, session: AsyncSession, owner_id: str) -> int:
    result = await session.exec(select(func.count()).select_from(Attachment).where(Attachment.owner_id == owner_id))
    return int(result.one())


_ATTACHMENTS = select(Attachment).where(Attachment.owner_id == bindparam("owner_id")).order_by(Attachment.created_at)


async def open_attachments(*, session: AsyncSession, blobs: BlobStore,
                           data_key: DataKey) -> list[tuple[str, bytes, str | None, str | None]]:
    """A tip's evidence, decrypted: (kind, bytes, filename, mime) in the order it was sent."""
    rows = (await session.exec(_ATTACHMENTS, params={"owner_id": data_key.owner_id})).all()
    opened = []
    for row in rows:
        data = blobs.read(data_key=data_key, attachment_id=row.id, blob_name=row.blob_name)
        mime, _sep, filename = data_key.open_text(f"attachment-meta:{row.id}", row.meta).partition("\n")
        opened.append((row.kind, data, filename or None, mime or None))
    return opened


async def delete_attachments(*, session: AsyncSession, blobs: BlobStore, owner_id: str) -> int:
    """Remove the rows and the sealed files of a draft or tip (the files once the rows are gone for good)."""
    rows = (await session.exec(select(Attachment).where(Attachment.owner_id == owner_id))).all()
    for row in rows:
        blobs.delete_after_commit(session=session, blob_name=row.blob_name)
    await session.exec(delete(Attachment).where(Attachment.owner_id == owner_id))
    return len(rows)


async def blob_names_in_use(*, session: AsyncSession, names: Sequence[str]) -> set[str]:
    """Which of these file names an attachment row (of a draft or a tip) still points to."""
    rows = await session.exec(select(Attachment.blob_name).where(Attachment.blob_name.in_(list(names))))
    return set(rows.all())


async def create_tip(*, session: AsyncSession, data_key: DataKey, channel: str, category: str, area_code: str,
                     urgent: bool, receipt_hash: str, fields: Mapping[str, str], unit_id: str | None = None,
                     every_field: Sequence[str] = ()) -> Tip:
    """Store a submitted tip: clear triage columns, and each answer sealed under the tip's own key.

    Each name in ``every_field`` missing from ``fields`` is sealed empty, so that which rows exist
    does not tell whether the tipster left a phone number or can be asked a question."""
    fields = {**{name: "" for name in every_field}, **fields}
    tip = Tip(id=data_key.owner_id, ref=await _new_ref(session), channel=channel, category=category,
              area_code=area_code, urgent=urgent, receipt_hash=receipt_hash, unit_id=unit_id,
              attachment_count=await count_attachments(session=session, owner_id=data_key.owner_id))
    session.add(tip)
    await session.flush()
    for name, value in fields.items():
        session.add(TipField(tip_id=tip.id, name=name, sealed=data_key.seal(name, value)))
    await session.flush()
    return tip


async def find_tip_by_receipt(*, session: AsyncSession, receipt_hash: str) -> Tip | None:
    return (await session.exec(select(Tip).where(Tip.receipt_hash == receipt_hash))).one_or_none()


# Built once (building a statement costs more than running this one); the names and the sealed bytes only.
_FIELDS = select(TipField.name, TipField.sealed).where(TipField.tip_id == bindparam("tip_id"))
# What a view of a tip opens, in one round trip: its wrapped data key and every sealed field.
_KEY_AND_FIELDS = (select(DataKeyRecord.kek_id, DataKeyRecord.wrapped, TipField.name, TipField.sealed)
                   .outerjoin(TipField, TipField.tip_id == DataKeyRecord.id)
                   .where(DataKeyRecord.id == bindparam("tip_id")))


def _opened(data_key: DataKey, rows: Iterable[tuple[str, bytes]]) -> dict[str, str]:
    opened = {name: data_key.open_text(name, sealed) for name, sealed in rows}
    return {name: value for name, value in opened.items() if value != ""}  # sealed empty: not given


async def read_tip_fields(*, session: AsyncSession, data_key: DataKey) -> dict[str, str]:
    return _opened(data_key, (await session.exec(_FIELDS, params={"tip_id": data_key.owner_id})).all())


async def open_tip(*, session: AsyncSession, keyring: Keyring, tip_id: str) -> tuple[DataKey | None, dict[str, str]]:
    """The tip's data key, unwrapped, and its sealed fields opened; (None, {}) once it is purged."""
    rows = (await session.exec(_KEY_AND_FIELDS, params={"tip_id": tip_id})).all()
    if not rows:
        return None, {}
    kek_id, wrapped = rows[0][0], rows[0][1]
    data_key = keyring.unwrap(owner_id=tip_id, key_id=kek_id, wrapped=wrapped)
    return data_key, _opened(data_key, ((name, sealed) for _kek, _wrapped, name, sealed in rows if name is not None))


async def delete_tip_field(*, session: AsyncSession, keyring: Keyring, tip_id: str, name: str) -> None:
    """Forget one answer (the reply route once judged): sealed empty in its place, so the rows left look
    like every other tip's; the old ciphertext is overwritten in the file and the WAL (storage/db.py)."""
    data_key = await key_store.load_data_key(session=session, keyring=keyring, owner_id=tip_id)
    if data_key is None:  # purged: nothing sealed is left to forget
        await session.exec(delete(TipField).where(TipField.tip_id == tip_id, TipField.name == name))
        return
    await session.exec(update(TipField).where(TipField.tip_id == tip_id, TipField.name == name)
                       .values(sealed=data_key.seal(name, "")))
