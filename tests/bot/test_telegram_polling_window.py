"""The bookkeeping behind Telegram polling's offset: an update is confirmed only once handled, and an
update that comes back in the answer to an older request is recognised, not handled twice."""

from bot.channels.telegram_polling import PollingWindow


def test_the_offset_waits_for_the_lowest_update_still_being_handled():
    window = PollingWindow()
    for update_id in (5, 6, 7):
        window.seen(update_id)
        window.running[update_id] = None
    window.advance()
    assert window.offset == 5
    window.finished(6)
    window.finished(7)
    assert window.offset == 5  # 5 is not handled yet: nothing is confirmed
    window.finished(5)
    assert window.offset == 8


def test_updates_finished_while_a_request_was_under_way_are_still_known_when_its_answer_comes():
    """A getUpdates asked with offset 5 while 5 and 6 ran; both finished before its answer came back with
    them. They are the same updates, not a redelivery."""
    window = PollingWindow()
    for update_id in (5, 6):
        window.seen(update_id)
        window.running[update_id] = None
    window.advance()
    window.asked = window.offset  # the request goes out
    window.finished(5)
    window.finished(6)
    assert window.offset == 7
    assert window.knows(5) and window.knows(6)
    assert not window.redelivered(5) and not window.redelivered(6)
    window.asked = window.offset  # the next request: now they are behind us
    window.advance()
    assert not window.knows(5) and window.redelivered(5)
