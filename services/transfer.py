"""Export a project's current labels (CSV, JSON, COCO-style JSON, Label Studio tasks, ImageFolder)
and import labels (CSV, Label Studio JSON export, COCO-style JSON)."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import shutil
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath

from sqlalchemy import select

from services import json_records, label_studio
from services.database import Database
from services.errors import UserError
from services.item_images import inside_root
from services.labels import append_annotation
from services.projects import get_project
from storage import item_queries, label_queries, queries
from storage.models import Annotation, AnnotationSource, Item, LabelClass, Project

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


def to_label_studio(db: Database, project_name: str, images: list[LabeledImage], *,
                    image_prefix: str | None = None) -> str:
    """Label Studio import JSON (see :mod:`services.label_studio`); ``image_prefix`` defaults to
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


def export_image_folder(db: Database, project_name: str, images: list[LabeledImage], out: Path, *,
                        files: str = "copy") -> int:
    """Copy, hard-link or symlink (``files``) each labeled image into ``out/<class>/``; return the files written.

    File names are the image's path with ``/`` turned into ``__``, so names never collide.
    An image with several classes (multi-label) is written once under each.
    """
    if files not in FILE_MODES:
        raise UserError(f"unknown file mode {files!r}; choose one of {', '.join(FILE_MODES)}")
    project = get_project(db, project_name)
    root, out = Path(project.root_path), Path(out)
    if out.exists() and any(out.iterdir()):
        raise UserError(f"{out} is not empty; choose a new or empty folder")
    place = {"copy": shutil.copy2, "hardlink": os.link, "symlink": os.symlink}[files]
    # Every source is checked before anything is written: a file swapped for a link out of the
    # root after ingest must not be copied into an export.
    sources = {image.path: inside_root(root, image.path) for image in images}
    written = 0
    for image in images:
        for name in image.labels:
            target = out / _folder_name(name) / image.path.replace("/", "__")
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                place(sources[image.path], target)
            except OSError as error:
                raise UserError(f"could not write {target}: {error.strerror}; hard links need the same file system "
                                "as the images (use copies), symbolic links a file system that has them") from None
            written += 1
    return written


def write_atomically(out: Path, text: str) -> None:
    """Write ``text`` to ``out`` whole or not at all (a temporary file, then a rename)."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    temporary = out.with_name(f".{out.name}.tmp")
    temporary.write_text(text, encoding="utf-8", newline="")
    os.replace(temporary, out)


def _folder_name(class_name: str) -> str:
    """A class name as one safe path component."""
    safe = re.sub(r"[/\\\0]", "_", class_name).strip()
    return "_" + safe if safe in ("", ".", "..") or safe.startswith(".") else safe


# ----- import ----------------------------------------------------------------------------

FORMATS = ("csv", "label-studio", "coco")
MAX_CLASS_NAME = 200  # the label_class.name column's length


@dataclass(frozen=True)
class ImportRow:
    """One label of an import file: the line its record starts on, the image's path as the file
    names it, its class names (sorted; empty: the record carries no label) and who labeled it."""

    line: int
    path: str
    labels: tuple[str, ...]
    annotator: str | None = None


@dataclass(frozen=True)
class UnknownPath:
    line: int
    path: str


@dataclass(frozen=True)
class AmbiguousPath:
    """A row naming an image uploaded to Label Studio whose file name ``name`` is the file name of
    ``candidates`` images of the project (say cat/4921.jpg and horse/4921.jpg): it is not applied."""

    line: int
    path: str
    name: str
    candidates: int

    @property
    def message(self) -> str:
        return (f"line {self.line}: {self.path} is an image uploaded to Label Studio, which keeps only its file name "
                f"{self.name!r}, and {self.candidates} images of the project have that name; skipped. Export from "
                "a Label Studio project whose images come from local-files storage (or banana's Label Studio "
                "tasks), or import a CSV with the images' full paths")


@dataclass(frozen=True)
class ImportReport:
    """What an import did: new annotations, rows already current, rows without a label,
    paths that are not images of the project (skipped), classes it created, and Label Studio
    uploads whose file name several images of the project share (skipped, see :class:`AmbiguousPath`)."""

    imported: int
    unchanged: int
    unlabeled: int
    unknown: list[UnknownPath]
    created_classes: list[str]
    ambiguous: list[AmbiguousPath] = field(default_factory=list)

    @property
    def unknown_paths(self) -> list[str]:
        return [u.path for u in self.unknown]


def guess_format(file_name: str, text: str) -> str:
    """``csv``, ``label-studio`` or ``coco``, from the extension, else from the content."""
    suffix = Path(file_name).suffix.lower()
    if suffix == ".csv":
        return "csv"
    start = text.lstrip()[:1]
    if start == "[":
        return "label-studio"
    if start == "{":
        return "coco"
    if suffix == ".json":
        raise UserError(f"{file_name}: a JSON import is a Label Studio export (a list of tasks) or a COCO file "
                        "(an object with images, categories and annotations); pass --format")
    return "csv"


def read_text(data: bytes, file_name: str) -> str:
    """UTF-8 text (a byte-order mark is dropped); bad bytes are a UserError naming the line."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        raise UserError(f"{file_name}, line {line}: not UTF-8 text; save the file as UTF-8") from None


