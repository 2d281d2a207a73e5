"""Import labels made elsewhere (CSV, Label Studio JSON export, COCO-style JSON) through the one
label path, all in one transaction."""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath

from sqlalchemy import select

from services.database import Database
from services.engine.registry import announce_classes, announce_labels
from services.errors import UserError
from services.labeling import class_names
from services.labeling.write import add_label
from services.output_files import csv_value
from services.projects import get_project
from services.transfer import json_records, label_studio
from services.transfer.export import LABEL_SEPARATOR
from storage import queries
from storage.items import item_queries
from storage.labels import label_queries
from storage.labels.label_queries import CurrentLabel
from storage.models import Annotation, AnnotationSource, Item, LabelClass, Project

FORMATS = ("csv", "label-studio", "coco")


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
        return (
            f"line {self.line}: {self.path} is an image uploaded to Label Studio, which keeps only its file name "
            f"{self.name!r}, and {self.candidates} images of the project have that name; skipped. Export from "
            "a Label Studio project whose images come from local-files storage (or banana's Label Studio "
            "tasks), or import a CSV with the images' full paths"
        )


@dataclass(frozen=True)
class BadClassName:
    """A row naming class ``name``, which breaks a rule of :mod:`services.labeling.class_names` (``reason``
    says which and the fix): it is not applied."""

    line: int
    path: str
    name: str
    reason: str

    @property
    def message(self) -> str:
        return f"line {self.line}: {self.path} skipped: {self.reason}"


