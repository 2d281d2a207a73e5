"""Export a project's current labels: CSV, JSON, COCO-style JSON, Label Studio tasks, ImageFolder."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from core.transfer.class_folder import CLASS_NAMES_FILE, safe_names
from services.database import Database
from services.errors import UserError
from services.features.item_images import inside_root
from services.labeling import class_names
from services.output_files import csv_cell, out_of_room, write_failed
from services.projects import get_project
from services.transfer import label_studio
from storage.labels import label_queries

CSV_COLUMNS = ("path", "labels", "annotator", "labeled_at", "source")
LABEL_SEPARATOR = class_names.SEPARATOR


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
    images = [
        LabeledImage(
            item_id,
            items[item_id].path,
            [names[c] for c in event.class_ids],
            event.annotator,
            event.created_at.isoformat(),
            event.source.value,
        )
        for item_id, event in newest.items()
        if event.class_ids
    ]
    return sorted(images, key=lambda image: image.path)


def to_csv(images: list[LabeledImage]) -> str:
    """CSV with :data:`CSV_COLUMNS`; a cell that a spreadsheet would run as a formula gets a ``'``
    in front (see :func:`services.output_files.csv_cell`), which :func:`parse_csv` drops again."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(CSV_COLUMNS)
    for image in images:
        writer.writerow(
            [
                csv_cell(cell)
                for cell in (
                    image.path,
                    LABEL_SEPARATOR.join(image.labels),
                    image.annotator or "",
                    image.labeled_at,
                    image.source,
                )
            ]
        )
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
    annotations = [
        {"id": n, "image_id": image.item_id, "category_id": category[name]}
        for n, (image, name) in enumerate(((i, name) for i in images for name in i.labels), start=1)
    ]
    return json.dumps(
        {
            "info": {"description": f"banana project {project.name}"},
            "images": [
                {
                    "id": image.item_id,
                    "file_name": image.path,
                    "width": items[image.item_id].width,
                    "height": items[image.item_id].height,
                }
                for image in images
            ],
            "categories": [{"id": c.id, "name": c.name} for c in classes],
            "annotations": annotations,
        },
        indent=1,
    )


def to_label_studio(
    db: Database, project_name: str, images: list[LabeledImage], *, image_prefix: str | None = None
) -> str:
    """Label Studio import JSON (see :mod:`services.transfer.label_studio`); ``image_prefix`` defaults to
    local-files URLs of the project root."""
    prefix = image_prefix
    if prefix is None:
        prefix = label_studio.default_image_prefix(get_project(db, project_name).root_path)
    return label_studio.to_tasks([(image.path, image.labels) for image in images], image_prefix=prefix)


def label_studio_config(db: Database, project_name: str) -> str:
    """The Label Studio labeling config for the project's active classes."""
    project = get_project(db, project_name)
    with db.reading() as session:
        names = [c.name for c in label_queries.label_classes(session, project.id)]
    return label_studio.labeling_config(names, multi_label=project.multi_label)


FILE_MODES = ("copy", "hardlink", "symlink")


def export_image_folder(
    db: Database, project_name: str, images: list[LabeledImage], out: Path, *, files: str = "copy"
) -> int:
    """Copy, hard-link or symlink (``files``) each labeled image into ``out/<class>/``; return the files written.

    Folder and file names (the image's path, ``/`` included) are percent-encoded so that they are
    safe and never collide (:func:`core.transfer.class_folder.safe_names`); ``out/.classes.json`` maps each
    folder to its class name. An image with several classes (multi-label) is written once under
    each. The tree is written next to ``out`` and moved into place when complete: an error (a full
    disk) leaves no partial export behind.
    """
    if files not in FILE_MODES:
        raise UserError(f"unknown file mode {files!r}; choose one of {', '.join(FILE_MODES)}")
    project = get_project(db, project_name)
    root, out = Path(project.root_path), Path(out)
    if out.exists() and not out.is_dir():
        raise UserError(f"{out} is a file; choose a new or empty folder")
    if out.exists() and any(out.iterdir()):
        raise UserError(f"{out} is not empty; choose a new or empty folder")
    places: dict[str, Callable[[Path, Path], object]] = {
        "copy": shutil.copy2,
        "hardlink": os.link,
        "symlink": os.symlink,
    }
    place = places[files]
    # Every source is checked before anything is written: a file swapped for a link out of the
    # root after ingest must not be copied into an export.
    sources = {image.path: inside_root(root, image.path) for image in images}
    folders = safe_names(sorted({name for image in images for name in image.labels}))
    file_names = safe_names((image.path for image in images), keep_suffix=True)
    staging = out.with_name(f".{out.name}.{uuid.uuid4().hex[:8]}.partial")
    target = staging
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        staging.mkdir()
        for folder in folders.values():
            target = staging / folder
            target.mkdir()
        written = 0
        for image in images:
            for name in image.labels:
                target = staging / folders[name] / file_names[image.path]
                place(sources[image.path], target)
                written += 1
        target = staging / CLASS_NAMES_FILE
        target.write_text(
            json.dumps(
                {folder: name for name, folder in folders.items()}, ensure_ascii=False, indent=1, sort_keys=True
            ),
            encoding="utf-8",
        )
        target = staging
        os.replace(staging, out)  # onto an empty folder too
    except BaseException as error:
        shutil.rmtree(staging, ignore_errors=True)
        if not isinstance(error, OSError):
            raise
        shown = out / target.relative_to(staging)
        hint = (
            " Hard links need the same file system as the images (use copies), symbolic links a file system "
            "that has them."
            if files != "copy" and not out_of_room(error)
            else ""
        )
        raise UserError(write_failed(shown, error) + hint) from None
    return written


# ----- import ----------------------------------------------------------------------------
