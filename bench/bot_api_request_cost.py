"""What one Bot API call costs the bot's process: a tip-off question (sendMessage with four buttons) and the
edit that shows a tapped choice (editMessageText), sent by tinbao's aiogram session as JSON against the same
calls sent as aiogram's multipart form, against the fake Bot API in another process. CPU of this process per
call, interleaved rounds, medians. Not a test.

    .venv/bin/python bench/bot_api_request_cost.py [--calls 2000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from aiogram.client.session.aiohttp import AiohttpSession  # noqa: E402
from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup  # noqa: E402

from bot.channels.telegram import make_bot  # noqa: E402
from bench.webhook_answer_cost import fake_bot_api  # noqa: E402

QUESTION = "Việc bạn báo thuộc loại nào? Chọn một nút bên dưới, hoặc gõ số của nó."
BUTTONS = InlineKeyboardMarkup(inline_keyboard=[
    [InlineKeyboardButton(text=label, callback_data=f"q:category:{n}")]
    for n, label in enumerate(["Ma túy", "Lừa đảo qua mạng", "Trộm cắp", "Khác"])])


async def calls(bot, n: int) -> float:
    """ms of CPU per call, half questions, half edits."""
    cpu = time.process_time()
    for i in range(n // 2):
        sent = await bot.send_message(chat_id=1000 + i % 50, text=QUESTION, reply_markup=BUTTONS)
        await bot.edit_message_text(chat_id=sent.chat.id, message_id=sent.message_id, text=QUESTION + "\n\n✓ Ma túy")
    return (time.process_time() - cpu) / n * 1000


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with fake_bot_api() as base:
        as_json = make_bot("123456:TEST-token-abcdef", base)
        as_form = make_bot("123456:TEST-token-abcdef", base)
        # aiogram's own form, the body tinbao's session sent before it sent JSON
        as_form.session.build_form_data = AiohttpSession.build_form_data.__get__(as_form.session)
        for bot in (as_json, as_form):
            await calls(bot, 200)  # warm: connections open, models built
        figures: dict[str, list[float]] = {"json": [], "form": []}
        for round_ in range(args.rounds):
            order = [("json", as_json), ("form", as_form)]
            for name, bot in order if round_ % 2 == 0 else order[::-1]:
                figures[name].append(await calls(bot, args.calls))
            print(f"round {round_}: json {figures['json'][-1]:.3f} ms, form {figures['form'][-1]:.3f} ms of CPU "
                  "per call", flush=True)
        json_ms, form_ms = statistics.median(figures["json"]), statistics.median(figures["form"])
        print(f"median: json {json_ms:.3f} ms, form {form_ms:.3f} ms per call; json/form {json_ms / form_ms:.2f}×")
        for bot in (as_json, as_form):
            await bot.session.close()


if __name__ == "__main__":
    asyncio.run(main())
