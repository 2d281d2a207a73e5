"""Start each project's engine once per process, in the background, with progress to show.

The first start of a project embeds up to ``COLD_START_IMAGES`` of the images not embedded yet
(spread over the folders), builds the engine and starts asking; the rest join the pool in the
background through :func:`grow_pool`, as images ingested later do. The app shows
:class:`Startup` while that runs and labels once it is ``ready``. A project that does not
exist yet fails with what to do: it is never filled with the sample images
unasked, which would also pin its root to ``sample_data/`` (``make run`` ingests them into a
new project when asked, see the Makefile).

The project's backbone comes from :func:`services.features.project_backbone.project_backbone`. When it
is switched, :func:`grow_pool` re-embeds every image with the new one in the background while
the current engine keeps serving, then swaps in an engine over the new features; labels live
in the database, apart from any backbone, so every one is kept.

Images ingested while the engine runs join its pool without a restart: :func:`grow_pool`
(called on page runs, at most every few seconds) compares one cheap count with the pool's,
and when images came or went it embeds the new ones and builds a fresh engine in the
background, swaps it in and retires the old one after a grace period. Labels are safe
across the swap: every label is committed to the database before it is acknowledged, the
fresh engine loads labels from the database and hears of every label committed after
(:mod:`services.engine.registry`), whichever engine the labeling session still holds.
The same check has the serving engine take what other processes committed (labels and
classes: :meth:`ProjectEngine.sync`).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.features.embedding_store import EmbeddingStore
from core.features.extract import ExtractConfig
from services.config import Settings
from services.database import Database
from services.engine.pool import Pool
from services.engine.project_engine import ProjectEngine
from services.errors import UserError
from services.features.embeddings import embed
from services.features.project_backbone import project_backbone
from services.projects import get_project
from storage.items import item_queries

log = logging.getLogger(__name__)

# Images are decoded in the server process: DataLoader workers forked from a threaded
# web server are not worth the risk for the small images this usually sees.
APP_EXTRACT_CONFIG = ExtractConfig(num_workers=0)
# While another writer (a CLI command, another page) fills the embeddings, the app waits this long.
APP_STORE_WAIT_SECONDS = 600.0
# A new project starts asking once this many of its images are embedded (spread over its folders:
# enough for the cold-start picks); the rest join the pool in the background, as new images do.
COLD_START_IMAGES = 300


@dataclass
class Startup:
    """Where a project's engine start stands.

    ``phase`` is ``embedding``, ``loading``, ``ready`` or ``failed``;
    ``done`` of ``total`` counts the phase's work; ``error`` says what failed and how to fix it.
    ``backbone`` names the backbone whose features the engine uses (or is being built on).
    Once ready: ``pool`` is the (count, largest id) of ingested images the engine was built
    over; ``growing`` is None when up to date, else how many images are being added (fewer
    than zero when some left); ``switching`` names the backbone being switched to, with
    ``growth_done`` of ``growth_total`` images embedded; ``growth_error`` says why the last
    growth failed.
    """

    project: str
    phase: str = "loading"
    done: int = 0
    total: int = 0
    error: str | None = None
    engine: ProjectEngine | None = None
    backbone: str = ""
    pool: tuple[int, int] = (0, 0)
    growing: int | None = None
    switching: str | None = None
    growth_done: int = 0
    growth_total: int = 0
    growth_error: str | None = None
    next_check: float = 0.0  # time.monotonic() of the next growth check
    rebuild: bool = False  # build afresh at the next check even if the pool is unchanged (refresh_engine)


@dataclass(frozen=True)
class GrowthConfig:
    """How often :func:`grow_pool` counts the images; how long a replaced engine keeps serving
    the labeling sessions that still hold it; how long to wait after a failed growth."""

    check_seconds: float = 5.0
    retire_seconds: float = 120.0
    retry_seconds: float = 60.0


_startups: dict[tuple[str, str, str | None], Startup] = {}
_retiring: list[ProjectEngine] = []  # replaced engines still serving old labeling sessions
_lock = threading.Lock()


def start_engine(db: Database, settings: Settings, project: str | None = None) -> Startup:
    """The project's startup record; the first call starts the work in a background thread."""
    name = project or settings.project
    key = (str(settings.database_url), name, settings.backbone)
    with _lock:
        startup = _startups.get(key)
        if startup is None or startup.phase == "failed":
            startup = _startups[key] = Startup(project=name)
            threading.Thread(target=_start, args=(db, settings, startup), name=f"start-{name}", daemon=True).start()
        return startup


