"""Albums on Telegram: the files of one media group come as separate updates, one after the other. The channel
notes each as it is taken, so while one is handled it can tell the handlers that more of its album follow,
and the album is answered once, by its last file, with the count of all."""

from __future__ import annotations

import asyncio
from typing import Any

ALBUM_WAIT = 1.0  # seconds the album's last file taken waits for one more (Telegram sends them within moments)


def album_of(raw: Any) -> str | None:
    """The media group an update's message belongs to, read from the JSON before decoding."""
    message = raw.get("message") if isinstance(raw, dict) else None
    group = message.get("media_group_id") if isinstance(message, dict) else None
    return group if isinstance(group, str) and group else None


class AlbumTracker:
    """The updates of each album taken and not yet finished."""

    def __init__(self, wait: float = ALBUM_WAIT) -> None:
        self.wait = wait
        self._pending: dict[str, set[int]] = {}
        self._arrived: dict[str, asyncio.Event] = {}

    def taken(self, raw: Any, update_id: int) -> None:
        """An update was taken (fetched by polling, posted to the webhook), before it is handled."""
        group = album_of(raw)
        if group is None:
            return
        self._pending.setdefault(group, set()).add(update_id)
        if (arrived := self._arrived.get(group)) is not None:
            arrived.set()

    def finished(self, update_id: int, raw: Any) -> None:
        """Handled, skipped or failed: it no longer stands for a file still to come."""
        group = album_of(raw)
        pending = self._pending.get(group) if group is not None else None
        if pending is not None:
            pending.discard(update_id)
            if not pending:
                del self._pending[group]

    async def more_after(self, group: str, update_id: int) -> bool:
        """Whether another file of the album follows this one: one already taken, or one that comes within the
        wait. Called while the update is handled, after the chat's earlier updates were."""
        if self._others(group, update_id):
            return True
        arrived = self._arrived.setdefault(group, asyncio.Event())
        try:
            await asyncio.wait_for(arrived.wait(), self.wait)
        except TimeoutError:
            pass
        finally:
            if self._arrived.get(group) is arrived:
                del self._arrived[group]
        return self._others(group, update_id)

    def _others(self, group: str, update_id: int) -> bool:
        return bool(self._pending.get(group, set()) - {update_id})
