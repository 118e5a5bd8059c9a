"""`tinbao chat`: the tip line in a terminal, no token needed; choices are numbered."""

from __future__ import annotations

import asyncio
import shlex
import sys
from pathlib import Path
from typing import TextIO

from bot.delivery import Deliveries
from handlers.messages import Choice, Contact, IncomingFile, Inbound, Location, Reply, Route, numbered_text
from handlers.router import TipLine

CHANNEL = "console"
HELP = """tinbao chat: type as a citizen would (try /start). Extra commands for the terminal:
  1, 2, …            pick a numbered choice
  /photo PATH        send a photo        /file PATH       send a document
  /location LAT LON  send a map pin      /contact PHONE   share your phone number
  /as NAME           become another person (e.g. an officer after `tinbao officers invite`)
  /quit              leave (the conversation is kept; run tinbao chat again to go on)"""


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


def render(reply: Reply) -> str:
    text = numbered_text(reply)
    for file in reply.files:
        text += f"\n[{file.kind}: {file.filename or 'unnamed'}, {len(file.data)} bytes]"
    if reply.location_button:
        text += "\n(/location LAT LON: " + reply.location_button + ")"
    if reply.contact_button:
        text += "\n(/contact PHONE: " + reply.contact_button + ")"
    return text


async def chat(tipline: TipLine, *, chat_id: str = "console", language: str | None = None,
               stdin: TextIO = sys.stdin, stdout: TextIO = sys.stdout) -> None:
    """Read lines until end of input or /quit, answering each like the bot would.

    One terminal can play several people (/as NAME); a message to another of them (a verdict to the
    tipster, an answer to the officer) is printed with that person's name.
    """
    deliveries = Deliveries()
    me = {"name": chat_id}
    choices: dict[str, list[Choice]] = {}

    async def show(to_chat: str, replies: list[Reply]) -> None:
        for reply in replies:
            prefix = "" if to_chat == me["name"] else f"[to {to_chat}] "
            stdout.write("\n" + prefix + render(reply) + "\n\n")
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
