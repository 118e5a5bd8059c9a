"""Attachment files on disk: sealed, private, named at random, bound to their attachment and tip."""

from __future__ import annotations

import re
import stat
from pathlib import Path

import pytest

from storage.blobs import BlobStore
from storage.crypto import DataKey, DecryptionError

EVIDENCE = ("Ảnh chụp biển số xe 59-X1 234.56 tại ngã tư Nguyễn Huệ — Lê Lợi. " * 20).encode()


@pytest.fixture
def store(tmp_path: Path) -> BlobStore:
    return BlobStore(tmp_path / "data" / "blobs")


def _files(store: BlobStore) -> list[Path]:
    return sorted(store.root.iterdir())


def test_blob_file_is_sealed_private_and_randomly_named(store: BlobStore) -> None:
    key = DataKey.generate("tip-a")
    name = store.write(data_key=key, attachment_id="att-1", data=EVIDENCE)

    assert _files(store) == [store.root / name]  # no temporary file left behind
    assert re.fullmatch(r"[0-9a-f]{32}", name)
    assert "att-1" not in name and "tip-a" not in name
    on_disk = (store.root / name).read_bytes()
    assert EVIDENCE not in on_disk
    assert EVIDENCE[:40] not in on_disk
    assert "Nguyễn Huệ".encode() not in on_disk
    assert stat.S_IMODE((store.root / name).stat().st_mode) == 0o600
    assert stat.S_IMODE(store.root.stat().st_mode) == 0o700

    assert store.read(data_key=key, attachment_id="att-1", blob_name=name) == EVIDENCE


def test_same_bytes_twice_give_different_names_and_files(store: BlobStore) -> None:
    key = DataKey.generate("tip-a")
    first = store.write(data_key=key, attachment_id="att-1", data=EVIDENCE)
    second = store.write(data_key=key, attachment_id="att-1", data=EVIDENCE)
    assert first != second
    assert (store.root / first).read_bytes() != (store.root / second).read_bytes()


def test_blob_does_not_open_as_another_attachment(store: BlobStore) -> None:
    key = DataKey.generate("tip-a")
    name = store.write(data_key=key, attachment_id="att-1", data=EVIDENCE)
    with pytest.raises(DecryptionError):
        store.read(data_key=key, attachment_id="att-2", blob_name=name)


def test_blob_does_not_open_with_another_tips_key(store: BlobStore) -> None:
    name = store.write(data_key=DataKey.generate("tip-a"), attachment_id="att-1", data=EVIDENCE)
    with pytest.raises(DecryptionError):
        store.read(data_key=DataKey.generate("tip-b"), attachment_id="att-1", blob_name=name)
    with pytest.raises(DecryptionError):
        store.read(data_key=DataKey.generate("tip-a"), attachment_id="att-1", blob_name=name)


def test_swapped_files_do_not_open(store: BlobStore) -> None:
    key = DataKey.generate("tip-a")
    one = store.write(data_key=key, attachment_id="att-1", data=b"first photo")
    two = store.write(data_key=key, attachment_id="att-2", data=b"second photo")
    a, b = (store.root / one).read_bytes(), (store.root / two).read_bytes()
    (store.root / one).write_bytes(b)
    (store.root / two).write_bytes(a)
    with pytest.raises(DecryptionError):
        store.read(data_key=key, attachment_id="att-1", blob_name=one)


def test_delete_removes_the_file(store: BlobStore) -> None:
    key = DataKey.generate("tip-a")
    keep = store.write(data_key=key, attachment_id="att-1", data=b"keep me")
    gone = store.write(data_key=key, attachment_id="att-2", data=EVIDENCE)
    store.delete(gone)
    assert not (store.root / gone).exists()
    assert _files(store) == [store.root / keep]
    with pytest.raises(FileNotFoundError):
        store.read(data_key=key, attachment_id="att-2", blob_name=gone)
    store.delete(gone)  # deleting twice is harmless (a purge may be retried)


