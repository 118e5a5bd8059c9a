"""The baselines of bench/conversation.py: aiogram's finite-state-machine form example
(examples/finite_state_machine.py in aiogram's repository, trimmed to its four steps: /start, name,
"did you like to write bots?", language), served by aiogram's own webhook handler.

    python bench/aiogram_form.py --listen 127.0.0.1:PORT --api-base http://127.0.0.1:FAKE --token T [--durable FILE]

Bare: MemoryStorage, nothing durable. --durable FILE: the same form, but every update's id is recorded once
and the chat's state and data are sealed with AES-256-GCM and committed to SQLite (WAL, synchronous=FULL)
in one transaction before the reply (plain sqlite3, no ORM); a repeated update id is not answered again.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sqlite3
from typing import Any

from aiogram import Bot, Dispatcher, F, Router
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.filters import Command, CommandStart
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.fsm.storage.base import BaseStorage, StorageKey
from aiogram.fsm.storage.memory import MemoryStorage
from aiogram.types import KeyboardButton, Message, ReplyKeyboardMarkup, ReplyKeyboardRemove, Update
from aiogram.webhook.aiohttp_server import SimpleRequestHandler, setup_application
from aiohttp import web
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

form_router = Router()


class Form(StatesGroup):
    name = State()
    like_bots = State()
    language = State()


class SealedSQLiteStorage(BaseStorage):
    """FSM state and data sealed per chat in SQLite; writes are staged and committed with the update id
    by ``commit`` (called before each reply), so a reply is only ever sent for a state on disk."""

    def __init__(self, path: str) -> None:
        self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.execute("CREATE TABLE IF NOT EXISTS seen (update_id INTEGER PRIMARY KEY)")
        self.db.execute("CREATE TABLE IF NOT EXISTS chat (key TEXT PRIMARY KEY, sealed BLOB NOT NULL)")
        self.aead = AESGCM(AESGCM.generate_key(bit_length=256))
        self.staged: dict[str, dict] = {}

    @staticmethod
    def _key(key: StorageKey) -> str:
        return f"{key.bot_id}:{key.chat_id}:{key.user_id}"

    def _load(self, key: StorageKey) -> dict:
        name = self._key(key)
        if name in self.staged:
            return self.staged[name]
        row = self.db.execute("SELECT sealed FROM chat WHERE key = ?", (name,)).fetchone()
        if row is None:
            return {"state": None, "data": {}}
        return json.loads(self.aead.decrypt(row[0][:12], row[0][12:], name.encode()))

    async def set_state(self, key: StorageKey, state: Any = None) -> None:
        record = dict(self._load(key))
        record["state"] = state.state if isinstance(state, State) else state
        self.staged[self._key(key)] = record

    async def get_state(self, key: StorageKey) -> str | None:
        return self._load(key)["state"]

    async def set_data(self, key: StorageKey, data: dict) -> None:
        record = dict(self._load(key))
        record["data"] = dict(data)
        self.staged[self._key(key)] = record

    async def get_data(self, key: StorageKey) -> dict:
        return dict(self._load(key)["data"])

    def first_time(self, update_id: int) -> bool:
        return self.db.execute("SELECT 1 FROM seen WHERE update_id = ?", (update_id,)).fetchone() is None

    def commit(self, key: StorageKey, update_id: int) -> None:
        """The update id and the chat's sealed state, in one transaction, on disk (synchronous=FULL)."""
        name = self._key(key)
        record = self.staged.pop(name, None)
        self.db.execute("BEGIN IMMEDIATE")
        try:
            self.db.execute("INSERT INTO seen (update_id) VALUES (?)", (update_id,))
            if record is not None:
                nonce = os.urandom(12)
                sealed = nonce + self.aead.encrypt(nonce, json.dumps(record).encode(), name.encode())
                self.db.execute("INSERT INTO chat (key, sealed) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET "
                                "sealed = excluded.sealed", (name, sealed))
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise

    async def close(self) -> None:
        self.db.close()


async def answer(message: Message, state: FSMContext, event_update: Update, text: str, **kwargs) -> None:
    """The example's message.answer, after the commit when the storage is durable."""
    storage = state.storage
    if isinstance(storage, SealedSQLiteStorage):
        storage.commit(state.key, event_update.update_id)
    await message.answer(text, **kwargs)


@form_router.message(CommandStart())
async def command_start(message: Message, state: FSMContext, event_update: Update) -> None:
    await state.set_state(Form.name)
    await answer(message, state, event_update, "Hi there! What's your name?", reply_markup=ReplyKeyboardRemove())


@form_router.message(Command("cancel"))
async def cancel_handler(message: Message, state: FSMContext, event_update: Update) -> None:
    await state.clear()
    await answer(message, state, event_update, "Cancelled.", reply_markup=ReplyKeyboardRemove())


@form_router.message(Form.name)
async def process_name(message: Message, state: FSMContext, event_update: Update) -> None:
    await state.update_data(name=message.text)
    await state.set_state(Form.like_bots)
    await answer(message, state, event_update, f"Nice to meet you, {message.text}!\nDid you like to write bots?",
                 reply_markup=ReplyKeyboardMarkup(keyboard=[[KeyboardButton(text="Yes"), KeyboardButton(text="No")]],
                                                  resize_keyboard=True))


@form_router.message(Form.like_bots, F.text.casefold() == "yes")
async def process_like_write_bots(message: Message, state: FSMContext, event_update: Update) -> None:
    await state.set_state(Form.language)
    await answer(message, state, event_update, "Cool! I'm too!\nWhat programming language did you use?",
                 reply_markup=ReplyKeyboardRemove())


@form_router.message(Form.language)
async def process_language(message: Message, state: FSMContext, event_update: Update) -> None:
    data = await state.update_data(language=message.text)
    await state.clear()
    await answer(message, state, event_update,
                 f"I'll keep in mind that, {data['name']}, you like to write bots with {message.text}.",
                 reply_markup=ReplyKeyboardRemove())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--listen", required=True)
    parser.add_argument("--api-base", required=True)
    parser.add_argument("--token", required=True)
    parser.add_argument("--durable", help="SQLite file: the durable, sealed variant")
    args = parser.parse_args()
    storage = SealedSQLiteStorage(args.durable) if args.durable else MemoryStorage()
    dispatcher = Dispatcher(storage=storage)
    dispatcher.include_router(form_router)
    if args.durable:
        @dispatcher.update.outer_middleware()
        async def once(handler, update: Update, data: dict):  # a redelivered update is not answered twice
            return await handler(update, data) if storage.first_time(update.update_id) else None
    bot = Bot(args.token, session=AiohttpSession(api=TelegramAPIServer.from_base(args.api_base)))
    app = web.Application()
    SimpleRequestHandler(dispatcher=dispatcher, bot=bot).register(app, path="/telegram/webhook")
    setup_application(app, dispatcher, bot=bot)
    host, _, port = args.listen.rpartition(":")
    print("serving", flush=True)
    web.run_app(app, host=host, port=int(port), print=None, access_log=None)


if __name__ == "__main__":
    main()
