"""`tinbao` as a real child process, the way an operator or systemd runs it: a folder with config.toml and
the keyring `tinbao init` made, the command started with it, its stderr read line by line while it runs,
and a real signal to stop it (SIGTERM, SIGINT) or to kill it (SIGKILL).

    site = Site(tmp_path / "site", database_url, extra=telegram_section(fake))
    await site.init()
    async with site.start("run") as bot:
        await bot.wait_for_line("serving Telegram by long polling")
        bot.send_signal(signal.SIGTERM)
        assert await bot.wait() == 0
"""

from __future__ import annotations

import asyncio
import os
import re
import secrets
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from sqlalchemy.engine import make_url

from storage.crypto import Keyring
from tests.support.deployment import config_toml

WORKTREE = Path(__file__).resolve().parents[2]
# What the child must not inherit from the developer's shell: it would change which bot, which database.
_OWN_VARIABLES = re.compile(r"TINBAO_(?!TEST_)\w+")


def child_environment(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not _OWN_VARIABLES.fullmatch(k)}
    env.update(PYTHONUNBUFFERED="1", PYTHONPATH=str(WORKTREE), **extra)
    return env


# The slow part of a start (imports) before the barrier, so that what follows it runs at the same moment.
_AT_THE_BARRIER = """
import sys, time
from pathlib import Path
import bot.cli, bot.channels.telegram, bot.reminder_dispatcher, bot.runtime, bot.webhook, storage.migrate
barrier = Path(sys.argv[1])
print("at the barrier", flush=True)
while not barrier.exists():
    time.sleep(0.001)
sys.exit(bot.cli.main(sys.argv[2:]))
"""


class TinbaoProcess:
    """One running `python -m bot.cli …`; its stdout and stderr are collected as they come."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.stderr_lines: list[str] = []
        self.stdout_lines: list[str] = []
        self._changed = asyncio.Event()
        self._readers = [asyncio.create_task(self._read(process.stderr, self.stderr_lines)),
                         asyncio.create_task(self._read(process.stdout, self.stdout_lines))]

    @classmethod
    async def start(cls, *args: str, config: Path, env: dict[str, str] | None = None,
                    barrier: Path | None = None) -> TinbaoProcess:
        """``barrier``: the command is loaded, says "at the barrier" on stdout, and runs once that file exists,
        so that several processes can be let go at the same moment."""
        program = ["-c", _AT_THE_BARRIER, str(barrier)] if barrier is not None else ["-m", "bot.cli"]
        process = await asyncio.create_subprocess_exec(
            sys.executable, *program, "--config", str(config), *args, cwd=config.parent,
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            env=env if env is not None else child_environment())
        return cls(process)

    async def _read(self, stream: asyncio.StreamReader, into: list[str]) -> None:
        while line := await stream.readline():
            into.append(line.decode("utf-8", "replace").rstrip("\n"))
            self._changed.set()
        self._changed.set()

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def stderr(self) -> str:
        return "\n".join(self.stderr_lines)

    @property
    def stdout(self) -> str:
        return "\n".join(self.stdout_lines)

    @property
    def running(self) -> bool:
        return self.process.returncode is None

    async def wait_for_line(self, needle: str, *, timeout: float = 60.0, count: int = 1,
                            stdout: bool = False) -> str:
        """The ``count``-th stderr (or stdout) line holding ``needle``, once written; fails if the process ends first."""
        lines = self.stdout_lines if stdout else self.stderr_lines
        try:
            async with asyncio.timeout(timeout):
                while True:
                    found = [line for line in lines if needle in line]
                    if len(found) >= count:
                        return found[count - 1]
                    if all(reader.done() for reader in self._readers):
                        raise AssertionError(f"tinbao ended ({await self.process.wait()}) before writing "
                                             f"{needle!r}:\n{self.stderr}")
                    self._changed.clear()
                    await self._changed.wait()
        except TimeoutError:
            raise AssertionError(f"no {needle!r} from tinbao within {timeout} s:\n{self.stderr}") from None

    def send_signal(self, sig: int = signal.SIGTERM) -> None:
        self.process.send_signal(sig)

    def kill(self) -> None:
        """SIGKILL: what a crash, the OOM killer or `kill -9` does; nothing of ours runs afterwards."""
        if self.running:
            self.process.kill()

    async def wait(self, timeout: float = 60.0) -> int:
        """The exit code, once the process has ended and everything it wrote has been read."""
        try:
            async with asyncio.timeout(timeout):
                code = await self.process.wait()
                await asyncio.gather(*self._readers)
        except TimeoutError:
            raise AssertionError(f"tinbao still running after {timeout} s:\n{self.stderr}") from None
        return code

    async def close(self) -> None:
        """Never leave a child behind, whatever the test did."""
        if self.running:
            self.kill()
        await self.process.wait()
        for reader in self._readers:
            reader.cancel()
        await asyncio.gather(*self._readers, return_exceptions=True)


class Site:
    """A folder an operator would set up: config.toml (the test areas and units, then ``extra``), and
    beside it the keyring `tinbao init` makes and the data folder."""

    def __init__(self, root: Path, database_url: str, *, extra: str = "") -> None:
        self.root = root
        self.database_url = database_url
        root.mkdir(parents=True, exist_ok=True)
        self.config = root / "config.toml"
        self.config.write_text(config_toml(database_url, extra=extra), encoding="utf-8")

    async def init(self) -> None:
        """`tinbao init` in the folder: keeps our config.toml, makes the keyring and the data folder."""
        async with self.start("init") as init:
            assert await init.wait() == 0, init.stderr
        assert self.keyring_path.exists()

    @property
    def keyring_path(self) -> Path:
        return self.root / "keyring.json"

    def keyring(self) -> Keyring:
        return Keyring.load(self.keyring_path)

    @asynccontextmanager
    async def start(self, *args: str, env: dict[str, str] | None = None,
                    barrier: Path | None = None) -> AsyncIterator[TinbaoProcess]:
        process = await TinbaoProcess.start(*args, config=self.config, env=env, barrier=barrier)
        try:
            yield process
        finally:
            await process.close()


def sqlite_wal(database_url: str) -> Path | None:
    """The WAL file beside a SQLite database (None for PostgreSQL)."""
    parsed = make_url(database_url)
    return Path(parsed.database + "-wal") if parsed.get_backend_name() == "sqlite" else None


@asynccontextmanager
async def scratch_postgres(test_url: str) -> AsyncIterator[str]:
    """An empty PostgreSQL database of its own, on the server of ``test_url`` and named after its database
    (so CI's own database name works too), dropped afterwards."""
    import asyncpg
    parsed = make_url(test_url)
    name = f"{parsed.database}_{secrets.token_hex(4)}"
    admin = parsed.set(drivername="postgresql").render_as_string(hide_password=False)
    connection = await asyncpg.connect(admin)
    try:
        await connection.execute(f'CREATE DATABASE "{name}"')
        try:
            yield parsed.set(database=name).render_as_string(hide_password=False)
        finally:
            await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await connection.close()
