"""The test database taken out of reach and brought back, the way an outage looks to the bot, in this
process or in a `tinbao run` child:

- SQLite: another connection holds the write lock (``BEGIN IMMEDIATE``), as a CLI command or a backup
  beside the bot would; every write of the bot waits out its busy timeout and fails "database is locked";
- PostgreSQL: the bot reaches the server through a TCP relay on 127.0.0.1; an outage closes the relay's
  port and cuts the connections through it (the bot's next connect is refused, as with a server that is
  down), and the end of it opens the same port again.

    outage = DatabaseOutage(database_url)
    await outage.start()
    bot_url = outage.url        # what the bot is given instead of database_url
    await outage.away()
    ...
    await outage.back()
    await outage.close()
"""

from __future__ import annotations

import asyncio
import sqlite3

from sqlalchemy.engine import make_url


class DatabaseOutage:
    """Puts the database of ``database_url`` out of the bot's reach and back."""

    def __init__(self, database_url: str) -> None:
        self._given = make_url(database_url)
        self.is_sqlite = self._given.get_backend_name() == "sqlite"
        self._lock: sqlite3.Connection | None = None
        self._server: asyncio.Server | None = None
        self._port = 0
        self._relayed: set[asyncio.StreamWriter] = set()

    @property
    def url(self) -> str:
        """The URL the bot uses: the database itself (SQLite), or through the relay (PostgreSQL)."""
        if self.is_sqlite:
            return self._given.render_as_string(hide_password=False)
        return self._given.set(host="127.0.0.1", port=self._port).render_as_string(hide_password=False)

    async def start(self) -> None:
        if not self.is_sqlite:
            await self._open()

    async def away(self) -> None:
        if self.is_sqlite:
            self._lock = sqlite3.connect(self._given.database, isolation_level=None, timeout=30)
            self._lock.execute("BEGIN IMMEDIATE")  # the write lock, held until back()
            return
        server, self._server = self._server, None
        server.close()
        for writer in list(self._relayed):
            writer.transport.abort()  # a reset, as a server that went down leaves behind
        await server.wait_closed()

    async def back(self) -> None:
        if self.is_sqlite:
            lock, self._lock = self._lock, None
            lock.execute("ROLLBACK")
            lock.close()
            return
        await self._open()

    async def close(self) -> None:
        """The lock released, or the relay closed for good, whatever state the test left it in."""
        if self._lock is not None:
            await self.back()
        elif self._server is not None:
            await self.away()

    async def _open(self) -> None:
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", self._port, reuse_address=True)
        self._port = self._server.sockets[0].getsockname()[1]

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(self._given.host or "127.0.0.1",
                                                                 self._given.port or 5432)
        except OSError:
            writer.transport.abort()
            return
        self._relayed |= {writer, up_writer}
        try:
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        finally:
            self._relayed -= {writer, up_writer}
            for end in (writer, up_writer):
                end.transport.abort()


async def _pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
    try:
        while data := await source.read(65536):
            sink.write(data)
            await sink.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        sink.transport.abort()
