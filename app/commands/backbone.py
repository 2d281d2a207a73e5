"""``backbone``: show or switch the backbone that embeds a project's images."""

from __future__ import annotations

import argparse

from services.config import Settings


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "backbone",
        help="show or switch a project's backbone",
        description=(
            "Show which backbone embeds the project's images and why, or switch it with --set NAME. "
            "A running app re-embeds every image with the new backbone in the background and keeps "
            "every label; `embed` does it now. Names: bundled, efficientnet_lite0, dinov2_vits14, "
            "dinov2_vitb14, dino_vits16, dino_resnet50, swav_resnet50, resnet50, timm:NAME, local:PATH, "
            "ARCH@PATH. Published weights come from `fetch-backbone NAME`."
        ),
    )
    parser.add_argument("--set", metavar="NAME", dest="name", help="make NAME the project's backbone")
    parser.add_argument("--project", help="project name (default: the BANANA_PROJECT setting, 'default')")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    from services.database import open_database
    from services.features.project_backbone import backbone_training, project_backbone, set_project_backbone

    project = args.project or settings.project
    with open_database(settings) as db:
        if args.name:
            changed = set_project_backbone(db, project, args.name, by="the command line")
            print(
                f"project {project!r} now uses {args.name.strip()}"
                if changed
                else f"project {project!r} already uses {args.name.strip()}"
            )
            if changed:
                print(f"embed its images now with: python -m app.cli embed --project {project}")
        choice = project_backbone(db, settings, project)
    print(f"backbone {choice.name}: {backbone_training(choice.name)}")
    print(f"why: {choice.reason}")
    return 0
