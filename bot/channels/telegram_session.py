"""The aiogram HTTP session tinbao talks to the Bot API with: aiogram's own, with each kind of answer's
pydantic model built once per process instead of once per call, and a call without files sent as JSON."""

from __future__ import annotations

import asyncio
from typing import Any, cast

from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.exceptions import TelegramNetworkError
from aiogram.methods.base import Response
from aiohttp import ClientError

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

    async def make_request(self, bot, method, timeout: int | None = None):
        # aiogram sends every call as a multipart form, which costs a reply a good part of its CPU to build
        # (and the server to parse). The Bot API takes application/json for any call that uploads nothing
        # (https://core.telegram.org/bots/api#making-requests), so only a call with files goes as a form.
        files: dict[str, Any] = {}
        body = {}
        for key, value in method.model_dump(warnings=False).items():
            value = self.prepare_value(value, bot=bot, files=files, _dumps_json=False)
            if value is not None and value != "":  # what aiogram's form leaves out, left out here too
                body[key] = value
        if files:
            return await super().make_request(bot, method, timeout)
        session = await self.create_session()
        url = self.api.api_url(token=bot.token, method=method.__api_method__)
        try:
            async with session.post(url, data=self.json_dumps(body), headers=_JSON,
                                    timeout=self.timeout if timeout is None else timeout) as resp:
                raw_result = await resp.text()
        except asyncio.TimeoutError as e:
            raise TelegramNetworkError(method=method, message="Request timeout error") from e
        except ClientError as e:
            raise TelegramNetworkError(method=method, message=f"{type(e).__name__}: {e}") from e
        response = self.check_response(bot=bot, method=method, status_code=resp.status, content=raw_result)
        return cast(Any, response.result)


_JSON = {"Content-Type": "application/json"}
