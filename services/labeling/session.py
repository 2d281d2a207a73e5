"""One labeler's session over a project engine: what to ask next, label, skip, undo.

Each label is committed to the database before :meth:`LabelingSession.label` returns;
undo appends an annotation that supersedes the undone one (history is never rewritten).
Asks are chosen in small batches in the background and the next images are rendered
ahead, so the next ask is ready before the labeler presses a key. Every queued ask is
leased to this labeler in the database (:mod:`services.teams.leases`), so no other labeler, in
this process or another, is asked about it meanwhile (overlap asks aside); the leases are
renewed while the session is used and given back when it skips, drops or closes.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass

from services.engine.project_engine import Ask, ProjectEngine
from services.errors import UserError
from services.labeling.priority_asks import askable
from services.labeling.write import LeaseLost
from services.teams.leases import AskLeases, TeamSettings, is_overlap, read_team_settings
from storage.labels.label_queries import CurrentLabel
from storage.labels.priority_queries import TRIAGE

ASK_IMAGE_SIDE = 448  # pixels of the image being labeled
THUMBNAIL_SIDE = 96
QUEUE_CHECK_SECONDS = 5.0  # how often a session looks for images newly queued by the Triage report


@dataclass(frozen=True)
class Labeled:
    """A label this session gave: the ask, the annotation written, and the label it replaced."""

    ask: Ask
    annotation_id: int
    previous: CurrentLabel | None


class LabelingSession:
    """See the module docstring.

    Parameters
    ----------
    engine : ProjectEngine
    annotator : str
        Name recorded on every annotation.
    batch_size : int
        Asks chosen per selection run.
    low_water : int
        A new batch is chosen in the background when fewer asks than this are queued.
    team : TeamSettings, optional
        Lease time and overlap share; the project's saved team settings when None.
    """

    def __init__(
        self,
        engine: ProjectEngine,
        annotator: str,
        *,
        batch_size: int = 8,
        low_water: int = 4,
        team: TeamSettings | None = None,
    ) -> None:
        if not annotator.strip():
            raise UserError("annotator name is empty; type your name")
        self.engine = engine
        self.annotator = annotator.strip()
        self.leases = AskLeases(
            engine,
            self.annotator,
            team=team if team is not None else read_team_settings(engine.db, engine.project_id),
        )
        self._renewed = time.monotonic()
        self.batch_size, self.low_water = batch_size, low_water
        self.history: list[Labeled] = []
        self._queue: deque[Ask] = deque()
        self._skipped: set[int] = set()
        self._returned: set[int] = set()  # undone items asked again even though they may hold a label
        self._lock = threading.Lock()
        self._refill: Future | None = None
        self._stale: list[Ask] = []  # dropped asks whose leases are still to be given back
        self._shown: tuple[int, float] | None = None  # item on screen and when it first showed
        self._queue_checked = time.monotonic()  # when the Triage queue was last looked at

    # ----- what to show ----------------------------------------------------------------

    def current(self) -> Ask | None:
        """The ask to show now, or None when nothing is left to ask."""
        while True:
            with self._lock:
                head = self._queue[0] if self._queue else None
                pending = self._refill
            if head is None:
                if pending is not None:
                    pending.result()
                elif not self._fill():
                    return None
                continue
            label = self.engine.current_label(head.item_id)
            if label is not None and label.class_ids and head.item_id not in self._returned and not is_overlap(head):
                self._drop(head.item_id)  # labeled on another page meanwhile
                self.leases.release([head])
                continue
            if not self._renew_if_due():
                continue
            if self._shown is None or self._shown[0] != head.item_id:
                self._shown = (head.item_id, time.monotonic())
            self._top_up()
            return head

    def image(self, ask: Ask, side: int = ASK_IMAGE_SIDE) -> bytes:
        """PNG bytes of the ask's image, from the prefetch cache when it is ready."""
        return self.engine.pool.images.get(ask.item_id, ask.path, side)

    # ----- actions ---------------------------------------------------------------------

    def label(self, item_id: int, class_ids: Sequence[int], *, duration_ms: int | None = None) -> int:
        """Record the item's whole class set now; return the annotation id once it is committed."""
        ask = self._ask_for(item_id)
        if not class_ids:
            raise UserError("choose at least one class")  # the write path checks that they exist
        if duration_ms is None and self._shown is not None and self._shown[0] == item_id:
            duration_ms = round((time.monotonic() - self._shown[1]) * 1000)
        previous = self.engine.current_label(item_id)
        classes = tuple(sorted(set(class_ids)))
        # An overlap label is a second opinion, not a correction of the first label.
        supersedes = previous.annotation_id if previous is not None and not is_overlap(ask) else None
        try:
            annotation_id = self.leases.label(ask, classes, duration_ms=duration_ms, supersedes_id=supersedes)
        except LeaseLost:
            self._drop(item_id)  # someone else has it now: show the next ask
            raise
        self.history.append(Labeled(ask, annotation_id, previous))
        self._drop(item_id)
        self._top_up()
        return annotation_id

    def skip(self, item_id: int) -> None:
        """Do not ask about this item again in this session."""
        ask = self._ask_for(item_id)
        self._skipped.add(item_id)
        self._drop(item_id)
        self.leases.release([ask])
        self._top_up()

    def undo(self) -> Ask | None:
        """Undo this session's newest label with a superseding annotation; the item is asked again.

        Returns the ask that comes back, or None when there is nothing to undo.

        Raises
        ------
        UserError
            When someone else has labeled the item since.
        """
        if not self.history:
            return None
        done = self.history[-1]
        now = self.engine.current_label(done.ask.item_id)
        if now is None or now.annotation_id != done.annotation_id:
            raise UserError(
                f"{done.ask.path} was labeled again by someone else since; open it on the Grid or Explore page"
            )
        restored = done.previous.class_ids if done.previous is not None else ()
        self.leases.undo(done.ask, restored, supersedes_id=done.annotation_id)
        self.history.pop()
        with self._lock:
            self._queue.appendleft(done.ask)
            self._returned.add(done.ask.item_id)
        return done.ask

    def close(self) -> None:
        """Hand the queued asks back, so other labelers may be asked about them at once."""
        with self._lock:
            queued = list(self._queue) + self._stale
            self._queue.clear()
            self._stale = []
        self.leases.release(queued)

    # ----- the queue -------------------------------------------------------------------

    def _ask_for(self, item_id: int) -> Ask:
        with self._lock:
            for ask in self._queue:
                if ask.item_id == item_id:
                    return ask
        raise UserError(f"item {item_id} is not among this session's asks; it may have been labeled already")

    def _renew_if_due(self) -> bool:
        """Renew the queued asks' leases once half the lease time has passed; drop those lost
        (left so long that someone else took them). False when any was dropped."""
        if time.monotonic() - self._renewed < self.leases.team.lease_seconds / 2:
            return True
        with self._lock:
            queued = list(self._queue)
        held = self.leases.renew(queued)
        self._renewed = time.monotonic()
        lost = [ask for ask in queued if ask.item_id not in held]
        for ask in lost:
            self._drop(ask.item_id)
        return not lost

    def _drop(self, item_id: int) -> None:
        with self._lock:
            self._returned.discard(item_id)
            self._queue = deque(ask for ask in self._queue if ask.item_id != item_id)

    def _top_up(self) -> None:
        """Start choosing the next batch in the background when the queue runs low, and
        render the next images; a new model version, or images newly queued by the Triage
        report, make queued asks beyond the next two stale."""
        if self.engine.closed:  # replaced (new images joined the pool): the next page run starts a new session
            return
        serving = self.engine.serving.model_version_id
        newly_queued = self._newly_queued()
        with self._lock:
            if len(self._queue) > 2 and (self._queue[-1].model_version_id != serving or newly_queued):
                stale = [ask for ask in list(self._queue)[2:] if ask.item_id not in self._returned]
                self._queue = deque(ask for ask in self._queue if ask not in stale)
                self._stale.extend(stale)  # given back by the next refill, before it leases again
            start = len(self._queue) < self.low_water and self._refill is None
            if start:
                self._refill = self.engine.background.submit(self._fill)
            upcoming = list(self._queue)[:2]
        if not start:
            self.engine.background.submit(self._render, upcoming)

    def _newly_queued(self) -> bool:
        """Whether the Triage queue (any process may add to it) holds images this session
        could be asked now but has not queued; the database is read at most every
        ``QUEUE_CHECK_SECONDS``."""
        now = time.monotonic()
        if now - self._queue_checked < QUEUE_CHECK_SECONDS:
            return False
        self._queue_checked = now
        with self._lock:
            later = list(self._queue)[2:]
            mine = {ask.item_id for ask in self._queue} | self._skipped
        # Only the strategy's own picks give way: queued and overlap asks come before them anyway.
        if all(ask.source == TRIAGE or is_overlap(ask) for ask in later):
            return False
        return bool(askable(self.leases, exclude=mine))

    def _fill(self) -> bool:
        """Choose a batch and queue it; True when it added asks."""
        try:
            with self._lock:
                exclude = {ask.item_id for ask in self._queue} | self._skipped
                stale, self._stale = self._stale, []
            self.leases.release(stale)
            asks = self.leases.lease(self.batch_size, exclude=exclude)
            with self._lock:
                known = {ask.item_id for ask in self._queue}
                self._queue.extend(ask for ask in asks if ask.item_id not in known)
                upcoming = list(self._queue)[:2]
        finally:
            with self._lock:
                self._refill = None
        self._render(upcoming)
        return bool(asks)

    def _render(self, asks: list[Ask]) -> None:
        for ask in asks:
            self.image(ask)
