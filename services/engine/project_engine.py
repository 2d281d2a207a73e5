"""One project's model and ranking state: current labels, the serving probe, selection.

An engine ranks a fixed :class:`~services.engine.pool.Pool` (ids, paths, embeddings);
:mod:`services.engine.lifecycle` starts engines, grows the pool into a new engine and retires
the old one. Every labeler of a project in this process uses the same :class:`ProjectEngine`; its
methods are thread-safe. Labels reach the database before the engine hears of them: the one
label path (:mod:`services.labeling.write`) commits, then announces the labels to every engine
of the project in this process (:mod:`services.engine.registry`); :meth:`ProjectEngine.sync`
takes what other processes committed. So the engine is a cache of the database that can always
be rebuilt from it.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np

from core.model.loop import LoopConfig, RetrainLoop
from core.model.probe import LinearProbe
from core.model.retrain_worker import ProbeTrainer
from core.selection.scorers import UNCERTAINTY
from core.selection.selection import ALL_STRATEGIES, SelectionConfig, select
from core.similarity.similarity_state import SimilarityState
from services import shared_settings
from services.config import Settings
from services.database import Database
from services.engine import registry
from services.engine.model_store import load_latest_model, save_model_version
from services.engine.pool import Pool
from services.errors import UserError
from storage.labels import label_queries
from storage.labels.label_queries import CurrentLabel
from storage.models import Project
from storage.settings import setting_queries

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ClassInfo:
    id: int
    name: str
    archived: bool


@dataclass(frozen=True)
class Serving:
    """The model answering predictions now; version id None before the first fit."""

    model_version_id: int | None = None
    probe: LinearProbe | None = None
    metrics: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Ask:
    """An item to ask about, and why it was chosen.

    ``score_parts`` holds only the parts that apply (no NaN); ``predicted`` the class
    ids the probe predicted at ask time (empty without a probe).
    """

    item_id: int
    path: str
    pick_id: int
    source: str
    score_parts: dict[str, float]
    predicted: tuple[int, ...]
    model_version_id: int | None
    band: tuple[float, float] | None


@dataclass(frozen=True)
class SelectionSettings:
    """Strategy and knobs of :func:`core.selection.selection.select`, shared by a project's labelers."""

    strategy: str = "default"
    config: SelectionConfig = SelectionConfig()