@pytest.mark.parametrize("bad_name", [
    "../keyring.json", "..", "../../etc/passwd", "sub/dir", "/etc/passwd", ".hidden", "", "abc.tmp", "a b",
])
def test_blob_name_that_is_not_ours_is_refused(store: BlobStore, tmp_path: Path, bad_name: str) -> None:
    outside = tmp_path / "data" / "keyring.json"
    outside.write_bytes(b"secret")
    key = DataKey.generate("tip-a")
    with pytest.raises(ValueError):
        store.read(data_key=key, attachment_id="att-1", blob_name=bad_name)
    with pytest.raises(ValueError):
        store.delete(bad_name)
    assert outside.read_bytes() == b"secret"


def test_store_makes_its_folder_private(tmp_path: Path) -> None:
    root = tmp_path / "blobs"
    root.mkdir(mode=0o755)
    root.chmod(0o755)
    BlobStore(root)
    assert stat.S_IMODE(root.stat().st_mode) == 0o700


async def test_attachment_row_keeps_no_filename_and_purge_removes_the_files(db, keyring, store: BlobStore) -> None:
    from sqlmodel import select

    from storage.crypto import padded_size
    from storage.keys import create_data_key
    from storage.models import Attachment
    from storage.tips import count_attachments, delete_attachments, new_id, save_attachment

    async with db.transaction() as session:
        key = await create_data_key(session=session, keyring=keyring, owner_id=new_id())
        saved = await save_attachment(session=session, blobs=store, data_key=key, kind="photo", data=EVIDENCE,
                                      filename="IMG_Nguyen_Van_A_nha_rieng.jpg", mime="image/jpeg")
        await save_attachment(session=session, blobs=store, data_key=key, kind="voice", data=b"ogg",
                              filename=None, mime="audio/ogg")
    async with db.transaction() as session:
        row = (await session.exec(select(Attachment).where(Attachment.id == saved.id))).one()
        assert row.size == padded_size(len(EVIDENCE)) >= len(EVIDENCE)  # the bucket, not the size itself
        assert (store.root / row.blob_name).stat().st_size == 1 + 12 + 16 + row.size  # version, nonce, tag
        assert b"Nguyen_Van_A" not in bytes(row.meta)
        assert key.open_text(f"attachment-meta:{row.id}", bytes(row.meta)) == "image/jpeg\nIMG_Nguyen_Van_A_nha_rieng.jpg"
        assert store.read(data_key=key, attachment_id=row.id, blob_name=row.blob_name) == EVIDENCE
        assert await count_attachments(session=session, owner_id=key.owner_id) == 2
        assert len(_files(store)) == 2

        assert await delete_attachments(session=session, blobs=store, owner_id=key.owner_id) == 2
    assert _files(store) == []
    async with db.transaction() as session:
        assert await count_attachments(session=session, owner_id=key.owner_id) == 0


async def test_a_failed_commit_leaves_no_row_pointing_at_a_missing_file(db, keyring, store: BlobStore) -> None:
    """Evidence files go only once the transaction that forgets them has committed."""
    from sqlalchemy import event
    from sqlmodel import select

    from storage.keys import create_data_key
    from storage.models import Attachment
    from storage.tips import delete_attachments, new_id, save_attachment

    async with db.transaction() as session:
        key = await create_data_key(session=session, keyring=keyring, owner_id=new_id())
        saved = await save_attachment(session=session, blobs=store, data_key=key, kind="photo", data=EVIDENCE,
                                      filename=None, mime="image/jpeg")

    class CommitFailed(Exception):
        pass

    def fail_the_commit(_session) -> None:
        raise CommitFailed  # as a lost connection or a full disk would, at the very commit

    with pytest.raises(CommitFailed):
        async with db.transaction() as session:
            event.listen(session.sync_session, "before_commit", fail_the_commit)
            assert await delete_attachments(session=session, blobs=store, owner_id=key.owner_id) == 1
            assert (store.root / saved.blob_name).exists()  # not before the commit
    async with db.transaction() as session:
        rows = (await session.exec(select(Attachment))).all()
        assert [r.blob_name for r in rows] == [saved.blob_name]
        assert store.read(data_key=key, attachment_id=saved.id, blob_name=saved.blob_name) == EVIDENCE
    async with db.transaction() as session:
        await delete_attachments(session=session, blobs=store, owner_id=key.owner_id)
    assert not (store.root / saved.blob_name).exists()
