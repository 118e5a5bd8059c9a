"""What a tap's answer costs the bot's process: answerCallbackQuery made as a request of its own (tinbao's aiogram
session, against the fake Bot API in another process) against the same answer carried in the webhook's 200
(WebhookAnswer.response()). CPU of this process per answer, three rounds. Not a test.

    .venv/bin/python bench/webhook_answer_cost.py
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bot.channels.telegram import WebhookAnswer, make_bot  # noqa: E402

SERVER = """
import asyncio, sys
from tests.fakes.telegram_api import FakeTelegram
async def main():
    fake = FakeTelegram()
    await fake.start()
    print(fake.base_url, flush=True)
    await asyncio.Event().wait()
asyncio.run(main())
"""


@contextmanager
def fake_bot_api():
    """The fake Bot API served by a process of its own (its CPU is not the bench's); yields its base URL."""
    server = subprocess.Popen([sys.executable, "-c", SERVER], stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        yield server.stdout.readline().strip()
    finally:
        server.terminate()
        server.wait()


async def main(n: int = 2000) -> None:
    with fake_bot_api() as base:
        bot = make_bot("123456:TEST-token-abcdef", base)
        for _ in range(50):
            await bot.answer_callback_query("1")
        for round_ in range(3):
            cpu = time.process_time()
            for i in range(n):
                await bot.answer_callback_query(str(i))
            request = (time.process_time() - cpu) / n * 1000
            cpu = time.process_time()
            for i in range(n):
                answer = WebhookAnswer()
                answer.callback_query_id = str(i)
                answer.response()
            in_200 = (time.process_time() - cpu) / n * 1000
            print(f"round {round_}: a request {request:.3f} ms of CPU, in the 200 {in_200:.3f} ms", flush=True)
        await bot.session.close()


if __name__ == "__main__":
    asyncio.run(main())
