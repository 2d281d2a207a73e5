"""A first-come, first-served queue for the writers of one process."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager


class WriterQueue:
    """Let one thread at a time write, in the order they asked.

    SQLite lets one transaction write at a time, and a waiting writer polls for the
    lock with sleeps of up to 100 ms, in no order: while other writers keep the
    database busy, one of them can wait past the busy timeout and fail with
    "database is locked". Writers of one process that queue here first are handed
    the turn directly, oldest first, so the wait is bounded by the writers ahead.

    Parameters
    ----------
    timeout_s : float
        Longest wait for a turn. After it the writer goes on without one and meets
        the database's own locking, as if there were no queue, so a thread that
        already holds a turn (a nested write) fails as before instead of hanging.
    """

    def __init__(self, *, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        self._mutex = threading.Lock()
        self._waiting: deque[threading.Event] = deque()
        self._taken = False

    @contextmanager
    def turn(self) -> Iterator[bool]:
        """Wait for this thread's turn and hold it inside the block; yield whether it was given."""
        given = self._acquire()
        try:
            yield given
        finally:
            if given:
                self._release()

    def _acquire(self) -> bool:
        with self._mutex:
            if not self._taken:
                self._taken = True
                return True
            handed = threading.Event()
            self._waiting.append(handed)
        if handed.wait(self.timeout_s):
            return True
        with self._mutex:
            if handed.is_set():  # handed over between the timeout and the mutex
                return True
            self._waiting.remove(handed)
            return False

    def _release(self) -> None:
        with self._mutex:
            if self._waiting:
                self._waiting.popleft().set()  # the turn passes on without ever being free
            else:
                self._taken = False
