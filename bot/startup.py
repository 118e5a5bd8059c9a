"""What the operator sees while tinbao starts: a refused token or an unreachable database or platform is
one line naming the key to fix, never a traceback; what may come back on its own is tried again."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

from sqlalchemy import inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from bot.config import ConfigError
from storage import keys as key_store
from storage.crypto import Keyring
from storage.db import Database, normalize_url
from storage.migrate import upgrade

log = logging.getLogger(__name__)
FIRST_WAIT, LONGEST_WAIT = 1.0, 60.0
DATABASE_WAIT = 60.0  # seconds `tinbao run` keeps trying an unreachable database before it gives up
ASK_TIMEOUT = 10  # seconds for one getMe: a platform a network silently drops must not hold the start for long
DATABASE_KEYS = "database.url / TINBAO_DATABASE_URL"
# SQLSTATEs that say the server is there but cannot take us yet: it is starting or shutting down, or full.
_NOT_YET = {"57P01", "57P02", "57P03", "53300"}


def growing_waits() -> Iterator[float]:
    """1, 2, 4 … seconds, then a minute each time."""
    wait = FIRST_WAIT
    while True:
        yield wait
        wait = min(wait * 2, LONGEST_WAIT)


async def pause(seconds: float, stopping: asyncio.Event | None) -> bool:
    """Sleep, unless a stop is asked for first; True if the sleep ran its course."""
    if stopping is None:
        await asyncio.sleep(seconds)
        return True
    try:
        await asyncio.wait_for(stopping.wait(), seconds)
    except TimeoutError:
        return True
    return False


# --- the database ----------------------------------------------------------------------------------

class DatabaseUnavailable(ConfigError):
    """The database could not be used: one line with the key, the address and why; never the password."""


def database_address(url: str) -> str:
    """Where the URL points, for the operator: database name and host:port, or the SQLite file."""
    parsed = make_url(normalize_url(url))
    if parsed.get_backend_name() == "sqlite":
        return f"the SQLite file {parsed.database}"
    host = parsed.host or parsed.query.get("host") or "the local socket"
    name = parsed.database or parsed.username or "?"  # PostgreSQL's default database is the user's name
    return f"the database {name} at {host}:{parsed.port or 5432}"


def _sqlstate(exc: BaseException) -> str | None:
    """The server's SQLSTATE anywhere in the chain SQLAlchemy and the driver wrap around it."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(getattr(exc, "sqlstate", None), str):
            return exc.sqlstate
        exc = getattr(exc, "orig", None) or exc.__cause__ or exc.__context__
    return None


def _server_words(exc: BaseException) -> str:
    # The server's own message ('database "x" does not exist', 'password authentication failed for user
    # "y"') names what to fix and never holds the password; SQLAlchemy's wrapping adds a URL to its docs.
    inner = getattr(exc, "orig", None) or exc
    words = str(inner).splitlines()[0] if str(inner) else type(inner).__name__
    return re.sub(r"^\(.*?\)\s*", "", words)[:200]


def _unreachable_reason(exc: BaseException) -> str | None:
    """Why the database cannot be reached, if that may pass (so trying again is worth it); else None."""
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, TimeoutError):
        return "no answer in time"
    if isinstance(exc, OSError) and not _sqlstate(exc):
        return (exc.strerror or type(exc).__name__).lower()
    if _sqlstate(exc) in _NOT_YET:
        return _server_words(exc)
    return None


async def _try_database(url: str) -> None:
    normalized = normalize_url(url)
    is_sqlite = normalized.startswith("sqlite")
    path = make_url(normalized).database
    if is_sqlite and path and path != ":memory:":
        if not Path(path).parent.is_dir():
            raise DatabaseUnavailable(f"{DATABASE_KEYS}: the folder of the SQLite file {path} does not exist")
        # Made here, before anything opens it, so that the tips' database is never readable by others; one
        # left readable by an older version or by hand is closed now (SQLite gives -wal and -shm its mode).
        Path(path).touch(mode=0o600, exist_ok=True)
        for private in (Path(path), Path(f"{path}-wal"), Path(f"{path}-shm")):
            _make_private(private, 0o600)
    # asyncpg's own connect timeout is a minute; the retry loop below is the place to be patient.
    engine = create_async_engine(normalized, connect_args={} if is_sqlite else {"timeout": ASK_TIMEOUT})
    try:
        async with engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
    finally:
        await engine.dispose()


