"""The aiogram HTTP session tinbao talks to the Bot API with: aiogram's own, with each kind of answer's
pydantic model built once per process instead of once per call."""

from __future__ import annotations

from typing import Any

from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.methods.base import Response

# aiogram reads every answer through Response[<what the method returns>]. pydantic keeps those generic
# models only weakly, so the garbage collector takes them between calls and each sendMessage built its
# model again (a tenth of a conversation step's CPU). A strong reference per kind keeps pydantic's own
# cache warm; the answers are validated exactly as before.
_KEPT: dict[Any, type] = {}


class TelegramSession(AiohttpSession):
    def check_response(self, bot, method, status_code: int, content: str):
        returning = method.__returning__
        if returning not in _KEPT:
            _KEPT[returning] = Response[returning]
        return super().check_response(bot, method, status_code, content)