@dataclass(frozen=True)
class ImportReport:
    """What an import did: new annotations, rows already current, rows without a label,
    paths that are not images of the project (skipped), classes it created, Label Studio
    uploads whose file name several images of the project share (skipped, see :class:`AmbiguousPath`),
    and rows naming a class whose name breaks a rule (skipped, see :class:`BadClassName`)."""

    imported: int
    unchanged: int
    unlabeled: int
    unknown: list[UnknownPath]
    created_classes: list[str]
    ambiguous: list[AmbiguousPath] = field(default_factory=list)
    bad_names: list[BadClassName] = field(default_factory=list)


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
        raise UserError(
            f"{file_name}: a JSON import is a Label Studio export (a list of tasks) or a COCO file "
            "(an object with images, categories and annotations); pass --format"
        )
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
    ``annotator`` column, when present, names who labeled. Other columns are ignored. Cells are
    read as :func:`services.output_files.csv_value` says; a path keeps its spaces (see :func:`_path_resolver`)."""
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
                    raise UserError(
                        f"{file_name}, line {line}: the first row must be a header naming the columns "
                        f"path and labels (found {', '.join(header)}); add the line `path,labels` at the top"
                    )
                continue
            if len(record) != len(header):
                raise UserError(
                    f"{file_name}, line {line}: {len(record)} fields, but the header has {len(header)}; "
                    "quote values that contain a comma, or add the missing fields"
                )
            row = {name: csv_value(cell) for name, cell in zip(header, record)}
            if not row["path"].strip():
                raise UserError(f"{file_name}, line {line}: the path is empty; give the image's path")
            rows.append(
                ImportRow(
                    line,
                    row["path"],
                    _names(row["labels"].split(LABEL_SEPARATOR)),
                    (row.get("annotator") or "").strip() or None,
                )
            )
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
        raise UserError(
            f"{file_name}, line 1: a COCO file is an object with the lists images, categories and annotations"
        )

    def entries(key: str, fields: dict[str, type]):
        for line, entry in zip(json_records.array_lines(text, key), coco[key]):
            if not isinstance(entry, dict) or not all(isinstance(entry.get(f), t) for f, t in fields.items()):
                raise UserError(
                    f"{file_name}, line {line}: each of {key} needs "
                    + " and ".join(f"{f} ({t.__name__})" for f, t in fields.items())
                )
            yield line, entry

    categories = {c["id"]: c["name"] for _, c in entries("categories", {"id": int, "name": str})}
    images = {i["id"]: (line, i["file_name"]) for line, i in entries("images", {"id": int, "file_name": str})}
    labels: dict[int, set[str]] = {}
    for line, a in entries("annotations", {"image_id": int, "category_id": int}):
        if a["image_id"] not in images or a["category_id"] not in categories:
            raise UserError(
                f"{file_name}, line {line}: the annotation names image {a['image_id']} and category "
                f"{a['category_id']}; both must be listed in images and categories"
            )
        labels.setdefault(a["image_id"], set()).add(categories[a["category_id"]])
    return [ImportRow(line, path, _names(labels.get(image_id, ()))) for image_id, (line, path) in images.items()]


def _names(names) -> tuple[str, ...]:
    return tuple(sorted({name.strip() for name in names if name.strip()}))


def import_labels(
    db: Database,
    project_name: str,
    rows: list[ImportRow],
    *,
    file_name: str,
    create_classes: bool,
    annotator: str | None = None,
    importer: str | None = None,
) -> ImportReport:
    """Record ``rows`` as ``import`` annotations, all in one transaction.

    Every row is checked first; a row that cannot be recorded (two classes in a
    single-label project, an unknown class without ``create_classes``, an archived
    class, the same image twice with different labels) is a UserError naming its line,
    and nothing is written. Rows naming no image of the project, and rows naming a new class
    whose name breaks a rule of :mod:`services.labeling.class_names`, are skipped and reported. A class
    name is matched exactly, else in its stored form (NFC, no surrounding spaces).
    An image whose current label equals the row's gets no new annotation, so importing a
    file twice changes nothing. ``annotator`` (else the row's own, else ``importer``: who
    imports the file) is recorded with each.
    """
    project = get_project(db, project_name)
    with db.writing() as session:
        ids = {path: item_id for item_id, path in item_queries.ok_item_paths(session, project.id)}
        wanted, unknown, ambiguous, unlabeled = _checked_rows(rows, ids, project, file_name)
        wanted, missing, bad_names = _checked_classes(session, project, wanted, file_name, create_classes)
        class_ids = {c.name: c.id for c in label_queries.label_classes(session, project.id, include_archived=True)}
        current = label_queries.current_labels(session, project.id)
        changes = {path: tuple(sorted(class_ids[name] for name in row.labels)) for path, row in wanted.items()}
        changes = {
            path: classes
            for path, classes in changes.items()
            if (label := current.get(ids[path])) is None or label.class_ids != classes
        }
        loaded = _load_into_session(  # noqa: F841 - kept for the identity map
            session,
            [ids[path] for path in changes],
            [current[ids[path]].annotation_id for path in changes if ids[path] in current],
        )
        annotator_ids: dict[str | None, int | None] = {None: None}
        written = {}
        for path, classes in changes.items():
            label, who = current.get(ids[path]), annotator or wanted[path].annotator or importer
            if who is not None and who not in annotator_ids:
                annotator_ids[who] = queries.get_or_add_annotator(session, who).id
            annotation_id = add_label(
                session,
                project_id=project.id,
                item_id=ids[path],
                class_ids=classes,
                annotator_id=annotator_ids[who],
                source=AnnotationSource.IMPORT,
                supersedes_id=label.annotation_id if label is not None else None,
            )
            written[ids[path]] = CurrentLabel(annotation_id, classes)
    if missing:
        announce_classes(db, project.id)
    announce_labels(db, project.id, written)
    return ImportReport(
        imported=len(changes),
        unchanged=len(wanted) - len(changes),
        unlabeled=unlabeled,
        unknown=unknown,
        created_classes=missing,
        ambiguous=ambiguous,
        bad_names=bad_names,
    )


def _checked_rows(
    rows: list[ImportRow], ids: dict[str, int], project: Project, file_name: str
) -> tuple[dict[str, ImportRow], list[UnknownPath], list[AmbiguousPath], int]:
    """The row to record per item path, the rows naming no image of the project, those naming an
    upload whose file name several images share, and the count of rows without a label; a row
    that cannot be recorded is a UserError naming its line."""
    resolve = _path_resolver(set(ids))
    wanted: dict[str, ImportRow] = {}
    unknown: list[UnknownPath] = []
    ambiguous: list[AmbiguousPath] = []
    unlabeled = 0
    for row in rows:
        where = f"{file_name}, line {row.line}"
        if len(row.labels) > 1 and not project.multi_label:
            raise UserError(
                f"{where}: {', '.join(row.labels)} are several classes, but project "
                f"{project.name!r} is single-label; give one class per image"
            )
        path = resolve(row.path)
        if path is None:
            unknown.append(UnknownPath(row.line, row.path))
        elif isinstance(path, SharedName):
            ambiguous.append(AmbiguousPath(row.line, row.path, path.name, len(path.paths)))
        elif not row.labels:
            unlabeled += 1
        elif path in wanted and wanted[path].labels != row.labels:
            raise UserError(
                f"{where}: {path} is labeled {', '.join(row.labels)}, but line {wanted[path].line} "
                f"labels it {', '.join(wanted[path].labels)}; keep one of the two"
            )
        else:
            wanted.setdefault(path, row)
    return wanted, unknown, ambiguous, unlabeled


def _checked_classes(
    session, project: Project, wanted: dict[str, ImportRow], file_name: str, create_classes: bool
) -> tuple[dict[str, ImportRow], list[str], list[BadClassName]]:
    """The rows to record, their labels the project's class names (the classes they name that
    the project lacks added, when ``create_classes``), the classes added, and the rows skipped
    because a class they would add breaks a rule of :mod:`services.labeling.class_names` (say one that
    differs from another only in case). An unknown class without ``create_classes`` or an
    archived class is a UserError naming its first line."""
    classes, existing = _project_classes(session, project)
    if create_classes and any(
        name not in existing and class_names.normalized(name) not in existing
        for row in wanted.values()
        for name in row.labels
    ):
        # Creators of a project's classes take turns (as services.labeling.classes.add_label_class
        # does), and read the classes once it is their turn: PostgreSQL runs writers side by side, so
        # an adder's uncommitted class would otherwise be created again (a raw UniqueViolation) or get
        # a case twin.
        queries.lock_project(session, project.id)
        classes, existing = _project_classes(session, project)
    resolved: dict[str, str] = {}  # a class name as the file writes it -> the project's (or new) class name
    created: set[str] = set()
    kept, bad = {}, []
    for path, row in sorted(wanted.items(), key=lambda path_row: path_row[1].line):
        row_resolved: dict[str, str] = {}
        row_created: set[str] = set()
        problem: str | None = None
        for name in row.labels:
            form = class_names.normalized(name)
            if name in resolved:
                continue
            if name in existing or form in existing:
                row_resolved[name] = existing[name] if name in existing else existing[form]
                continue
            if form in created or form in row_created:
                row_resolved[name] = form
                continue
            problem = class_names.name_problem(form)
            twin = class_names.case_twin(form, [*classes, *created, *row_created])
            if problem is None and twin is not None:
                problem = (
                    f"class {name!r} differs from the class {twin!r} only in case; write it {twin!r} in "
                    f"{file_name}, or rename one of the two"
                )
            if problem is not None:
                bad.append(BadClassName(row.line, row.path, name, problem))
                break
            row_resolved[name], row_created = form, row_created | {form}
        if problem is None:
            resolved.update(row_resolved)
            created |= row_created
            kept[path] = row
    first_use: dict[str, int] = {}
    for row in kept.values():
        for name in row.labels:
            first_use.setdefault(name, row.line)
    missing = sorted(name for name in first_use if resolved[name] in created)
    if missing and not create_classes:
        raise UserError(
            f"{file_name}, line {min(first_use[name] for name in missing)}: "
            f"unknown class{'es' if len(missing) > 1 else ''} "
            f"{', '.join(missing[:10])}; add {'them' if len(missing) > 1 else 'it'} first or allow "
            "creating new classes"
        )
    archived = [
        name for name in first_use if resolved[name] in classes and classes[resolved[name]].archived_at is not None
    ]
    if archived:
        raise UserError(
            f"{file_name}, line {first_use[archived[0]]}: class {archived[0]!r} is archived; restore it "
            "first (Classes and settings page)"
        )
    for name in sorted(created):
        queries.add_label_class(session, project.id, name)
    kept = {
        path: replace(row, labels=tuple(sorted({resolved[name] for name in row.labels}))) for path, row in kept.items()
    }
    return kept, sorted(created), bad


def _project_classes(session, project: Project) -> tuple[dict[str, LabelClass], dict[str, str]]:
    """The project's classes by name, and the class name for each name and its stored form (see
    :func:`services.labeling.class_names.normalized`)."""
    classes = {c.name: c for c in label_queries.label_classes(session, project.id, include_archived=True)}
    existing = {class_names.normalized(name): name for name in classes}
    existing.update({name: name for name in classes})  # an exact match wins over one in the stored form
    return classes, existing


def _load_into_session(session, item_ids: list[int], annotation_ids: list[int]) -> list:
    """Read the items and annotations a bulk import checks in a few queries, so that its per-row
    checks find them in the session's identity map (which holds them while the caller keeps the
    returned list) instead of querying one at a time."""
    loaded = []
    for model, ids in ((Item, item_ids), (Annotation, annotation_ids)):
        for chunk in queries.in_chunks(ids):
            loaded += session.scalars(select(model).where(model.id.in_(chunk))).all()
    return loaded


def import_file(
    db: Database,
    project_name: str,
    data: bytes,
    *,
    file_name: str,
    fmt: str | None = None,
    create_classes: bool,
    annotator: str | None = None,
    importer: str | None = None,
) -> ImportReport:
    """Read, check and import one file (format guessed when ``fmt`` is None); see :func:`import_labels`."""
    text = read_text(data, file_name)
    rows = parse_import(text, fmt=fmt or guess_format(file_name, text), file_name=file_name)
    return import_labels(
        db,
        project_name,
        rows,
        file_name=file_name,
        create_classes=create_classes,
        annotator=annotator,
        importer=importer,
    )


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
        path = path.strip()  # a space after a CSV's comma; paths that start with a space matched above
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
