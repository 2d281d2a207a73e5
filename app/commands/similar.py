"""``similar``: the items most similar to one item, by embedding."""

from __future__ import annotations

import argparse

from services.config import Settings


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "similar",
        help="list the images most similar to one image",
        description="List the K images whose embeddings are most similar (cosine) to ITEM's. Run `embed` first.",
    )
    parser.add_argument(
        "item", metavar="ITEM", help="item id, or the image's path (relative to the project root, or to the file)"
    )
    parser.add_argument("-k", type=int, default=20, help="how many neighbours (default: 20)")
    parser.add_argument("--backbone", help="backbone whose embeddings to use (default: the project's backbone)")
    parser.add_argument("--project", help="project name (default: the BANANA_PROJECT setting, 'default')")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    from services.database import open_database
    from services.features.embeddings import similar  # imports torch: not at --help time

    with open_database(settings) as db:
        query, neighbours = similar(
            db, settings, project=args.project or settings.project, backbone=args.backbone, item=args.item, k=args.k
        )
    print(f"query: item {query.item_id} {query.path}")
    print("rank  score   item  path")
    for rank, neighbour in enumerate(neighbours, start=1):
        print(f"{rank:>4}  {neighbour.score:.4f}  {neighbour.item_id:>5}  {neighbour.path}")
    return 0
