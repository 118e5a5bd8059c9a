"""`tinbao chat`: the tip line in a terminal, no token needed; choices are numbered.

What the bot sends as files (a chart, the CSV and XLSX of /baocao, a tip's evidence on /tip) is written
to a folder, data/chat-out/ by default, and its path printed, so that it can be opened and looked at.
"""

from __future__ import annotations

import asyncio
import mimetypes
import os
import re
import shlex
import sys
from pathlib import Path
from typing import TextIO

from bot.delivery import Deliveries
from bot.startup import make_private_folder
from handlers.messages import (Choice, Contact, IncomingFile, Inbound, Location, OutgoingFile, Reply, Route,
                               numbered_text)
from handlers.router import TipLine

CHANNEL = "console"
HELP = """tinbao chat: type as a citizen would (try /start). Extra commands for the terminal:
  1, 2, …            pick a numbered choice
  /photo PATH        send a photo        /file PATH       send a document
  /location LAT LON  send a map pin      /contact PHONE   share your phone number
  /as NAME           become another person (e.g. an officer after `tinbao officers invite`)
  /quit              leave (the conversation is kept; run tinbao chat again to go on)
Files the bot sends (charts, reports, evidence) are saved in data/chat-out/; their paths are printed."""


def _local_file(kind: str, path: str) -> IncomingFile:
    file = Path(path).expanduser()

    async def fetch() -> bytes:
        return await asyncio.to_thread(file.read_bytes)
    size = file.stat().st_size if file.exists() else None
    return IncomingFile(kind, size, fetch, filename=file.name, mime="image/jpeg" if kind == "photo" else None)


def parse_line(line: str, *, chat_id: str, language: str | None, choices: list[Choice]) -> Inbound | str:
    """A typed line as an Inbound; a string is a problem to show instead."""
    inbound = Inbound(channel=CHANNEL, chat_id=chat_id, language=language)
    text = line.strip()
    if text.isdecimal() and len(text) < 4 and 1 <= int(text) <= len(choices):
        inbound.choice = choices[int(text) - 1].id
        return inbound
    try:
        words = shlex.split(text) if text.startswith("/") else []
    except ValueError:
        words = []
    head = words[0] if words else ""
    if head in ("/photo", "/file") and len(words) == 2:
        if not Path(words[1]).expanduser().is_file():
            return f"no such file: {words[1]}"
        inbound.files.append(_local_file("photo" if head == "/photo" else "document", words[1]))
    elif head == "/location" and len(words) == 3:
        try:
            inbound.location = Location(float(words[1]), float(words[2]))
        except ValueError:
            return "usage: /location 10.7726 106.6980"
    elif head == "/contact" and len(words) == 2:
        inbound.contact = Contact(words[1], is_own=True)
    else:
        inbound.text = text
    return inbound


def _safe_name(file: OutgoingFile) -> str:
    # The name may come from a tipster's upload: no folder, no dot-files, nothing a shell would trip on.
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(file.filename or "").name).strip("._")[:80]
    if not name:
        name = file.kind + (mimetypes.guess_extension(file.mime or "") or "")
    return name


def save_file(folder: Path, file: OutgoingFile) -> Path:
    """Writes a file the bot sent into ``folder`` (0700; the file 0600: evidence is in clear here) and
    returns its path; an earlier file of the same name is kept, the new one gets a number."""
    make_private_folder(folder)
    name = _safe_name(file)
    for n in range(1, 10_000):
        path = folder / (name if n == 1 else f"{Path(name).stem}-{n}{Path(name).suffix}")
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            continue
        with os.fdopen(fd, "wb") as out:
            out.write(file.data)
        return path
    raise FileExistsError(f"{folder}: too many files named {name}")


def render(reply: Reply, out_dir: Path | None = None) -> str:
    text = numbered_text(reply)
    for file in reply.files:
        if out_dir is None:
            text += f"\n[{file.kind}: {file.filename or 'unnamed'}, {len(file.data)} bytes]"
        else:
            text += f"\n[{file.kind} saved: {save_file(out_dir, file).resolve()}]"
    if reply.location:  # the map link is in the text already; this is what Telegram would pin
        text += f"\n[location pin: {reply.location.latitude:.5f}, {reply.location.longitude:.5f}]"
    if reply.location_button:
        text += "\n(/location LAT LON: " + reply.location_button + ")"
    if reply.contact_button:
        text += "\n(/contact PHONE: " + reply.contact_button + ")"
    return text


async def chat(tipline: TipLine, *, chat_id: str = "console", language: str | None = None,
               stdin: TextIO = sys.stdin, stdout: TextIO = sys.stdout, out_dir: Path | None = None) -> None:
    """Read lines until end of input or /quit, answering each like the bot would.

    One terminal can play several people (/as NAME); a message to another of them (a verdict to the
    tipster, an answer to the officer) is printed with that person's name. Files the bot sends are
    written to ``out_dir`` and their paths printed (without one, only their names and sizes).
    """
    deliveries = Deliveries()
    me = {"name": chat_id}
    choices: dict[str, list[Choice]] = {}

    async def show(to_chat: str, replies: list[Reply]) -> None:
        for reply in replies:
            prefix = "" if to_chat == me["name"] else f"[to {to_chat}] "
            stdout.write("\n" + prefix + render(reply, out_dir) + "\n\n")
            if to_chat == me["name"]:
                choices[to_chat] = reply.choices  # numbers always refer to the latest question
    deliveries.register(CHANNEL, show)
    stdout.write(HELP + "\n\n")
    while True:
        stdout.write(f"{me['name']}> ")
        stdout.flush()
        line = await asyncio.to_thread(stdin.readline)
        if not line or line.strip() == "/quit":
            break
        if not line.strip():
            continue
        if line.startswith("/as "):
            me["name"] = line[4:].strip() or me["name"]
            continue
        parsed = parse_line(line, chat_id=me["name"], language=language, choices=choices.get(me["name"], []))
        if isinstance(parsed, str):
            stdout.write(parsed + "\n")
            continue
        await deliveries.send(await tipline.handle(parsed), origin=Route(CHANNEL, me["name"]))
        stdout.flush()
