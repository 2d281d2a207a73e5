"""Export a project's current labels (CSV, JSON, COCO-style JSON, ImageFolder) and import labels from CSV."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

from services.database import Database
from services.errors import UserError
from services.labels import append_annotation
from services.projects import get_project
from storage import label_queries, queries
from storage.models import AnnotationSource

CSV_COLUMNS = ("path", "labels", "annotator", "labeled_at", "source")
LABEL_SEPARATOR = ";"


@dataclass(frozen=True)
class LabeledImage:
    """An image's current label; ``path`` is relative to the project root."""

    item_id: int
    path: str
    labels: list[str]
    annotator: str | None
    labeled_at: str
    source: str


def labeled_images(db: Database, project_name: str) -> list[LabeledImage]:
    """Every image whose newest annotation names a class, by path."""
    project = get_project(db, project_name)
    with db.reading() as session:
        names = {c.id: c.name for c in label_queries.label_classes(session, project.id, include_archived=True)}
        newest = {event.item_id: event for event in label_queries.annotation_events(session, project.id)}
        items = label_queries.items_by_id(session, project.id, [i for i, e in newest.items() if e.class_ids])
    images = [LabeledImage(item_id, items[item_id].path, [names[c] for c in event.class_ids], event.annotator,
                           event.created_at.isoformat(), event.source.value)
              for item_id, event in newest.items() if event.class_ids]
    return sorted(images, key=lambda image: image.path)


def to_csv(images: list[LabeledImage]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(CSV_COLUMNS)
    for image in images:
        writer.writerow([image.path, LABEL_SEPARATOR.join(image.labels), image.annotator or "", image.labeled_at,
                         image.source])
    return buffer.getvalue()


def to_json(images: list[LabeledImage]) -> str:
    return json.dumps([{k: v for k, v in asdict(image).items() if k != "item_id"} for image in images], indent=1)


def to_coco(db: Database, project_name: str, images: list[LabeledImage]) -> str:
    """COCO-style classification JSON: ``images``, ``categories``, and one annotation per (image, class)."""
    project = get_project(db, project_name)
    with db.reading() as session:
        classes = label_queries.label_classes(session, project.id, include_archived=True)
        items = label_queries.items_by_id(session, project.id, [image.item_id for image in images])
    category = {c.name: c.id for c in classes}
    annotations = [{"id": n, "image_id": image.item_id, "category_id": category[name]}
                   for n, (image, name) in enumerate(((i, name) for i in images for name in i.labels), start=1)]
    return json.dumps({
        "info": {"description": f"banana project {project.name}"},
        "images": [{"id": image.item_id, "file_name": image.path, "width": items[image.item_id].width,
                    "height": items[image.item_id].height} for image in images],
        "categories": [{"id": c.id, "name": c.name} for c in classes],
        "annotations": annotations,
    }, indent=1)


def export_image_folder(db: Database, project_name: str, images: list[LabeledImage], out: Path, *,
                        link: bool) -> int:
    """Copy (or symlink) each labeled image into ``out/<class>/``; return the files written.

    File names are the image's path with ``/`` turned into ``__``, so names never collide.
    """
    project = get_project(db, project_name)
    root, out = Path(project.root_path), Path(out)
    if out.exists() and any(out.iterdir()):
        raise UserError(f"{out} is not empty; choose a new or empty folder")
    written = 0
    for image in images:
        for name in image.labels:
            target = out / _folder_name(name) / image.path.replace("/", "__")
            target.parent.mkdir(parents=True, exist_ok=True)
            if link:
                os.symlink(root / image.path, target)
            else:
                shutil.copy2(root / image.path, target)
            written += 1
    return written


def _folder_name(class_name: str) -> str:
    """A class name as one safe path component."""
    safe = re.sub(r"[/\\\0]", "_", class_name).strip()
    return "_" + safe if safe in ("", ".", "..") or safe.startswith(".") else safe


@dataclass(frozen=True)
class ImportReport:
    imported: int
    unchanged: int
    unknown_paths: list[str]
    created_classes: list[str]


def import_csv(db: Database, project_name: str, text: str, *, create_classes: bool) -> ImportReport:
    """Import labels from CSV with columns ``path`` and ``labels`` (``;``-separated) in one transaction.

    Each row becomes an ``import`` annotation that supersedes the image's current one; rows
    whose label equals the current one are left alone. Unknown classes are created when
    ``create_classes``, else the import is refused.
    """
    project = get_project(db, project_name)
    reader = csv.DictReader(io.StringIO(text))
    if reader.fieldnames is None or not {"path", "labels"} <= set(reader.fieldnames):
        raise UserError("the CSV needs a header row with the columns path and labels")
    rows = [(row["path"].strip(), sorted({n.strip() for n in (row["labels"] or "").split(LABEL_SEPARATOR) if n.strip()}))
            for row in reader]
    wanted = sorted({name for _, names in rows for name in names})
    with db.writing() as session:
        known = queries.label_classes_by_name(session, project.id, wanted)
        missing = [name for name in wanted if name not in known]
        if missing and not create_classes:
            raise UserError(f"unknown classes: {', '.join(missing[:10])}; add them first or allow creating them")
        for name in missing:
            queries.add_label_class(session, project.id, name)
        ids = label_queries.item_ids_by_path(session, project.id, [path for path, _ in rows])
        current = label_queries.current_labels(session, project.id)
        names = {c.id: c.name for c in label_queries.label_classes(session, project.id, include_archived=True)}
        imported = unchanged = 0
        for path, classes in rows:
            if path not in ids or not classes:
                continue
            label = current.get(ids[path])
            if label is not None and sorted(names[c] for c in label.class_ids) == classes:
                unchanged += 1
                continue
            append_annotation(session, item_id=ids[path], class_names=classes, annotator=None,
                              source=AnnotationSource.IMPORT, duration_ms=None,
                              supersedes_id=label.annotation_id if label is not None else None)
            imported += 1
    unknown = [path for path, _ in rows if path not in ids]
    return ImportReport(imported=imported, unchanged=unchanged, unknown_paths=unknown, created_classes=missing)
