"""The aiogram HTTP session tinbao talks to the Bot API with: aiogram's own, with each kind of answer's
pydantic model built once per process instead of once per call, and a call without files sent as JSON."""

from __future__ import annotations

from typing import Any

from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.methods.base import Response
from aiohttp.payload import JsonPayload

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

    def build_form_data(self, bot, method):
        # aiogram sends every call as a multipart form, which costs a reply a good part of its CPU to build
        # (and the server to parse). The Bot API takes application/json for any call that uploads nothing
        # (https://core.telegram.org/bots/api#making-requests): aiogram's own request then posts this body
        # instead, with its timeouts and errors as they are. Only a call with files goes as aiogram's form
        # (its values prepared once more there: an upload is rare, and costs far more than that).
        files: dict[str, Any] = {}
        body = {}
        for key, value in method.model_dump(warnings=False).items():
            value = self.prepare_value(value, bot=bot, files=files, _dumps_json=False)
            if value is not None and value != "":  # what aiogram's form leaves out, left out here too
                body[key] = value
        if files:
            return super().build_form_data(bot, method)
        return JsonPayload(body, dumps=self.json_dumps)