def close_engines() -> None:
    """Stop every engine's retrain loop and forget them (tests, shutdown)."""
    with _lock:
        engines = [s.engine for s in _startups.values() if s.engine is not None] + _retiring
        _startups.clear()
        _retiring.clear()
    for engine in engines:
        engine.close()


def _start(db: Database, settings: Settings, startup: Startup) -> None:
    def progress(done: int, total: int) -> None:
        startup.done, startup.total = done, total

    try:
        try:
            get_project(db, startup.project)
        except UserError as error:
            raise UserError(
                f"{error}; or, to try banana on the sample images: BANANA_PROJECT={startup.project} make run SAMPLE=1"
            ) from None
        startup.backbone = project_backbone(db, settings, startup.project).name
        startup.phase, startup.done, startup.total = "embedding", 0, 0
        pool = _pool_signature(db, startup.project)  # counted first: images ingested later grow the pool
        report = embed(
            db,
            settings,
            project=startup.project,
            backbone=startup.backbone,
            config=APP_EXTRACT_CONFIG,
            on_progress=progress,
            wait_seconds=APP_STORE_WAIT_SECONDS,
            at_most=COLD_START_IMAGES,
        )
        startup.phase = "loading"
        startup.engine = build_engine(db, settings, startup.project, report.folder)
        # Short by the images left out: the first grow_pool check embeds them and swaps the engine in.
        startup.pool = (pool[0] - report.remaining, pool[1])
        startup.next_check = 0.0
        startup.phase = "ready"
    except UserError as error:
        startup.error, startup.phase = str(error), "failed"
    except Exception as error:  # shown in the app; the traceback goes to the server log
        log.exception("engine start failed")
        startup.error, startup.phase = f"{type(error).__name__}: {error}", "failed"


def grow_pool(
    db: Database, settings: Settings, project: str | None = None, *, config: GrowthConfig = GrowthConfig()
) -> Startup:
    """The project's startup record; once it is ready, and at most every ``check_seconds``,
    count the project's ingested images and read its backbone, and when either changed since the
    engine was built, start growing its pool in the background (``growing`` says so until the
    swap is done; ``switching`` names a new backbone)."""
    startup = start_engine(db, settings, project)
    now = time.monotonic()
    with _lock:
        if startup.phase != "ready" or now < startup.next_check:
            return startup
        startup.next_check = now + config.check_seconds
        engine = startup.engine
    if engine is not None:  # ready: it has one
        engine.sync()  # labels and classes other processes committed
    if startup.growing is not None:
        return startup
    pool = _pool_signature(db, startup.project)
    backbone = project_backbone(db, settings, startup.project).name
    with _lock:
        switch = backbone != startup.backbone
        if (pool == startup.pool and not startup.rebuild and not switch) or startup.growing is not None:
            return startup
        startup.growing = pool[0] - startup.pool[0]
        startup.switching = backbone if switch else None
        startup.growth_done = startup.growth_total = 0
        startup.rebuild = False  # before the fresh engine reads the database: a later request builds again
    threading.Thread(
        target=_grow, args=(db, settings, startup, pool, backbone, config), name=f"grow-{startup.project}", daemon=True
    ).start()
    return startup