class ProjectEngine:
    """See the module docstring.

    Parameters
    ----------
    db, settings
    project : Project
    pool : Pool
        The embedded items it ranks, fixed for its life.
    loop_config : LoopConfig
    """

    def __init__(
        self,
        db: Database,
        settings: Settings,
        *,
        project: Project,
        pool: Pool,
        loop_config: LoopConfig = LoopConfig(),
    ) -> None:
        self.db, self.settings, self.pool = db, settings, pool
        self.project_id, self.project_name, self.multi_label = project.id, project.name, project.multi_label
        self.background = ThreadPoolExecutor(max_workers=2, thread_name_prefix=f"asks-{project.id}")
        self._closed = False
        self._lock = threading.Lock()  # guards _labels; held only briefly
        self._state_lock = threading.Lock()  # guards _state, which selection reads for a while
        self._rng = np.random.default_rng()
        self._state = SimilarityState(pool.embeddings)
        self._state_labels: dict[int, tuple[int, ...]] = {}  # the labels _state reflects
        self._labels: dict[int, CurrentLabel] = {}  # item id -> newest annotation (cleared ones too)
        # The project's newest annotation id at the poll before last and at the last (see sync).
        self._poll_marks = (0, 0)
        self.last_error: str | None = None
        self.classes: dict[int, ClassInfo] = {}
        self.reload_classes()
        shared_settings.import_setting_files(db, settings, self.project_id)  # settings files of earlier versions
        self.selection = selection_settings(
            shared_settings.read_setting(db, self.project_id, shared_settings.SELECTION)
        )
        self.serving = Serving()
        stored = load_latest_model(db, settings, project_id=self.project_id, backbone_key=pool.backbone_key)
        if stored is not None and stored[1].multi_label == self.multi_label:  # not one of the project's other mode
            self.serving = Serving(*stored)
        self._load_labels()
        self._trainer = ProbeTrainer(multi_label=self.multi_label)  # fits run in a worker process
        rows, labels = self._current_loop_labels()
        # A stored model trained on exactly the current labels serves as it is: no retrain at start.
        current = self.serving.probe is not None and self.serving.metrics.get(
            "trained_labels_digest"
        ) == self._labels_digest(rows, labels)
        self.loop = RetrainLoop(
            fit=self._fit,
            config=loop_config,
            callbacks=(self,),
            model=self.serving.probe,
            trained_on=(rows, labels) if current else None,
        )
        if not current and self._feed_loop():
            self.loop.request_retrain()
        registry.register(self)  # from now on committed labels reach this engine as they are written
        self.sync()  # and those committed while it was being built

    # ----- labels ----------------------------------------------------------------------

    def _load_labels(self) -> None:
        with self.db.reading() as session:
            newest = label_queries.newest_annotation_id(session, self.project_id)
            labels = label_queries.current_labels(session, self.project_id)
        with self._lock:
            self._labels = {item: label for item, label in labels.items() if item in self.pool.row_of}
        self._poll_marks = (newest, newest)

    def sync(self) -> int:
        """Take what other processes committed since the last poll: class changes, the selection
        settings, and the labels
        of items annotated after the newest annotation seen one poll ago (so that a label committed
        late under a lower id is not missed). Cheap when nothing changed; returns how many labels
        were new to this engine."""
        with self.db.reading() as session:
            newest = label_queries.newest_annotation_id(session, self.project_id)
            classes = label_queries.label_classes(session, self.project_id, include_archived=True)
            since = self._poll_marks[0]
            labels = label_queries.current_labels_since(session, self.project_id, since) if newest > since else {}
            selection = setting_queries.project_setting(session, self.project_id, shared_settings.SELECTION)
        self._poll_marks = (self._poll_marks[1], newest)
        self._set_classes(classes)
        if selection is not None:
            self.selection = selection_settings(selection.value)
        return self.take_labels(labels)

    def _feed_loop(self) -> int:
        """Give the retrain loop every current label (and forget the cleared ones); returns how many."""
        with self._lock:
            cleared = [self.pool.row_of[i] for i, label in self._labels.items() if not label.class_ids]
        rows, labels = self._current_loop_labels()
        self.loop.remove_labels(cleared)
        self.loop.add_labels(rows, labels)
        return len(rows)

    def _current_loop_labels(self) -> tuple[list[int], list[int | tuple[int, ...]]]:
        """Pool rows of the labeled items and their labels as the retrain loop takes them."""
        with self._lock:
            labeled = {
                self.pool.row_of[i]: self._loop_label(label) for i, label in self._labels.items() if label.class_ids
            }
        return list(labeled), list(labeled.values())

    def _labels_digest(self, rows, labels) -> str:
        """Fingerprint of a label set (item ids and class ids, in any order), stored with each
        model version so that a start can tell whether the newest one is current."""
        item_ids = self.pool.item_ids[np.asarray(rows, np.int64)].tolist()
        classes = [
            tuple(sorted(int(c) for c in label)) if isinstance(label, tuple) else (int(label),) for label in labels
        ]
        return hashlib.sha256(repr(sorted(zip(item_ids, classes))).encode()).hexdigest()

    def _loop_label(self, label: CurrentLabel) -> int | tuple[int, ...]:
        return tuple(label.class_ids) if self.multi_label else label.class_ids[0]

    def reload_classes(self) -> None:
        with self.db.reading() as session:
            self._set_classes(label_queries.label_classes(session, self.project_id, include_archived=True))

    def _set_classes(self, classes) -> None:
        self.classes = {c.id: ClassInfo(c.id, c.name, c.archived_at is not None) for c in classes}  # one assignment

    def active_classes(self) -> list[ClassInfo]:
        """Unarchived classes in the order they were added (the keyboard order)."""
        return [c for c in self.classes.values() if not c.archived]

    def current_label(self, item_id: int) -> CurrentLabel | None:
        with self._lock:
            return self._labels.get(item_id)

    def labeled_items(self) -> list[int]:
        """Items whose newest annotation names at least one class."""
        with self._lock:
            return [item for item, label in self._labels.items() if label.class_ids]

    def take_labels(self, labels: Mapping[int, CurrentLabel]) -> int:
        """Take in committed labels (item id -> its current label); the probe retrains in the
        background. Labels of items outside the pool, and labels no newer than the one held, are
        left out; returns how many were taken. Only the label path and :meth:`sync` call this."""
        taken: dict[int, CurrentLabel] = {}
        with self._lock:
            for item_id, label in labels.items():
                held = self._labels.get(item_id)
                if item_id in self.pool.row_of and (held is None or held.annotation_id < label.annotation_id):
                    self._labels[item_id] = taken[item_id] = label
        if not taken:
            return 0
        named = {c for label in taken.values() for c in label.class_ids}
        if not named <= set(self.classes):
            self.reload_classes()  # a class made in another process: know its name before anyone asks
        # The similarity state catches up when the next asks are chosen, off the labeling path.
        given = {self.pool.row_of[item]: label for item, label in taken.items() if label.class_ids}
        cleared = [self.pool.row_of[item] for item, label in taken.items() if not label.class_ids]
        if cleared:
            self.loop.remove_labels(cleared)
        if given:
            self.loop.add_labels(list(given), [self._loop_label(label) for label in given.values()])
        probe = self.serving.probe
        if probe is not None and not named <= set(np.asarray(probe.classes_).tolist()):
            self.loop.request_retrain()  # a class the probe has never seen: learn it now
        return len(taken)

    def _catch_up_state(self, labeled: dict[int, tuple[int, ...]]) -> None:
        """Bring the similarity state to ``labeled`` (item -> class ids): labels that went
        (undone, or the old class of a relabel) are taken out, new ones folded in; neither
        recomputes all labels x pool. Hold _state_lock."""
        old, new = self._state_pairs(self._state_labels), self._state_pairs(labeled)
        self._state.remove_labels(*self._pair_arrays(old - new))
        self._state.add_labels(*self._pair_arrays(new - old))
        self._state_labels = labeled

    def _state_pairs(self, labeled: dict[int, tuple[int, ...]]) -> set[tuple[int, int]]:
        return {(self.pool.row_of[item], c) for item, classes in labeled.items() for c in classes}

    @staticmethod
    def _pair_arrays(pairs: set[tuple[int, int]]) -> tuple[np.ndarray, np.ndarray]:
        rows, classes = zip(*sorted(pairs)) if pairs else ((), ())
        return np.asarray(rows, np.int64), np.asarray(classes, np.int64)

    # ----- training --------------------------------------------------------------------

    def _fit(self, rows, labels, previous):
        """The retrain loop's fit (pool rows; class ids, or class-id tuples when multi-label), in
        the worker process: a crash there only fails this retrain."""
        trained = dict(trained_labels=len(rows), trained_labels_digest=self._labels_digest(rows, labels))
        if not self.multi_label:
            probe, metrics = self._trainer.fit(self.pool.embeddings[rows], np.asarray(labels, np.int64), previous)
            return probe, dict(metrics, **trained)
        known = set(np.asarray(previous.classes_).tolist()) if previous is not None else set()
        columns = np.asarray(sorted(known.union(*labels)), np.int64)
        targets = np.zeros((len(rows), len(columns)), np.float32)
        for i, classes in enumerate(labels):
            targets[i, np.searchsorted(columns, classes)] = 1
        probe, metrics = self._trainer.fit(self.pool.embeddings[rows], targets, previous, classes=columns)
        return probe, dict(metrics, **trained)

    def on_model(self, _version, probe, metrics) -> None:
        """RetrainLoop callback: store the version, then serve it."""
        version_id = save_model_version(
            self.db,
            self.settings,
            project_id=self.project_id,
            backbone_key=self.pool.backbone_key,
            probe=probe,
            n_labels=metrics["trained_labels"],
            metrics=metrics,
        )
        self.serving = Serving(version_id, probe, metrics)  # one reference assignment: atomic
        self.last_error = None
        self._refresh_predictions(probe)
        from services.engine.after_model import run_after_model  # hooks of other concerns (failure slices)

        run_after_model(self)  # re-mines failure slices; never raises

    def _refresh_predictions(self, probe: LinearProbe) -> None:
        """The full refresh after a retrain: predict the pool once for the new probe, here in the
        loop's thread, so that the next asks only combine scores."""
        strategy, config = self.selection.strategy, self.selection.config
        with self._state_lock:
            self._state.predictions(probe).uncertainty(strategy if strategy in UNCERTAINTY else config.uncertainty)

    def on_error(self, error: Exception) -> None:
        log.error("retrain failed; the previous model keeps serving", exc_info=error)
        self.last_error = f"{type(error).__name__}: {error}"

    def retrain_now(self) -> None:
        self.loop.request_retrain()

    # ----- predictions -----------------------------------------------------------------

    def suggestions(self, item_id: int) -> list[tuple[int, float]]:
        """Active classes with the serving probe's probability for the item, most probable first.

        Without a probe that knows two classes, every active class with probability NaN.
        """
        active = [c.id for c in self.active_classes()]
        probe = self.serving.probe
        if probe is None or len(probe.classes_) < 2 or item_id not in self.pool.row_of:
            return [(c, float("nan")) for c in active]
        proba = probe.predict_proba(self.pool.embeddings[[self.pool.row_of[item_id]]])[0]
        by_class = dict(zip(np.asarray(probe.classes_).tolist(), proba.tolist()))
        return sorted(((c, by_class.get(c, 0.0)) for c in active), key=lambda pair: -pair[1])

    def predictions(self, rows: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray] | None:
        """Most probable class id and its probability for pool ``rows`` (all when None), or None
        without a probe that separates classes. Multi-label: the most probable class."""
        probe = self.serving.probe
        if probe is None or len(probe.classes_) < 2:
            return None
        rows = np.arange(len(self.pool.item_ids)) if rows is None else rows
        proba = probe.predict_proba(self.pool.embeddings[rows])
        best = proba.argmax(axis=1)
        return np.asarray(probe.classes_)[best], proba[np.arange(len(rows)), best]

    def neighbours(self, item_id: int, k: int = 5) -> list[tuple[int, tuple[int, ...], float]]:
        """The ``k`` labeled items most similar to ``item_id``: (item id, class ids, cosine similarity)."""
        with self._lock:
            labeled = {i: lab.class_ids for i, lab in self._labels.items() if lab.class_ids and i != item_id}
        if not labeled or item_id not in self.pool.row_of:
            return []
        items = np.asarray(list(labeled), np.int64)
        rows = np.asarray([self.pool.row_of[i] for i in items.tolist()])
        similarity = self.pool.embeddings[rows] @ self.pool.embeddings[self.pool.row_of[item_id]]
        best = np.argsort(-similarity)[:k]
        return [(int(items[i]), labeled[int(items[i])], float(similarity[i])) for i in best]

    def similar_unlabeled(self, item_id: int, n: int) -> list[tuple[int, float]]:
        """The ``n`` unlabeled items most similar to ``item_id``: (item id, cosine similarity)."""
        if item_id not in self.pool.row_of:
            return []
        similarity = self.pool.embeddings @ self.pool.embeddings[self.pool.row_of[item_id]]
        with self._lock:
            for item, label in self._labels.items():
                if label.class_ids:
                    similarity[self.pool.row_of[item]] = -np.inf
        similarity[self.pool.row_of[item_id]] = -np.inf
        best = np.argsort(-similarity)[:n]
        return [(int(self.pool.item_ids[row]), float(similarity[row])) for row in best if np.isfinite(similarity[row])]

    # ----- selection -------------------------------------------------------------------

    def next_asks(self, n: int, *, claim: Callable[[list[int]], list[int]], exclude: Iterable[int] = ()) -> list[Ask]:
        """Choose up to ``n`` asks and record them as a selection run.

        ``claim`` gets the candidate item ids, best first, and returns those the caller may
        ask about (it leases them: see ``services.teams.leases``); only those become asks.
        Items in ``exclude`` are left out.
        """
        with self._state_lock:
            with self._lock:
                labeled = {i: lab.class_ids for i, lab in self._labels.items() if lab.class_ids}
            skip = {self.pool.row_of[i] for i in exclude if i in self.pool.row_of}
            self._catch_up_state(labeled)
            rows = np.asarray([self.pool.row_of[i] for i in labeled], np.int64)
            serving, settings = self.serving, self.selection
            labels = self._selection_labels(list(labeled.values()), serving.probe)
            chosen = select(
                self.pool.embeddings,
                rows,
                labels,
                n + len(skip),
                strategy=settings.strategy,
                probe=serving.probe,
                state=self._state,
                config=settings.config,
                rng=self._rng,
            )
        candidates = [i for i, row in enumerate(chosen.indices.tolist()) if row not in skip][:n]
        claimed = set(claim([int(self.pool.item_ids[chosen.indices[i]]) for i in candidates]))
        keep = [i for i in candidates if int(self.pool.item_ids[chosen.indices[i]]) in claimed]
        picks = [self._pick(chosen, i, serving.probe) for i in keep]
        if not picks:
            return []
        with self.db.writing() as session:
            _, pick_ids = label_queries.add_selection_run(
                session,
                project_id=self.project_id,
                model_version_id=serving.model_version_id,
                strategy=settings.strategy,
                parameters=dict(asdict(settings.config), band=chosen.band),
                picks=picks,
            )
        return [
            Ask(
                item_id=pick["item_id"],
                path=self.pool.paths[self.pool.row_of[pick["item_id"]]],
                pick_id=pick_id,
                source=pick["source"],
                score_parts=pick["score_parts"],
                predicted=tuple(pick["predicted"] or ()),
                model_version_id=serving.model_version_id,
                band=chosen.band,
            )
            for pick, pick_id in zip(picks, pick_ids)
        ]

    def _selection_labels(self, class_sets: list[tuple[int, ...]], probe: LinearProbe | None) -> np.ndarray:
        if not self.multi_label or probe is None:
            return np.asarray([classes[0] for classes in class_sets], np.int64)
        columns = np.asarray(probe.classes_).tolist()
        indicator = np.zeros((len(class_sets), len(columns)), np.int8)
        for i, classes in enumerate(class_sets):
            indicator[i, [columns.index(c) for c in classes if c in columns]] = 1
        return indicator

    def _pick(self, chosen, i: int, probe: LinearProbe | None) -> dict[str, Any]:
        parts = {name: float(values[i]) for name, values in chosen.score_parts.items() if np.isfinite(values[i])}
        predicted = None
        if chosen.predicted is not None and probe is not None:  # predictions come from the serving probe
            predicted = recorded_prediction(chosen.predicted[i], probe, multi_label=self.multi_label)
        return dict(
            item_id=int(self.pool.item_ids[chosen.indices[i]]),
            score_parts=parts,
            source=str(chosen.source[i]),
            predicted=predicted,
        )

    # ----- selection settings ----------------------------------------------------------

    def set_selection(self, strategy: str, *, by: str | None = None, **config: Any) -> None:
        """Change the strategy and any :class:`SelectionConfig` field, for every server of the
        project (kept in the database; other servers take it at their next :meth:`sync`)."""
        if strategy not in ALL_STRATEGIES:
            raise UserError(f"unknown strategy {strategy!r}; choose one of {', '.join(ALL_STRATEGIES)}")
        settings = SelectionSettings(strategy, replace(self.selection.config, **config))
        value = {"strategy": strategy, "config": asdict(settings.config)}
        shared_settings.write_setting(self.db, self.project_id, shared_settings.SELECTION, value, by=by)
        self.selection = settings

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` has run; a closed engine takes no background work."""
        return self._closed

    def close(self) -> None:
        registry.unregister(self)  # labels written through a session still holding it reach its successor
        self._closed = True
        self.loop.close(timeout=30)
        self._trainer.close()
        self.background.shutdown(wait=True)


def selection_settings(stored: dict[str, Any] | None) -> SelectionSettings:
    """Selection settings from their stored form (defaults for None or for fields not stored)."""
    if stored is None:
        return SelectionSettings()
    config = dict(stored.get("config", {}))
    if "band_width_quantiles" in config:
        config["band_width_quantiles"] = tuple(config["band_width_quantiles"])
    try:
        return SelectionSettings(stored.get("strategy", "default"), SelectionConfig(**config))
    except TypeError as error:  # a field of another version
        raise UserError(
            f"stored selection settings do not fit this version ({error}); set them again on the "
            "Classes and settings page"
        ) from None


def recorded_prediction(value, probe: LinearProbe, *, multi_label: bool) -> list[int]:
    """One row of ``probe.predict`` as a pick records it (``Pick.predicted``): class ids;
    multi-label, those of the row's 0/1 indicator (columns follow ``probe.classes_``)."""
    value = np.asarray(value)
    if multi_label:
        return np.asarray(probe.classes_)[value.astype(bool)].tolist()
    return [int(value)]
