"""A stopping bot cancels its reminder jobs; a cancel that lands just as a job's database step ends must
still end the job (bot/reminder_dispatcher.py to_its_end). Seen once in CI: the scheduler took the cancel
for its step's own, ticked on, and `tinbao run` never finished stopping."""

from __future__ import annotations

import asyncio

import pytest

from bot import reminder_dispatcher


async def test_a_cancel_that_lands_as_the_step_ends_still_ends_the_job():
    """The stop's cancel and the end of a tick's database step in the same turn of the event loop: the job
    ends all the same (otherwise the scheduler ticks on and the stop waits for it for ever)."""
    step = asyncio.get_running_loop().create_future()
    job = asyncio.create_task(reminder_dispatcher.to_its_end(step))
    await asyncio.sleep(0)  # the job waits on its step
    step.set_result("done")
    job.cancel()
    with pytest.raises(asyncio.CancelledError):
        await job
