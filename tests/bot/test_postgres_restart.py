"""PostgreSQL stopped and started again under `tinbao run` (a private cluster this test makes itself with
initdb and pg_ctl): the updates that came while it was down are not lost, each is answered once it is
back, and the bot needed no restart."""

from __future__ import annotations

import asyncio
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import pytest

from tests.bot.test_process_lifecycle import CHAT, WAIT, telegram_section
from tests.support.fake_servers import fake_server
from tests.support.slow_telegram import SlowTelegram
from tests.support.processes import Site

fake = fake_server(SlowTelegram)

BINARIES = sorted(glob.glob("/usr/lib/postgresql/*/bin"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PrivateCluster:
    """A PostgreSQL server of its own in a temporary folder, run as the `postgres` user when we are root
    (initdb refuses root)."""

    def __init__(self, root: Path) -> None:
        self.bin = Path(BINARIES[-1])
        self.data = root / "pgdata"  # root: a folder the server's user may enter
        self.port = _free_port()
        self.user = "postgres" if os.geteuid() == 0 else None

    def _run(self, *args: str) -> None:
        command = [str(self.bin / args[0]), *args[1:]]
        if self.user:
            command = ["runuser", "-u", self.user, "--", *command]
        subprocess.run(command, check=True, capture_output=True, timeout=120)

    def init(self) -> None:
        if self.user:
            shutil.chown(self.data.parent, self.user)
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync")

    def start(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-w", "-l", str(self.data / "log"), "-o",
                  f"-p {self.port} -k {self.data} -c listen_addresses=127.0.0.1 -c fsync=off", "start")

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-w", "-m", "fast", "stop")

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"


@pytest.fixture
def cluster():
    if not BINARIES:
        pytest.skip("no PostgreSQL server binaries (initdb, pg_ctl) on this machine")
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root without a `postgres` user to run initdb as")
    # Its own folder right under /tmp: pytest's are closed to every user but ours, postgres included.
    root = Path(tempfile.mkdtemp(prefix="tinbao-pg-"))
    server = PrivateCluster(root)
    try:
        server.init()
        server.start()
        yield server
        try:
            server.stop()
        except subprocess.CalledProcessError:
            pass  # already stopped by the test
    finally:
        shutil.rmtree(root, ignore_errors=True)


async def test_updates_sent_while_postgresql_restarts_are_answered_once_it_is_back(tmp_path, fake, cluster):
    site = Site(tmp_path / "site", cluster.url, extra=telegram_section(fake))
    await site.init()
    async with site.start("run") as bot:
        await bot.wait_for_line("serving Telegram by long polling", timeout=WAIT)
        fake.send_text(CHAT, "/help", language_code="en")
        await fake.wait_for_messages(CHAT, 1, timeout=WAIT)

        cluster.stop()
        for _ in range(3):
            fake.send_text(CHAT, "/help", language_code="en")  # while the database is down
        await bot.wait_for_line("the database did not answer", timeout=WAIT)
        assert len(fake.messages_to(CHAT)) == 1  # nothing answered, nothing acknowledged, nothing lost
        await asyncio.sleep(1)  # a few retries against the stopped server
        cluster.start()

        await fake.wait_for_messages(CHAT, 4, timeout=WAIT)  # each of the three, once it is back
        fake.send_text(CHAT, "/help", language_code="en")
        await fake.wait_for_messages(CHAT, 5, timeout=WAIT)
        assert bot.running  # it reconnected by itself
    texts = [m["text"] for m in fake.messages_to(CHAT)]
    assert len(texts) == 5 and len(set(texts)) == 1, texts  # five /help answers: none lost, none twice
    assert "Traceback" not in bot.stderr, bot.stderr
