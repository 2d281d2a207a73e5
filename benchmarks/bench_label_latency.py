"""Server-side labeling latency: from a keypress (the label call) to the next image being ready.

Usage: .venv/bin/python benchmarks/bench_label_latency.py [FOLDER] [--labels N] [--think-ms MS]

Ingests FOLDER (default sample_data/images; class folders give the oracle's answers) into a
throw-away BANANA_HOME, embeds it with the bundled backbone, then labels N asks the way the
Label page does, with the retrain loop running in the background (a retrain every 10 labels).
Per label it times:

- next image: ``label()`` (committed to the database) + the next ``current()`` ask + its image bytes;
- whole pane: the above + the suggestions, the 5 nearest labeled neighbours and their thumbnails.

``--think-ms`` waits between labels like a person would (0 = label as fast as possible, so the
background work gets no head start).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from core.features.extract import ExtractConfig
from services.config import Settings
from services.database import open_database
from services.engine.lifecycle import close_engines, start_engine
from services.features.embeddings import embed
from services.ingest.ingest import ingest
from services.labeling.classes import add_label_class
from services.labeling.session import THUMBNAIL_SIDE, LabelingSession
from services.projects import get_project
from storage.labels import label_queries

SAMPLE_IMAGES = Path(__file__).resolve().parents[1] / "sample_data" / "images"


def milliseconds(seconds: list[float]) -> str:
    values = np.asarray(seconds) * 1000
    return f"p50 {np.percentile(values, 50):.1f} ms, p95 {np.percentile(values, 95):.1f} ms, max {values.max():.1f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, nargs="?", default=SAMPLE_IMAGES, help="class folders of images")
    parser.add_argument("--labels", type=int, default=300)
    parser.add_argument("--think-ms", type=float, default=0.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="banana-bench-") as home:
        settings = Settings(home=Path(home))
        with open_database(settings) as db:
            ingest(db, settings, source=args.folder, project=settings.project)
            embed(db, settings, project=settings.project, backbone="bundled", config=ExtractConfig(num_workers=0))
            project = get_project(db, settings.project)
            for folder in sorted(p.name for p in args.folder.iterdir() if p.is_dir()):
                add_label_class(db, project=project, name=folder)
            startup = start_engine(db, settings)
            while startup.phase not in ("ready", "failed"):
                time.sleep(0.05)
            engine = startup.engine
            class_of = {c.name: c.id for c in engine.active_classes()}
            session = LabelingSession(engine, "bench")
            next_image, whole_pane = [], []
            ask = session.current()
            for _ in range(min(args.labels, len(engine.pool.item_ids) - 1)):
                time.sleep(args.think_ms / 1000)
                start = time.perf_counter()
                session.label(ask.item_id, [class_of[ask.path.split("/")[0]]])
                ask = session.current()
                session.image(ask)
                next_image.append(time.perf_counter() - start)
                engine.suggestions(ask.item_id)
                for item_id, _, _ in engine.neighbours(ask.item_id, 5):
                    engine.pool.images.get(item_id, engine.pool.paths[engine.pool.row_of[item_id]], THUMBNAIL_SIDE)
                whole_pane.append(time.perf_counter() - start)
            close_engines()
            with db.reading() as db_session:
                versions = len(label_queries.model_versions(db_session, project.id))
    print(
        f"{len(next_image)} labels on {len(engine.pool.item_ids)} images, think time {args.think_ms:.0f} ms, "
        f"{versions} model versions trained meanwhile"
    )
    print(f"keypress -> next image ready: {milliseconds(next_image)}")
    print(f"keypress -> whole pane ready (+ suggestions, 5 neighbours): {milliseconds(whole_pane)}")


if __name__ == "__main__":
    main()