def parse_import(text: str, *, fmt: str, file_name: str) -> list[ImportRow]:
    """Every record of an import file; the first malformed one is a UserError naming its line."""
    if fmt == "csv":
        return parse_csv(text, file_name)
    if fmt == "label-studio":
        return [ImportRow(task.line, task.path, task.labels) for task in label_studio.read_tasks(text, file_name)]
    if fmt == "coco":
        return parse_coco(text, file_name)
    raise UserError(f"unknown import format {fmt!r}; choose one of {', '.join(FORMATS)}")


def parse_csv(text: str, file_name: str) -> list[ImportRow]:
    """Rows of a CSV whose header names ``path`` and ``labels`` (``;``-separated); an
    ``annotator`` column, when present, names who labeled. Other columns are ignored."""
    reader = csv.reader(io.StringIO(text, newline=""))
    header, rows, end = None, [], 0
    try:
        for record in reader:
            line, end = end + 1, reader.line_num  # the record's first line; quoted fields may span lines
            if not record:
                continue
            if header is None:
                header = [name.strip() for name in record]
                if not {"path", "labels"} <= set(header):
                    raise UserError(f"{file_name}, line {line}: the first row must be a header naming the columns "
                                    f"path and labels (found {', '.join(header)}); add the line `path,labels` at the top")
                continue
            if len(record) != len(header):
                raise UserError(f"{file_name}, line {line}: {len(record)} fields, but the header has {len(header)}; "
                                "quote values that contain a comma, or add the missing fields")
            row = dict(zip(header, record))
            if not row["path"].strip():
                raise UserError(f"{file_name}, line {line}: the path is empty; give the image's path")
            rows.append(ImportRow(line, row["path"].strip(), _names(row["labels"].split(LABEL_SEPARATOR)),
                                  (row.get("annotator") or "").strip() or None))
    except csv.Error as error:
        raise UserError(f"{file_name}, line {reader.line_num}: {error}; fix the quoting there") from None
    if header is None:
        raise UserError(f"{file_name}, line 1: the file is empty; it needs a header row `path,labels`")
    return rows


def parse_coco(text: str, file_name: str) -> list[ImportRow]:
    """Images of a COCO-style classification file, each with the category names of its annotations."""
    coco = json_records.load(text, file_name)
    keys = ("images", "categories", "annotations")
    if not isinstance(coco, dict) or not all(isinstance(coco.get(key), list) for key in keys):
        raise UserError(f"{file_name}, line 1: a COCO file is an object with the lists images, categories and "
                        "annotations")

    def entries(key: str, fields: dict[str, type]):
        for line, entry in zip(json_records.array_lines(text, key), coco[key]):
            if not isinstance(entry, dict) or not all(isinstance(entry.get(f), t) for f, t in fields.items()):
                raise UserError(f"{file_name}, line {line}: each of {key} needs "
                                + " and ".join(f"{f} ({t.__name__})" for f, t in fields.items()))
            yield line, entry

    categories = {c["id"]: c["name"] for _, c in entries("categories", {"id": int, "name": str})}
    images = {i["id"]: (line, i["file_name"]) for line, i in entries("images", {"id": int, "file_name": str})}
    labels: dict[int, set[str]] = {}
    for line, a in entries("annotations", {"image_id": int, "category_id": int}):
        if a["image_id"] not in images or a["category_id"] not in categories:
            raise UserError(f"{file_name}, line {line}: the annotation names image {a['image_id']} and category "
                            f"{a['category_id']}; both must be listed in images and categories")
        labels.setdefault(a["image_id"], set()).add(categories[a["category_id"]])
    return [ImportRow(line, path, _names(labels.get(image_id, ()))) for image_id, (line, path) in images.items()]