def refresh_engine(settings: Settings, project: str | None = None) -> None:
    """Have :func:`grow_pool`'s next call build the project's engines afresh from the database
    and swap them in, as when images are added: for a change a running engine does not take in
    (the project's labeling mode). Until the swap the current engine keeps serving."""
    name = project or settings.project
    with _lock:
        for (url, project_name, _backbone), startup in _startups.items():
            if url == str(settings.database_url) and project_name == name:
                startup.rebuild, startup.next_check = True, 0.0


def _pool_signature(db: Database, project_name: str) -> tuple[int, int]:
    project_id = get_project(db, project_name).id
    with db.reading() as session:
        return item_queries.ok_items_signature(session, project_id)


def _grow(
    db: Database, settings: Settings, startup: Startup, pool: tuple[int, int], backbone: str, config: GrowthConfig
) -> None:
    """Embed the new images (all of them for a new backbone), build a fresh engine over the grown
    pool, swap it in; the old one keeps serving the labeling sessions that hold it for
    ``retire_seconds``, then closes."""

    def progress(done: int, total: int) -> None:
        startup.growth_done, startup.growth_total = done, total

    try:
        report = embed(
            db,
            settings,
            project=startup.project,
            backbone=backbone,
            config=APP_EXTRACT_CONFIG,
            on_progress=progress,
            wait_seconds=APP_STORE_WAIT_SECONDS,
        )
        engine = build_engine(db, settings, startup.project, report.folder)
    except Exception as error:  # the current engine keeps serving; shown in the app, retried later
        log.exception("adding new images to project %r failed", startup.project)
        with _lock:
            startup.growth_error = str(error) if isinstance(error, UserError) else f"{type(error).__name__}: {error}"
            startup.next_check = time.monotonic() + config.retry_seconds
            startup.growing = startup.switching = None
            startup.rebuild = True  # retried even when the pool is unchanged (a refresh_engine request)
        return
    with _lock:
        registered = any(s is startup for s in _startups.values())
        if registered:
            old = startup.engine
            startup.engine, startup.pool, startup.backbone, startup.growth_error = engine, pool, backbone, None
            startup.growing = startup.switching = None
            if old is not None:
                _retiring.append(old)
        else:
            startup.growing = None
    if not registered:  # the engines were closed meanwhile
        engine.close()
        return
    retire = threading.Timer(config.retire_seconds, _retire, args=(old,))
    retire.daemon = True
    retire.start()


def _retire(old: ProjectEngine) -> None:
    with _lock:
        if not any(engine is old for engine in _retiring):
            return  # closed by close_engines
        _retiring[:] = [engine for engine in _retiring if engine is not old]
    try:
        old.close()  # labels still given through it reach its successor (services.engine.registry)
    except Exception:
        log.exception("retiring a replaced engine of project %r failed", old.project_name)


def build_engine(db: Database, settings: Settings, project_name: str, folder: Path) -> ProjectEngine:
    """A :class:`ProjectEngine` over the project's usable items embedded in ``folder`` (the
    embedding store of one backbone), vectors L2-normalised again.

    Raises
    ------
    UserError
        None of the project's images is embedded there.
    """
    project = get_project(db, project_name)
    with db.reading() as session:
        paths = dict(item_queries.ok_item_paths(session, project.id))
    ids, vectors = EmbeddingStore.open_for_reading(folder).done()
    keep = np.isin(ids, np.fromiter(paths, np.int64, len(paths)))
    ids, vectors = ids[keep], vectors[keep]
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True).clip(1e-12)  # float16 storage rounds the norm
    if len(ids) == 0:
        raise UserError(
            f"project {project_name!r} has no embedded images; embed them with "
            f"`python -m app.cli embed --project {project_name}`"
        )
    pool = Pool.of(
        backbone_key=folder.name,
        item_ids=ids,
        paths=[paths[i] for i in ids.tolist()],
        embeddings=vectors,
        root=Path(project.root_path),
    )
    return ProjectEngine(db, settings, project=project, pool=pool)
