"""What an operator sees when `tinbao` cannot start as asked, run as a real process: a token the platform
refuses, a platform or a database out of reach. One line naming the key or variable to fix (plus one
line per new attempt where trying again makes sense), never a traceback, a URL, a token or a password."""

from __future__ import annotations

import socket

import pytest

from tests.support.processes import Site

WAIT = 60  # a bound for a hang, not a speed claim
PASSWORD = "Canary-Pw-31337"


def closed_port() -> int:
    """A port on 127.0.0.1 nothing listens on: connecting is refused at once."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def assert_no_leak(text: str, *secrets: str) -> None:
    assert "Traceback" not in text and "http" not in text, text
    for secret in secrets:
        assert secret not in text


COMMANDS = {
    "db upgrade": ["db", "upgrade"],
    "officers list": ["officers", "list"],
    "keys status": ["keys", "status"],
    "keys rotate": ["keys", "rotate"],
    "report": ["report", "--from", "01/01/2026", "--to", "30/06/2026", "--unit", "ca-hcm"],
    "purge": ["purge"],
}


@pytest.mark.parametrize("command", COMMANDS.values(), ids=COMMANDS.keys())
async def test_every_command_with_the_database_out_of_reach_is_one_line_and_exit_2(tmp_path, command):
    port = closed_port()
    site = Site(tmp_path / "site", f"postgresql://postgres:{PASSWORD}@127.0.0.1:{port}/tinbao")
    await site.init()
    keyring_before = site.keyring_path.read_bytes()
    async with site.start(*command) as cli:
        code = await cli.wait(timeout=WAIT)
    assert code == 2
    assert cli.stderr_lines == [f"tinbao: database.url / TINBAO_DATABASE_URL: the database tinbao at 127.0.0.1:{port} "
                                f"could not be reached (connection refused)"]
    assert cli.stdout == ""
    assert site.keyring_path.read_bytes() == keyring_before  # `keys rotate` added no key it could not use
    assert_no_leak(cli.stderr, PASSWORD)
