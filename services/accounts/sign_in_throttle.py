"""Slow down password guessing: a name with too many failed sign-ins waits out a window.

Counted per name (known or not, so the refusal says nothing about which names exist), in
this server process; a restart forgets the counts.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable

from services.errors import UserError


class SignInThrottle:
    """Failed sign-ins per name in a sliding window.

    Parameters
    ----------
    limit : int
        Failures allowed in ``window_s``; the next attempt is refused until the oldest expires.
    window_s : float
        Length of the window in seconds.
    clock : callable returning float
        Seconds, monotonic.
    """

    def __init__(
        self, *, limit: int = 10, window_s: float = 300.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.limit = limit
        self.window_s = window_s
        self.clock = clock
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def _recent(self, key: str, now: float) -> deque[float]:
        failures = self._failures.get(key, deque())
        while failures and failures[0] <= now - self.window_s:
            failures.popleft()
        if not failures:
            self._failures.pop(key, None)
        return failures

    def check(self, name: str) -> None:
        """Raise a UserError if ``name`` has used up its failures."""
        now = self.clock()
        with self._lock:
            failures = self._recent(name.strip().casefold(), now)
            if len(failures) >= self.limit:
                wait = failures[0] + self.window_s - now
                raise UserError(
                    f"too many failed sign-ins for this name; try again in {wait / 60:.0f} minutes "
                    "or ask an admin to reset the password"
                )

    def failed(self, name: str) -> None:
        now = self.clock()
        with self._lock:
            key = name.strip().casefold()
            self._failures[key] = self._recent(key, now)
            self._failures[key].append(now)

    def succeeded(self, name: str) -> None:
        with self._lock:
            self._failures.pop(name.strip().casefold(), None)
