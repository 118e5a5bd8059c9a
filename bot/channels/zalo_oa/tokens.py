"""The OA's token pair: refreshed under a database lock, never spending a refresh token twice.

The refresh token lives 3 months and is single-use (hexasync.vn; PHP SDK getZaloTokenByOA; Chatwoot
``refresh_post``); see docs/zalo-oa.md, "Tokens and OAuth v4"."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

from sqlalchemy import text as sql

from bot.channels.http_client import failure_line
from bot.channels.zalo_oa.client import OAuthRefused, OAuthUnknown, OAuthUnreachable, TokenPair, ZaloOAClient
from storage import zalo_oa as store

log = logging.getLogger(__name__)


RETRY_FAILED_REFRESH = timedelta(hours=1)  # after Zalo refused a refresh, not tried again sooner
# A pair this new that is already refused is not fixed by another refresh (the OA may have withdrawn the
# app's permission): not refreshed again sooner, so one dead token does not spend a refresh per message.
FRESH_PAIR = timedelta(minutes=5)


class NotConnected(Exception):
    """No token pair is stored yet: `tinbao zalo-oa connect` has not been run."""


class TokenKeeper:
    """The OA's access token for every caller in this process, refreshed under a database lock.

    The lock is the OA's token row (PostgreSQL: SELECT … FOR UPDATE; SQLite: the single writer), held
    through the OAuth call; the row is re-read under it, so a worker that waited finds the pair another
    one stored and spends nothing."""

    def __init__(self, services, client: ZaloOAClient, oa_id: str, *, refresh_every: timedelta = timedelta(hours=20),
                 on_failure: Callable[[str], Awaitable[None]] | None = None) -> None:
        self.services, self.client, self.oa_id = services, client, oa_id
        self.refresh_every = refresh_every
        self.on_failure = on_failure
        self._cached: tuple[str, int] | None = None
        self.refreshes = 0  # pairs this keeper obtained from Zalo (tests, logs)

    async def current(self) -> tuple[str, int]:
        """(access token, its version): from memory, else from the database."""
        if self._cached is None:
            async with self.services.db.transaction() as session:
                stored = await store.load_tokens(session=session, keyring=self.services.keyring, oa_id=self.oa_id)
            if stored is None:
                raise NotConnected("no Zalo OA tokens are stored; run `tinbao zalo-oa connect`")
            self._cached = (stored.access_token, stored.version)
        return self._cached

    async def store_first(self, pair: TokenPair) -> int:
        """`tinbao zalo-oa connect`: the pair from the first grant replaces whatever was stored."""
        async with self.services.db.transaction() as session:
            version = await store.save_tokens(session=session, keyring=self.services.keyring, oa_id=self.oa_id,
                                              access_token=pair.access_token, refresh_token=pair.refresh_token,
                                              expires_in=pair.expires_in, now=self.services.clock())
        self._cached = (pair.access_token, version)
        return version

    def _due(self, stored: store.StoredTokens, now: datetime) -> bool:
        return (now - stored.refreshed_at >= self.refresh_every
                or stored.access_expires_at - now <= timedelta(hours=2))

    async def refresh_if_due(self) -> bool:
        """The scheduled refresh (about every 20 h, or when the access token has little time left)."""
        async with self.services.db.transaction() as session:
            stored = await store.load_tokens(session=session, keyring=self.services.keyring, oa_id=self.oa_id)
        if stored is None or not self._due(stored, self.services.clock()):
            return False
        return await self.refresh(stale_version=stored.version, scheduled=True) is not None

    async def refresh(self, *, stale_version: int | None, scheduled: bool = False) -> str | None:
        """A fresh access token after ``stale_version`` stopped working (or fell due); None if there is none.

        Never spends a refresh token twice: the row is locked and re-read, and a token that may have been
        spent (an answer that never came) is not sent again. Shielded: a caller that gives up (a reminder's
        send timeout) does not cut a refresh short between Zalo's answer and our commit."""
        return await asyncio.shield(self._refresh(stale_version=stale_version, scheduled=scheduled))

    async def _refresh(self, *, stale_version: int | None, scheduled: bool) -> str | None:
        db, keyring = self.services.db, self.services.keyring
        problem: tuple[str, bool] | None = None  # (what to say, whether to alert the admins)
        fresh: tuple[str, int] | None = None
        async with db.transaction() as session:
            if not db.is_sqlite:
                # The lock lives as long as this transaction. Waiters must outwait the OAuth call, and the
                # server must not end this transaction while the call is out (another worker could then
                # spend the same refresh token).
                hold = int(self.client.oauth_timeout * 2 + 30)
                connection = await session.connection()
                await connection.execute(sql(f"SET LOCAL lock_timeout = '{hold}s'"))
                await connection.execute(sql(f"SET LOCAL idle_in_transaction_session_timeout = '{hold}s'"))
            stored = await store.load_tokens(session=session, keyring=keyring, oa_id=self.oa_id, lock=True)
            now = self.services.clock()
            if stored is None:
                raise NotConnected("no Zalo OA tokens are stored; run `tinbao zalo-oa connect`")
            if stale_version is not None and stored.version != stale_version:
                fresh = (stored.access_token, stored.version)  # another worker (or `connect`) stored a new pair
            elif scheduled and not self._due(stored, now):
                fresh = (stored.access_token, stored.version)
            elif stored.refresh_state == "unknown" or not stored.refresh_token:
                problem = ("the refresh token may already have been used; reconnect the OA", False)
            elif stored.refresh_state == "failed" and stored.failed_at and now - stored.failed_at < RETRY_FAILED_REFRESH:
                problem = (f"Zalo refused the last refresh ({stored.failure}); not retried yet", False)
            elif not scheduled and now - stored.refreshed_at < FRESH_PAIR:
                problem = ("a pair obtained minutes ago is already refused; the OA may have withdrawn the app's "
                           "permission", False)
            else:
                try:
                    pair = await self.client.refresh(stored.refresh_token)
                except OAuthUnreachable as exc:
                    problem = (f"Zalo OAuth unreachable: {exc.description}", False)  # nothing was spent
                except OAuthRefused as exc:
                    reason = f"{exc.error_code} {exc.description}".strip()
                    await store.record_refresh_failure(session=session, oa_id=self.oa_id, state="failed",
                                                       failure=reason, now=now)
                    problem = (reason, True)
                except OAuthUnknown as exc:
                    await store.record_refresh_failure(session=session, oa_id=self.oa_id, state="unknown",
                                                       failure=exc.description, now=now)
                    problem = (f"{exc.description}; the refresh token may be spent", True)
                else:
                    version = await store.save_tokens(
                        session=session, keyring=keyring, oa_id=self.oa_id, access_token=pair.access_token,
                        refresh_token=pair.refresh_token, expires_in=pair.expires_in, now=now,
                        refresh_state="ok" if pair.refresh_token else "unknown",
                        failure=None if pair.refresh_token else "answer without a refresh token")
                    fresh = (pair.access_token, version)
                    self.refreshes += 1
                    if not pair.refresh_token:
                        problem = ("Zalo answered without a new refresh token", True)
        # Committed: only now is the new pair used, by this worker or any other.
        if fresh is not None:
            if fresh != self._cached:
                log.info("Zalo OA access token %s (version %d)", "refreshed" if self.refreshes else "reloaded", fresh[1])
            self._cached = fresh
        if problem is not None:
            reason, alert = problem
            log.error("Zalo OA token refresh failed: %s; the stored pair is kept", reason)
            if alert and self.on_failure is not None:
                try:
                    await self.on_failure(reason)
                except Exception as exc:
                    log.error("the admins could not be told about the failed Zalo OA refresh: %s", failure_line(exc))
        return fresh[0] if fresh is not None else None


