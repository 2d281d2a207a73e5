"""The live project engines of this process, and how a committed change reaches them.

Every :class:`~services.engine.project_engine.ProjectEngine` registers itself when it is built
and leaves when it closes. The one label path (:mod:`services.labeling.write`) and the class
actions (:mod:`services.labeling.classes`) announce each committed change here, so every engine
of the project in this process takes it at once: the serving one, one being built beside it, a
replaced one still serving old sessions. Engines of other processes learn of it by polling the
database (:meth:`ProjectEngine.sync`).
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Mapping
from typing import TYPE_CHECKING

from services.database import Database
from storage.labels.label_queries import CurrentLabel

if TYPE_CHECKING:
    from services.engine.project_engine import ProjectEngine

_live: weakref.WeakSet[ProjectEngine] = weakref.WeakSet()
_lock = threading.Lock()


def register(engine: ProjectEngine) -> None:
    with _lock:
        _live.add(engine)


def unregister(engine: ProjectEngine) -> None:
    with _lock:
        _live.discard(engine)


def engines_of(db: Database, project_id: int) -> list[ProjectEngine]:
    """The live engines of the project on the same database (any :class:`Database` object)."""
    url = db.engine.url
    with _lock:
        return [e for e in _live if e.project_id == project_id and e.db.engine.url == url]


def announce_labels(db: Database, project_id: int, labels: Mapping[int, CurrentLabel]) -> None:
    """Committed labels (item id -> its new current label) reach every engine of the project."""
    for engine in engines_of(db, project_id):
        engine.take_labels(labels)


def announce_classes(db: Database, project_id: int) -> None:
    """A committed class change (added, renamed, archived, restored) reaches every engine of the project."""
    for engine in engines_of(db, project_id):
        engine.reload_classes()
