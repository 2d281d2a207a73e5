"""Embeddings of a project's images per backbone, their similarity index, search and export.

Files live under ``BANANA_HOME/embeddings/project-<id>/<backbone slug>-<weights sha256[:12]>/``:
the embedding store (``core.features.embedding_store``) and ``index.faiss``. Other weights get another
folder, so embeddings of two backbones never mix.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from core.features.backbones import BackboneError, build_backbone, identify_backbone
from core.features.embedding_store import EmbeddingStore, StoreBusy
from core.features.extract import ExtractConfig, extract_embeddings
from core.similarity.index import SimilarityIndex
from services.config import Settings
from services.database import Database
from services.disk_full import disk_full_error, is_disk_full
from services.errors import UserError
from services.features.project_backbone import project_backbone
from services.output_files import csv_cell, replaced_atomically
from services.projects import get_project
from storage.items import item_queries
from storage.models import Project

ProgressCallback = Callable[[int, int], None]
STORE_DTYPE = "float16"
INDEX_FILE = "index.faiss"


@dataclass
class EmbedReport:
    """What one ``embed`` run did.

    Attributes
    ----------
    backbone : str
    folder : Path
        Where this backbone's embeddings of the project live.
    embedded, already_done : int
        Items embedded now, and items embedded by earlier runs.
    errors : list of str
        One message per image that could not be embedded, naming the file and the fix.
    index_kind : str
        ``exact`` or ``ivf``.
    index_size : int
    remaining : int
        Images still to embed after a run limited by ``at_most``.
    """

    backbone: str
    folder: Path
    embedded: int = 0
    already_done: int = 0
    errors: list[str] = field(default_factory=list)
    index_kind: str = ""
    index_size: int = 0
    remaining: int = 0


@dataclass(frozen=True)
class Neighbour:
    """A similar item: id, path relative to the project root, cosine similarity."""

    item_id: int
    path: str
    score: float


@dataclass(frozen=True)
class ExportReport:
    """Files written by ``export_embeddings`` and how many rows they hold."""

    vectors: Path
    table: Path
    rows: int
    not_embedded: int


def embeddings_folder(settings: Settings, project: Project, backbone_key: str) -> Path:
    """Folder of one backbone's embeddings of one project."""
    return settings.home / "embeddings" / f"project-{project.id}" / backbone_key


