"""The writers' queue hands the turn on oldest first, and gives up after its timeout."""

import threading
import time

from storage.writer_queue import WriterQueue


def _wait_for_waiters(queue: WriterQueue, count: int) -> None:
    deadline = time.monotonic() + 30
    while len(queue._waiting) < count:
        assert time.monotonic() < deadline
        time.sleep(0.001)


def test_writers_get_their_turn_in_the_order_they_asked():
    queue = WriterQueue(timeout_s=30)
    order: list[int] = []

    def write(n: int) -> None:
        with queue.turn() as given:
            order.append(n if given else -n)

    with queue.turn():
        threads = []
        for n in range(1, 9):
            threads.append(threading.Thread(target=write, args=(n,)))
            threads[-1].start()
            _wait_for_waiters(queue, n)  # thread n is queued before thread n + 1 starts
    for thread in threads:
        thread.join(timeout=30)
    assert order == list(range(1, 9))


def test_a_writer_that_waits_too_long_goes_on_without_a_turn_and_the_queue_recovers():
    queue = WriterQueue(timeout_s=0.05)
    given: list[bool] = []

    def write() -> None:
        with queue.turn() as turn:
            given.append(turn)

    with queue.turn():
        late = threading.Thread(target=write)
        late.start()
        late.join(timeout=30)
    assert given == [False]
    with queue.turn() as turn:  # free again: the timed-out writer left no trace
        assert turn