def _make_private(path: Path, mode: int) -> None:
    try:
        current = path.stat().st_mode & 0o777
    except FileNotFoundError:
        return
    if current & 0o077:
        path.chmod(mode)
        log.info("%s was readable by other users (mode %o); it is now %o", path, current, mode)


def make_private_folder(folder: Path) -> None:
    """The data folder, made 0700 (or closed to others if it was made by hand before)."""
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    _make_private(folder, 0o700)


async def reach_database(url: str, *, wait: float = 0.0, stopping: asyncio.Event | None = None) -> bool:
    """Connect once to see the database answers, trying again for ``wait`` seconds while it cannot be
    reached (one line each time). False if a stop came first. Refused or given up: DatabaseUnavailable."""
    try:
        where = database_address(url)
    except Exception:  # noqa: BLE001  (SQLAlchemy's message would repeat the URL, password and all)
        raise DatabaseUnavailable(f"{DATABASE_KEYS}: is not a database URL (sqlite:///path or "
                                  f"postgresql://user@host/name)") from None
    loop = asyncio.get_running_loop()
    give_up_at = loop.time() + wait
    for pause_for in growing_waits():
        try:
            await _try_database(url)
            return True
        except DatabaseUnavailable:
            raise
        except Exception as exc:  # noqa: BLE001  (sorted below; never shown whole: no traceback, no URL)
            reason = _unreachable_reason(exc)
            if reason is None:
                raise DatabaseUnavailable(f"{DATABASE_KEYS}: {where} cannot be used: {_server_words(exc)}") from None
        left = give_up_at - loop.time()
        if left <= 0:
            tried = f" for {wait:.0f} s" if wait else ""
            raise DatabaseUnavailable(f"{DATABASE_KEYS}: {where} could not be reached{tried} ({reason})")
        pause_for = min(pause_for, left)
        log.warning("%s: %s cannot be reached (%s); trying again in %.0f s", DATABASE_KEYS, where, reason, pause_for)
        if not await pause(pause_for, stopping):
            return False
    raise AssertionError("unreachable")  # growing_waits never ends


# --- the keyring that belongs to the database ------------------------------------------------------

KEYRING_KEYS = "bot.keyring / TINBAO_KEYRING"


class KeyringMismatch(ConfigError):
    """The keyring is not the one this database was made with: stop before reading or writing anything."""


async def _bound_keyring(database: Database) -> str | None:
    """The check value stored in the database, or None (a new database, or one from before check values)."""
    async with database.engine.connect() as conn:
        conn = await conn.execution_options(isolation_level="AUTOCOMMIT")  # a read: no write lock taken
        if not await conn.run_sync(lambda c: inspect(c).has_table("data_key")):
            return None
        row = (await conn.execute(text("SELECT wrapped FROM data_key WHERE id = :id"),
                                  {"id": key_store.CHECK_ROW_ID})).first()
    return None if row is None else bytes(row[0]).decode("ascii")


async def open_schema(url: str, keyring: Keyring) -> None:
    """Check the keyring against the database, then migrate, then tie a database not yet tied to it.
    A wrong keyring stops the start here: nothing is migrated, read or written."""
    database = Database(url)
    try:
        stored = await _bound_keyring(database)
        if stored is not None and stored != keyring.check_value():
            raise KeyringMismatch(
                f"{KEYRING_KEYS}: {keyring.path} is not the keyring of {database_address(url)} (its check value "
                f"differs from the one stored there); use the keyring this database was created with")
        await upgrade(url)
        if stored is None:
            async with database.transaction() as session:
                # Another worker starting at the same moment may have tied it first: then it must be to ours.
                if await key_store.store_check_value(session=session, keyring=keyring) != keyring.check_value():
                    raise KeyringMismatch(f"{KEYRING_KEYS}: {keyring.path} is not the keyring of "
                                          f"{database_address(url)}; another keyring was tied to it just now")
    finally:
        await database.dispose()