def embed(
    db: Database,
    settings: Settings,
    *,
    project: str,
    backbone: str | None = None,
    config: ExtractConfig = ExtractConfig(),
    show_progress: bool = False,
    on_progress: ProgressCallback | None = None,
    wait_seconds: float = 0.0,
    on_wait: Callable[[Path], None] | None = None,
    at_most: int | None = None,
) -> EmbedReport:
    """Embed every ingested image of a project not embedded yet, then update the index.

    A run that was killed resumes where it stopped; new items are added incrementally.

    Parameters
    ----------
    db : Database
    settings : Settings
    project : str
    backbone : str or None
        Backbone name, see ``core.features.backbones``; None: the project's (``services.features.project_backbone``).
    config : ExtractConfig
        Batch size, workers, device and precision.
    show_progress : bool
        Draw a progress bar on stderr.
    on_progress : callable, optional
        Called as ``on_progress(finished, total)`` after each batch.
    wait_seconds : float
        How long to wait while another process (the app adding new images, another command)
        writes these embeddings; 0 fails at once. The wait ends as soon as it finishes, and
        this run then embeds only what is still missing.
    on_wait : callable, optional
        Called as ``on_wait(folder)`` once, when this run starts waiting.
    at_most : int, optional
        Embed no more than this many of the images still missing, spread evenly over them (every
        k-th in path order, so that every class folder is represented); ``report.remaining`` says
        how many are left. None: all of them.

    Returns
    -------
    EmbedReport

    Raises
    ------
    UserError
        Unknown project or backbone, missing weights, a busy store, an unavailable device, a full
        disk (naming where to free space; the rows written before stay).
    """
    found = get_project(db, project)
    with db.reading() as session:
        items = item_queries.ok_item_paths(session, found.id)
    model = _backbone(backbone or project_backbone(db, settings, project).name)
    folder = embeddings_folder(settings, found, model.identity.key)
    report = EmbedReport(backbone=model.name, folder=folder)
    root = Path(found.root_path)
    waiting = (lambda: on_wait(folder)) if on_wait is not None else None
    try:
        store = _open_store(folder, model, wait_seconds, waiting)
        with store, tqdm(total=0, unit="image", disable=not show_progress) as bar:

            def progress(finished: int, total: int) -> None:
                bar.total, bar.n = total, finished
                bar.refresh()
                if on_progress is not None:
                    on_progress(finished, total)

            if at_most is not None:
                done = set(store.ids[store.done_mask()].tolist())
                missing = [(item_id, path) for item_id, path in items if item_id not in done]
                stride = max(1, -(-len(missing) // max(at_most, 1)))  # ceiling division
                chosen = missing[::stride][:at_most]
                report.remaining = len(missing) - len(chosen)
                items = chosen
            try:
                result = extract_embeddings(
                    model,
                    store,
                    [item_id for item_id, _ in items],
                    [str(root / path) for _, path in items],
                    config=config,
                    progress=progress,
                )
            except ValueError as error:
                raise UserError(str(error)) from None
            index = _update_index(folder)
    except OSError as error:
        if is_disk_full(error):  # rows written before stay marked done; a rerun embeds the rest
            raise disk_full_error(folder, error, rerun="embed") from None
        raise
    report.embedded, report.already_done = result.embedded, result.already_done
    report.errors = [failure.message for failure in result.failures]
    report.index_kind, report.index_size = index.kind_, len(index)
    return report


def similar(
    db: Database, settings: Settings, *, project: str, backbone: str | None, item: str, k: int = 20
) -> tuple[Neighbour, list[Neighbour]]:
    """The ``k`` items most similar to ``item``, by cosine similarity of their embeddings.

    Parameters
    ----------
    item : str
        An item id, or the image's path (relative to the project root, or a path to the file).

    Returns
    -------
    query : Neighbour
        The item itself (score 1).
    neighbours : list of Neighbour
        Best first, the item itself left out.
    """
    if k < 1:
        raise UserError(f"-k must be at least 1, got {k}")
    found = get_project(db, project)
    identity = _identity(backbone or project_backbone(db, settings, project).name)
    folder = embeddings_folder(settings, found, identity.key)
    store, index = _open_for_reading(folder, identity.name)
    item_id, item_path = _resolve_item(db, found, item)
    rows = np.flatnonzero(store.ids == item_id)
    if len(rows) == 0 or not store.done_mask()[rows[0]]:
        raise UserError(
            f"item {item_id} ({item_path}) has no {identity.name} embedding; run "
            f"`python -m app.cli embed --backbone {identity.name}` (its file may have failed to decode)"
        )
    query = np.asarray(store.vectors()[rows[0]], dtype=np.float32)[None]
    scores, ids = index.search(query, k + 1)
    hits = [(int(i), float(s)) for i, s in zip(ids[0], scores[0]) if i != -1 and i != item_id][:k]
    with db.reading() as session:
        paths = item_queries.paths_by_id(session, found.id, [i for i, _ in hits])
    return Neighbour(item_id, item_path, 1.0), [Neighbour(i, paths.get(i, "?"), s) for i, s in hits]


def export_embeddings(
    db: Database, settings: Settings, *, project: str, backbone: str | None, out: Path
) -> ExportReport:
    """Write embedded items' vectors as float32 ``.npy`` in item-id order, and a CSV of ids and paths beside it.

    The CSV (``out`` with suffix ``.csv``) has columns ``row,item_id,path``; row i of the
    array is the item in CSV row i. Paths are relative to the project root; one a spreadsheet
    would run as a formula gets a ``'`` in front (:func:`services.output_files.csv_cell`). The two
    files are written whole or not at all (:func:`services.output_files.replaced_atomically`).
    """
    out = Path(out)
    if out.suffix != ".npy":
        raise UserError(f"--out {out} must end in .npy")
    found = get_project(db, project)
    identity = _identity(backbone or project_backbone(db, settings, project).name)
    store, _ = _open_for_reading(embeddings_folder(settings, found, identity.key), identity.name)
    ids, vectors = store.done()
    order = np.argsort(ids)
    ids, vectors = ids[order], vectors[order]
    with db.reading() as session:
        paths = dict(item_queries.ok_item_paths(session, found.id))
    table = out.with_suffix(".csv")
    # Both are written before either replaces an older export, so a failure (a full disk) leaves
    # the older pair as it was rather than new vectors beside an old table.
    with replaced_atomically(out) as vectors_file:
        with open(vectors_file, "wb") as handle:
            np.save(handle, vectors)
        with replaced_atomically(table) as table_file, open(table_file, "w", newline="", encoding="utf-8") as handle:
            _write_table(handle, ids, paths)
    return ExportReport(vectors=out, table=table, rows=len(ids), not_embedded=len(set(paths) - set(ids.tolist())))


def _backbone(name: str):
    try:
        return build_backbone(name)
    except BackboneError as error:
        raise UserError(str(error)) from None


def _identity(name: str):
    try:
        return identify_backbone(name)
    except BackboneError as error:
        raise UserError(str(error)) from None


def _open_store(folder: Path, model, wait_seconds: float, on_wait) -> EmbeddingStore:
    try:
        return EmbeddingStore.open_for_writing(
            folder,
            backbone=model.describe(),
            dim=model.embed_dim,
            dtype=STORE_DTYPE,
            wait_seconds=wait_seconds,
            on_wait=on_wait,
        )
    except (StoreBusy, ValueError) as error:
        raise UserError(str(error)) from None


def _open_for_reading(folder: Path, backbone: str) -> tuple[EmbeddingStore, SimilarityIndex]:
    if not (folder / INDEX_FILE).exists():
        raise UserError(
            f"no {backbone} embeddings for this project yet (looked in {folder}); "
            f"run `python -m app.cli embed --backbone {backbone}` first"
        )
    return EmbeddingStore.open_for_reading(folder), SimilarityIndex.load(folder / INDEX_FILE)


def _update_index(folder: Path) -> SimilarityIndex:
    """Bring ``index.faiss`` up to date with the store: add new rows, or build it the first time."""
    ids, vectors = EmbeddingStore.open_for_reading(folder).done()
    path = folder / INDEX_FILE
    if not path.exists():
        index = SimilarityIndex().fit(vectors, ids)
    else:
        index = SimilarityIndex.load(path)
        new = ~np.isin(ids, index.ids_)
        if not new.any():
            return index
        index.add(vectors[new], ids[new])
    index.save(path)
    return index


def _resolve_item(db: Database, project: Project, item: str) -> tuple[int, str]:
    """An item id, or a path (relative to the root, or to a file under it), to ``(id, relative path)``."""
    with db.reading() as session:
        if item.isdigit():
            paths = item_queries.paths_by_id(session, project.id, [int(item)])
            if int(item) not in paths:
                raise UserError(f"project {project.name!r} has no item {item}")
            return int(item), paths[int(item)]
        root = Path(project.root_path)
        candidate = Path(os.path.realpath(item)) if Path(item).exists() else root / item
        relative = candidate.relative_to(root).as_posix() if candidate.is_relative_to(root) else item
        item_id = item_queries.item_id_by_path(session, project.id, relative)
    if item_id is None:
        raise UserError(
            f"no item of project {project.name!r} has path {relative!r} (root {root}); "
            "give an item id or a path under the root"
        )
    return item_id, relative


def _write_table(handle, ids: np.ndarray, paths: dict[int, str]) -> None:
    writer = csv.writer(handle)
    writer.writerow(["row", "item_id", "path"])
    for row, item_id in enumerate(ids.tolist()):
        writer.writerow([row, item_id, csv_cell(paths.get(item_id, ""))])
