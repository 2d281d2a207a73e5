"""Start each project's engine once per process, in the background, with progress to show.

The first start of a project ingests ``sample_data/images`` when the project does not
exist yet, embeds every image not embedded yet, then builds the engine. The app shows
:class:`Startup` while that runs and labels once it is ``ready``.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.embedding_store import EmbeddingStore
from core.extract import ExtractConfig
from services.config import Settings
from services.database import Database
from services.embeddings import embed
from services.engine import ProjectEngine
from services.errors import UserError
from services.ingest import ingest
from storage import item_queries, queries

log = logging.getLogger(__name__)
SAMPLE_IMAGES = Path(__file__).resolve().parents[1] / "sample_data" / "images"

# Images are decoded in the server process: DataLoader workers forked from a threaded
# web server are not worth the risk for the small images this usually sees.
APP_EXTRACT_CONFIG = ExtractConfig(num_workers=0)


@dataclass
class Startup:
    """Where a project's engine start stands.

    ``phase`` is ``ingesting``, ``embedding``, ``loading``, ``ready`` or ``failed``;
    ``done`` of ``total`` counts the phase's work; ``error`` says what failed and how to fix it.
    """

    project: str
    phase: str = "loading"
    done: int = 0
    total: int = 0
    error: str | None = None
    engine: ProjectEngine | None = None


_startups: dict[tuple[str, str, str], Startup] = {}
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


def running_engines() -> list[ProjectEngine]:
    with _lock:
        return [s.engine for s in _startups.values() if s.engine is not None]


def close_engines() -> None:
    """Stop every engine's retrain loop and forget them (tests, shutdown)."""
    with _lock:
        engines = [s.engine for s in _startups.values() if s.engine is not None]
        _startups.clear()
    for engine in engines:
        engine.close()


def _start(db: Database, settings: Settings, startup: Startup) -> None:
    def progress(done: int, total: int) -> None:
        startup.done, startup.total = done, total

    try:
        with db.reading() as session:
            exists = queries.find_project(session, startup.project) is not None
        if not exists:
            startup.phase = "ingesting"
            ingest(db, settings, source=SAMPLE_IMAGES, project=startup.project, on_progress=progress)
        startup.phase, startup.done, startup.total = "embedding", 0, 0
        report = embed(db, settings, project=startup.project, backbone=settings.backbone, config=APP_EXTRACT_CONFIG,
                       on_progress=progress)
        startup.phase = "loading"
        startup.engine = build_engine(db, settings, startup.project, report.folder)
        startup.phase = "ready"
    except UserError as error:
        startup.error, startup.phase = str(error), "failed"
    except Exception as error:  # shown in the app; the traceback goes to the server log
        log.exception("engine start failed")
        startup.error, startup.phase = f"{type(error).__name__}: {error}", "failed"


def build_engine(db: Database, settings: Settings, project_name: str, folder: Path) -> ProjectEngine:
    """A :class:`ProjectEngine` over the project's usable items embedded in ``folder`` (the
    embedding store of one backbone), vectors L2-normalised again.

    Raises
    ------
    UserError
        None of the project's images is embedded there.
    """
    with db.reading() as session:
        project = queries.find_project(session, project_name)
        paths = dict(item_queries.ok_item_paths(session, project.id))
    ids, vectors = EmbeddingStore.open_for_reading(folder).done()
    keep = np.isin(ids, np.fromiter(paths, np.int64, len(paths)))
    ids, vectors = ids[keep], vectors[keep]
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True).clip(1e-12)  # float16 storage rounds the norm
    if len(ids) == 0:
        raise UserError(f"project {project_name!r} has no embedded images; embed them with "
                        f"`python -m app.cli embed --project {project_name}`")
    return ProjectEngine(db, settings, project=project, backbone_key=folder.name, item_ids=ids,
                         paths=[paths[i] for i in ids.tolist()], embeddings=vectors)