# --- the platforms' tokens -------------------------------------------------------------------------

class TokenCheck:
    """Asks a platform whether it takes our token (getMe). Refused: ConfigError naming the variable, at
    once. Unreachable: one line per attempt, and the next attempt after a longer wait."""

    def __init__(self, platform: str, ask: Callable[[], Awaitable[str | None]]) -> None:
        self.platform = platform
        self._ask = ask  # None: accepted; a reason: not reached; raises ConfigError: refused
        self._waits = growing_waits()
        self.accepted = False
        self.wait = FIRST_WAIT

    async def attempt(self) -> bool:
        reason = await self._ask()
        if reason is None:
            self.accepted = True
            return True
        self.wait = next(self._waits)
        log.warning("%s cannot be reached (%s); trying again in %.0f s", self.platform, reason, self.wait)
        return False

    async def until_accepted(self, stopping: asyncio.Event | None = None) -> bool:
        """Keep asking, with growing waits, until the platform answers; False if a stop came first."""
        while not self.accepted:
            if not await pause(self.wait, stopping):
                return False
            if await self.attempt():
                log.info("%s answers again", self.platform)
        return True


def telegram_check(bot) -> TokenCheck:
    from aiogram.exceptions import (ClientDecodeError, TelegramAPIError, TelegramNetworkError, TelegramNotFound,
                                    TelegramRetryAfter, TelegramServerError, TelegramUnauthorizedError)

    async def ask() -> str | None:
        try:
            await bot.get_me(request_timeout=ASK_TIMEOUT)
        except (TelegramUnauthorizedError, TelegramNotFound) as exc:
            # Telegram answers 401 for a token it does not know and 404 for one of the wrong shape.
            status = "401 Unauthorized" if isinstance(exc, TelegramUnauthorizedError) else "404 Not Found"
            raise ConfigError(f"telegram.token: Telegram refused it ({status}); check TINBAO_TELEGRAM_TOKEN "
                              f"(@BotFather gives it, /token), and telegram.api_base if you changed it") from None
        except TelegramNetworkError as exc:
            # aiogram's message is "<aiohttp error class>: <text>"; the class says enough and the text may
            # quote the address. The chained aiohttp error holds the URL, and the URL the token: not logged.
            name = exc.message.split(":", 1)[0].strip()
            return "no answer in time" if name == "Request timeout error" else \
                f"network error ({name})" if re.fullmatch(r"\w{1,60}", name) else "network error"
        except TelegramRetryAfter as exc:
            return f"asked to wait {exc.retry_after} s"
        except TelegramServerError as exc:
            return f"server error: {exc.message[:80]}"
        except ClientDecodeError:
            return "the answer was not the Bot API's (a proxy's page?)"
        except TelegramAPIError as exc:
            return f"unexpected answer: {exc.message[:80]}"
        return None
    return TokenCheck("Telegram", ask)


def zalo_bot_check(client) -> TokenCheck:
    from bot.channels.zalo_bot import UNAUTHORIZED, ZaloBotError

    async def ask() -> str | None:
        try:
            await client.get_me()
        except ZaloBotError as exc:
            if exc.error_code in (UNAUTHORIZED, 404):
                status = "401 Unauthorized" if exc.error_code == UNAUTHORIZED else "404 Not Found"
                raise ConfigError(f"zalo_bot.token: Zalo refused it ({status}); check TINBAO_ZALO_BOT_TOKEN, or ask "
                                  f"Zalo Bot Manager for a new token (and zalo_bot.api_base if you changed it)") from None
            # The client's description never holds the token or the URL (see ZaloBotClient.call).
            return exc.description[:80] if exc.error_code is None else f"error {exc.error_code}: {exc.description[:80]}"
        return None
    return TokenCheck("Zalo", ask)
