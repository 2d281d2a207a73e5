"""``export``: write the current labels as COCO, CSV, JSON, Label Studio tasks or an ImageFolder."""

from __future__ import annotations

import argparse
from pathlib import Path

from services.config import Settings

FORMATS = ("coco", "csv", "json", "label-studio", "imagefolder")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "export",
        help="write the current labels as COCO, CSV, JSON, Label Studio tasks or one folder per class",
        description=(
            "Write every image whose current label names a class. Paths are relative to the project root. "
            "coco: COCO-style classification JSON (one annotation per image and class). csv: path, labels "
            "(;-separated), annotator, labeled_at, source; a cell a spreadsheet would run as a formula (=, +, -, @) "
            "gets a ' in front. json: the same as a list. label-studio: tasks to "
            "import into Label Studio, the labels as pre-annotations (predictions), plus OUT with suffix "
            ".xml, the labeling config to paste into the Label Studio project. imagefolder: OUT/<class>/<path>, "
            "copies unless --files says otherwise; a multi-label image is written under each of its classes; "
            "class names and paths are percent-encoded where a file system would not take them as they are "
            "(/ as %2F), and OUT/.classes.json maps each folder to its class name. Files are written to a "
            "temporary place next to OUT first, so an error (a full disk) leaves nothing behind. "
            "coco, csv and label-studio files can be imported again with import-labels."
        ),
    )
    parser.add_argument("--format", choices=FORMATS, required=True, help="what to write")
    parser.add_argument("--out", type=Path, required=True, help="file to write (imagefolder: a new or empty folder)")
    parser.add_argument("--project", help="project name (default: the BANANA_PROJECT setting, 'default')")
    parser.add_argument(
        "--files",
        choices=("copy", "hardlink", "symlink"),
        default="copy",
        help="imagefolder: copy the images, hard-link or symlink them (default: copy)",
    )
    parser.add_argument(
        "--image-prefix",
        metavar="PREFIX",
        help="label-studio: data.image is PREFIX + the path (default: /data/local-files/?d= and the "
        "project root, for Label Studio with LOCAL_FILES_DOCUMENT_ROOT=/)",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    from services.database import open_database
    from services.output_files import write_atomically
    from services.transfer import export

    project = args.project or settings.project
    with open_database(settings) as db:
        images = export.labeled_images(db, project)
        if args.format == "imagefolder":
            written = export.export_image_folder(db, project, images, args.out, files=args.files)
            print(f"wrote {written} files of {len(images)} labeled images under {args.out}")
            return 0
        if args.format == "label-studio":
            text = export.to_label_studio(db, project, images, image_prefix=args.image_prefix)
            config = args.out.with_suffix(".xml")
            write_atomically(config, export.label_studio_config(db, project))
        else:
            text = {
                "coco": lambda: export.to_coco(db, project, images),
                "csv": lambda: export.to_csv(images),
                "json": lambda: export.to_json(images),
            }[args.format]()
    write_atomically(args.out, text)
    print(f"wrote {len(images)} labeled images to {args.out}")
    if args.format == "label-studio":
        print(f"labeling config for the Label Studio project: {config}")
    return 0
