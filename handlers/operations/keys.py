"""`tinbao keys rotate/status/retire`: the keyring's keys and the data keys each of them wraps."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from storage.crypto import Keyring, KeyringError
from storage.db import Database
from storage.keys import count_by_key_id, rewrap_batch


@dataclass(frozen=True)
class KeyState:
    """One line of `tinbao keys status`."""

    key_id: str
    data_keys: int
    state: str  # active, old, retired-ready, missing from keyring!


async def data_keys_by_key(*, db: Database) -> dict[str, int]:
    """How many data keys each keyring key wraps."""
    async with db.transaction() as session:
        return await count_by_key_id(session=session)


async def rotate(*, db: Database, keyring: Keyring, batch: int,
                 on_total: Callable[[int], None] = lambda total: None,
                 progress: Callable[[int], None] = lambda done: None) -> tuple[str, int]:
    """New active key first (new tips use it at once), then every data key re-wrapped in small batches;
    returns the new key's id and how many data keys were re-wrapped."""
    new_id = keyring.add_active_key()
    counts = await data_keys_by_key(db=db)
    on_total(sum(n for key_id, n in counts.items() if key_id != new_id))
    done = 0
    while True:
        # One short transaction per batch, so the running bot is never blocked for long.
        async with db.transaction() as session:
            rewrapped = await rewrap_batch(session=session, keyring=keyring, limit=batch)
        if not rewrapped:
            return new_id, done
        done += rewrapped
        progress(rewrapped)


def key_states(*, keyring: Keyring, counts: dict[str, int]) -> list[KeyState]:
    """Every key in the keyring or named by a data key, with what it still wraps."""
    states = []
    for key_id in sorted(set(keyring.keys) | set(counts)):
        n = counts.get(key_id, 0)
        state = ("active" if key_id == keyring.active_id else "missing from keyring!" if key_id not in keyring.keys
                 else "retired-ready" if not n else "old")
        states.append(KeyState(key_id, n, state))
    return states


def retire(*, keyring: Keyring, counts: dict[str, int], key_id: str) -> None:
    """Remove an old key from the keyring, only once no data key needs it."""
    if remaining := counts.get(key_id, 0):
        raise KeyringError(f"key {key_id} still wraps {remaining} data keys; run `tinbao keys rotate` first")
    keyring.remove_key(key_id)
