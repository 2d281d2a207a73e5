"""Many labelers writing at once: annotation write latency and errors on SQLite or PostgreSQL.

Usage: .venv/bin/python benchmarks/bench_concurrent_writes.py [--url URL] [--writers 8] [--databases 1]
       [--seconds 20] [--think-ms 0]

WRITERS threads record annotations through ``services.labeling.write.write_labels`` for SECONDS,
spread over DATABASES ``Database`` objects on the same URL (1 = one app process; 2 = as if a
second process wrote too). Without ``--url`` a throw-away SQLite file is used; with a PostgreSQL
URL (of a role allowed to create databases) a throw-away database on that server. Prints writes per second, the latency of a write
(p50, p99, max) and every error a writer saw; ``--think-ms`` waits between a writer's labels.
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from services.config import Settings
from services.database import open_database
from services.labeling.classes import add_label_class
from services.labeling.write import LabelWrite, write_labels
from services.projects import ensure_project
from storage import queries
from storage.models import ItemStatus

ITEMS_PER_WRITER = 5


@contextmanager
def throw_away_database(url: str | None, home: Path) -> Iterator[str]:
    """A new SQLite file under ``home``, or a new database on the PostgreSQL server of ``url``, dropped after."""
    if url is None or make_url(url).get_backend_name() == "sqlite":
        yield url or f"sqlite:///{home / 'bench.db'}"
        return
    name = f"banana_bench_{uuid.uuid4().hex[:12]}"
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="SQLAlchemy URL (default: a new SQLite file)")
    parser.add_argument("--writers", type=int, default=8)
    parser.add_argument("--databases", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--think-ms", type=float, default=0.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="banana-bench-") as home, throw_away_database(args.url, Path(home)) as url:
        settings = Settings(home=Path(home), database_url=url)
        databases = [open_database(settings) for _ in range(args.databases)]
        project = ensure_project(databases[0], name="bench", root=None, root_if_new=Path(home))
        classes = [add_label_class(databases[0], project=project, name=name).id for name in ("cat", "dog")]
        rows = [
            {
                "project_id": project.id,
                "path": f"{n}.png",
                "sha256": f"{n:064x}",
                "size_bytes": 1,
                "mtime_ns": 1,
                "status": ItemStatus.OK,
            }
            for n in range(args.writers * ITEMS_PER_WRITER)
        ]
        with databases[0].writing() as session:
            item_ids = [item_id for item_id, _ in queries.insert_items(session, rows)]

        latencies: list[float] = []
        errors: Counter[str] = Counter()
        deadline = time.monotonic() + args.seconds

        def write(n: int) -> None:
            db, mine = databases[n % len(databases)], item_ids[n * ITEMS_PER_WRITER : (n + 1) * ITEMS_PER_WRITER]
            k = 0
            while time.monotonic() < deadline:
                began = time.perf_counter()
                try:
                    write_labels(
                        db,
                        project_id=project.id,
                        annotator=f"writer{n}",
                        labels=[LabelWrite(mine[k % len(mine)], (classes[k % 2],))],
                    )
                    latencies.append(time.perf_counter() - began)
                except Exception as error:  # noqa: BLE001 - counted and printed
                    errors[f"{type(error).__name__}: {str(error).splitlines()[0][:100]}"] += 1
                k += 1
                time.sleep(args.think_ms / 1000)

        threads = [threading.Thread(target=write, args=(n,)) for n in range(args.writers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        for db in databases:
            db.close()

    values = np.asarray(latencies) * 1000
    backend = (args.url or "sqlite").split(":")[0]
    print(
        f"{backend}: {args.writers} writers over {args.databases} Database object(s), {args.seconds:.0f} s, "
        f"think {args.think_ms:.0f} ms"
    )
    print(
        f"  {len(values)} writes ({len(values) / args.seconds:.0f}/s); latency p50 {np.percentile(values, 50):.1f} ms, "
        f"p99 {np.percentile(values, 99):.1f} ms, max {values.max():.1f} ms"
    )
    print(
        f"  errors: {sum(errors.values())}" + "".join(f"\n    {count} x {message}" for message, count in errors.items())
    )


if __name__ == "__main__":
    main()