def _names(names) -> tuple[str, ...]:
    return tuple(sorted({name.strip() for name in names if name.strip()}))


def import_labels(db: Database, project_name: str, rows: list[ImportRow], *, file_name: str, create_classes: bool,
                  annotator: str | None = None, importer: str | None = None) -> ImportReport:
    """Record ``rows`` as ``import`` annotations, all in one transaction.

    Every row is checked first; a row that cannot be recorded (two classes in a
    single-label project, an unknown class without ``create_classes``, an archived
    class, the same image twice with different labels) is a UserError naming its line,
    and nothing is written. Rows naming no image of the project are skipped and reported.
    An image whose current label equals the row's gets no new annotation, so importing a
    file twice changes nothing. ``annotator`` (else the row's own, else ``importer``: who
    imports the file) is recorded with each.
    """
    project = get_project(db, project_name)
    with db.writing() as session:
        ids = {path: item_id for item_id, path in item_queries.ok_item_paths(session, project.id)}
        wanted, unknown, ambiguous, unlabeled = _checked_rows(rows, ids, project, file_name)
        classes, missing = _checked_classes(session, project, wanted, file_name, create_classes)
        names = {c.id: name for name, c in classes.items()}
        current = label_queries.current_labels(session, project.id)
        changes = {path: row for path, row in wanted.items() if (label := current.get(ids[path])) is None
                   or tuple(sorted(names[c] for c in label.class_ids)) != row.labels}
        loaded = _load_into_session(session, [ids[path] for path in changes],  # noqa: F841 - kept for the identity map
                                    [current[ids[path]].annotation_id for path in changes if ids[path] in current])
        for path, row in changes.items():
            label = current.get(ids[path])
            append_annotation(session, item_id=ids[path], class_names=row.labels, annotator=annotator or row.annotator or importer,
                              source=AnnotationSource.IMPORT, duration_ms=None,
                              supersedes_id=label.annotation_id if label is not None else None)
    return ImportReport(imported=len(changes), unchanged=len(wanted) - len(changes), unlabeled=unlabeled,
                        unknown=unknown, created_classes=missing, ambiguous=ambiguous)


def _checked_rows(rows: list[ImportRow], ids: dict[str, int], project: Project,
                  file_name: str) -> tuple[dict[str, ImportRow], list[UnknownPath], list[AmbiguousPath], int]:
    """The row to record per item path, the rows naming no image of the project, those naming an
    upload whose file name several images share, and the count of rows without a label; a row
    that cannot be recorded is a UserError naming its line."""
    resolve = _path_resolver(set(ids))
    wanted, unknown, ambiguous, unlabeled = {}, [], [], 0
    for row in rows:
        where = f"{file_name}, line {row.line}"
        if len(row.labels) > 1 and not project.multi_label:
            raise UserError(f"{where}: {', '.join(row.labels)} are several classes, but project "
                            f"{project.name!r} is single-label; give one class per image")
        long = [name for name in row.labels if len(name) > MAX_CLASS_NAME]
        if long:
            raise UserError(f"{where}: class name {long[0][:40]!r}... is longer than {MAX_CLASS_NAME} characters")
        path = resolve(row.path)
        if path is None:
            unknown.append(UnknownPath(row.line, row.path))
        elif isinstance(path, SharedName):
            ambiguous.append(AmbiguousPath(row.line, row.path, path.name, len(path.paths)))
        elif not row.labels:
            unlabeled += 1
        elif path in wanted and wanted[path].labels != row.labels:
            raise UserError(f"{where}: {path} is labeled {', '.join(row.labels)}, but line {wanted[path].line} "
                            f"labels it {', '.join(wanted[path].labels)}; keep one of the two")
        else:
            wanted.setdefault(path, row)
    return wanted, unknown, ambiguous, unlabeled


