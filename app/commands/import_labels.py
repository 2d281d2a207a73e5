"""``import-labels``: record labels made in another tool (CSV, Label Studio JSON export, COCO)."""

from __future__ import annotations

import argparse
from pathlib import Path

from services.config import Settings


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "import-labels",
        help="import labels from a CSV, a Label Studio JSON export or a COCO file",
        description=(
            "Record each image's label from FILE as an 'import' annotation (append-only: the current label is "
            "superseded, never changed; an image already labeled so gets no new row, so importing twice changes "
            "nothing). The whole file is checked first: a malformed line stops the import with its line number "
            "and nothing is written. Lines naming images that are not in the project are listed and skipped. "
            "CSV: a header row with path and labels (class names separated by ;), optionally annotator; the "
            "columns of `export --format csv` (a cell it wrote with a ' in front, so that spreadsheets do not run "
            "it as a formula, is read without it). Label Studio: the project's JSON export; each task's newest "
            "annotation that was not cancelled; data.image may be a /data/local-files/?d= URL, another URL or a "
            "path. COCO: images, categories and annotations. Paths may be relative to the project root, absolute, "
            "or end with the image's path under the root. A new class name must follow the rules of class names "
            "(1 to 200 characters, one line, no ';', not another class's name in other case); lines naming one "
            "that does not are listed and skipped."
        ),
    )
    parser.add_argument("file", type=Path, metavar="FILE", help="the file to import")
    parser.add_argument(
        "--format",
        choices=("csv", "label-studio", "coco"),
        help="file format (default: from the extension and the content)",
    )
    parser.add_argument("--project", help="project name (default: the BANANA_PROJECT setting, 'default')")
    parser.add_argument(
        "--annotator", help="record this name as who labeled (default: the CSV's annotator column, else none)"
    )
    parser.add_argument(
        "--no-new-classes",
        action="store_true",
        help="refuse the import if it names a class the project does not have (default: create it)",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    from services.database import open_database
    from services.errors import UserError
    from services.transfer.imports import import_file

    try:
        data = args.file.read_bytes()
    except OSError as error:
        raise UserError(f"cannot read {args.file}: {error.strerror}") from None
    with open_database(settings) as db:
        report = import_file(
            db,
            args.project or settings.project,
            data,
            file_name=str(args.file),
            fmt=args.format,
            create_classes=not args.no_new_classes,
            annotator=args.annotator,
        )
    print(
        f"imported {report.imported} labels from {args.file}; {report.unchanged} already current, "
        f"{report.unlabeled} without a label, {len(report.unknown)} not images of the project"
        + (f", {len(report.ambiguous)} uploads whose file name several images share" if report.ambiguous else "")
        + (f", {len(report.bad_names)} naming a class whose name breaks a rule" if report.bad_names else "")
    )
    if report.created_classes:
        print(f"new classes: {', '.join(report.created_classes)}")
    for unknown in report.unknown:
        print(f"  line {unknown.line}: {unknown.path} is not an image of the project; skipped")
    for ambiguous in report.ambiguous:
        print(f"  {ambiguous.message}")
    for bad in report.bad_names:
        print(f"  {bad.message}")
    return 0
