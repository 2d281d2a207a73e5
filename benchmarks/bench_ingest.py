"""Ingest throughput: files per second on a first run and on a re-run with nothing new.

Usage: .venv/bin/python benchmarks/bench_ingest.py FOLDER
(e.g. the 50,000 CIFAR-10 training images unpacked as FOLDER/<class>/NNNN.jpg).
Uses a throw-away BANANA_HOME, so the workspace is left alone.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from services.config import Settings
from services.database import open_database
from services.ingest.ingest import ingest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="folder of images to ingest")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="banana-bench-") as home:
        settings = Settings(home=Path(home))
        with open_database(settings) as db:
            for run in ("first run", "second run (nothing new)"):
                start = time.perf_counter()
                report = ingest(db, settings, source=args.folder, project="bench")
                seconds = time.perf_counter() - start
                files = report.added + report.skipped_known + report.duplicates + len(report.errors)
                print(
                    f"{run}: {files} files in {seconds:.2f} s = {files / seconds:,.0f} files/s "
                    f"(added {report.added}, skipped-known {report.skipped_known}, "
                    f"duplicates {report.duplicates}, errors {len(report.errors)})"
                )


if __name__ == "__main__":
    main()