def _checked_classes(session, project: Project, wanted: dict[str, ImportRow], file_name: str,
                     create_classes: bool) -> tuple[dict[str, LabelClass], list[str]]:
    """Every class of the project by name, with the missing ones the rows name added (when
    ``create_classes``), and those added; an unknown or archived class is a UserError naming its first line."""
    classes = {c.name: c for c in label_queries.label_classes(session, project.id, include_archived=True)}
    first_use: dict[str, int] = {}
    for row in wanted.values():
        for name in row.labels:
            first_use.setdefault(name, row.line)
    missing = sorted(name for name in first_use if name not in classes)
    if missing and not create_classes:
        raise UserError(f"{file_name}, line {min(first_use[name] for name in missing)}: "
                        f"unknown class{'es' if len(missing) > 1 else ''} "
                        f"{', '.join(missing[:10])}; add {'them' if len(missing) > 1 else 'it'} first or allow "
                        "creating new classes")
    archived = [name for name in first_use if name in classes and classes[name].archived_at is not None]
    if archived:
        raise UserError(f"{file_name}, line {first_use[archived[0]]}: class {archived[0]!r} is archived; restore it "
                        "first (Classes and settings page)")
    for name in missing:
        classes[name] = queries.add_label_class(session, project.id, name)
    return classes, missing


def _load_into_session(session, item_ids: list[int], annotation_ids: list[int]) -> list:
    """Read the items and annotations a bulk import checks in a few queries, so that its per-row
    checks find them in the session's identity map (which holds them while the caller keeps the
    returned list) instead of querying one at a time."""
    loaded = []
    for model, ids in ((Item, item_ids), (Annotation, annotation_ids)):
        for start in range(0, len(ids), 500):  # stays under SQLite's bound-parameter limit
            loaded += session.scalars(select(model).where(model.id.in_(ids[start : start + 500]))).all()
    return loaded


def import_file(db: Database, project_name: str, data: bytes, *, file_name: str, fmt: str | None = None,
                create_classes: bool, annotator: str | None = None, importer: str | None = None) -> ImportReport:
    """Read, check and import one file (format guessed when ``fmt`` is None); see :func:`import_labels`."""
    text = read_text(data, file_name)
    rows = parse_import(text, fmt=fmt or guess_format(file_name, text), file_name=file_name)
    return import_labels(db, project_name, rows, file_name=file_name, create_classes=create_classes,
                         annotator=annotator, importer=importer)


def import_csv(db: Database, project_name: str, text: str, *, create_classes: bool) -> ImportReport:
    """Import CSV text (see :func:`parse_csv` and :func:`import_labels`)."""
    return import_labels(db, project_name, parse_csv(text, "the CSV"), file_name="the CSV",
                         create_classes=create_classes)


@dataclass(frozen=True)
class SharedName:
    """What :func:`_path_resolver` gives for a Label Studio upload whose file name ``name`` is the
    file name of several item ``paths``: no one of them can be chosen."""

    name: str
    paths: tuple[str, ...]


def _path_resolver(paths: set[str]):
    """Map a path as an import file names it to an item path: the path itself, else its longest
    ending that is an item path (absolute paths under the root, URLs' paths, other tools' folders),
    else, for an image uploaded to Label Studio (``/data/upload/3/8f3e2a1b-4921.jpg``), the one item
    path with that file name; a :class:`SharedName` when several have it; None when nothing matches."""
    by_name: dict[str, list[str]] | None = None  # built on the first upload only

    def resolve(path: str) -> str | SharedName | None:
        nonlocal by_name
        path = path.replace("\\", "/")
        if path in paths:
            return path
        parts = [part for part in PurePosixPath(path).parts if part != "/"]
        ending = next(("/".join(parts[i:]) for i in range(len(parts)) if "/".join(parts[i:]) in paths), None)
        name = label_studio.uploaded_file_name(path) if ending is None else None
        if name is None:
            return ending
        if by_name is None:
            by_name = defaultdict(list)
            for item_path in paths:
                by_name[label_studio.stored_file_name(PurePosixPath(item_path).name)].append(item_path)
        found = by_name.get(name, [])
        return found[0] if len(found) == 1 else SharedName(name, tuple(sorted(found))) if found else None

    return resolve
