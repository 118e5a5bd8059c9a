"""The fake platform servers (tests/fakes) as pytest fixtures: one definition, so every test module serves
its fake the same way, on 127.0.0.1, closed after the test even when it fails."""

from __future__ import annotations

import pytest


def fake_server(server_class, *, name: str = "fake"):
    """A fixture named ``name`` that starts a fresh ``server_class()`` for one test and closes it after.

    In a test module: ``fake = fake_server(FakeTelegram)`` (or a subclass, or a Zalo fake)."""

    @pytest.fixture(name=name)
    async def serve():
        """The fake server on 127.0.0.1 for this test."""
        server = server_class()
        await server.start()
        try:
            yield server
        finally:
            await server.close()
    return serve
