"""SIGKILL a process that is writing labels: nothing it reported as saved may be lost."""

import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import text

from services.labeling.classes import add_label_class
from services.projects import ensure_project
from storage import queries
from storage.models import Annotation, ItemStatus

pytestmark = pytest.mark.slow

REPO_ROOT = Path(__file__).resolve().parents[1]
ROUNDS = 4


def _items(db, tmp_path, n):
    project = ensure_project(db, name="crash", root=None, root_if_new=tmp_path)
    for name in ("cat", "dog"):
        add_label_class(db, project=project, name=name)
    rows = [
        {
            "project_id": project.id,
            "path": f"{i}.png",
            "sha256": f"{i:064d}",
            "size_bytes": 1,
            "mtime_ns": 1,
            "status": ItemStatus.OK,
        }
        for i in range(n)
    ]
    with db.writing() as session:
        return [item_id for item_id, _ in queries.insert_items(session, rows)]


def _run_and_kill(home: Path, item_ids: list[int], delay_s: float) -> list[tuple[int, int, str]]:
    child = subprocess.Popen(
        [sys.executable, "-m", "tests.annotation_writer", str(home), *map(str, item_ids)],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    first = child.stdout.readline()  # writing is under way
    assert first.endswith("\n"), f"writer failed to start: {child.stderr.read()}"
    time.sleep(delay_s)
    child.send_signal(signal.SIGKILL)
    rest = child.stdout.read()
    child.wait()
    child.stderr.close()
    assert child.returncode == -signal.SIGKILL
    lines = (first + rest).split("\n")[:-1]  # the last piece is empty or a line cut off by the kill
    return [(int(a), int(i), label) for a, i, label in (line.split() for line in lines)]


def test_no_reported_label_is_lost_when_the_writer_is_killed(db, settings, tmp_path):
    item_ids = _items(db, tmp_path, 5)
    seed = random.randrange(1_000_000)
    rng = random.Random(seed)
    reported = []
    for _ in range(ROUNDS):
        reported += _run_and_kill(settings.home, item_ids, rng.uniform(0.0, 0.4))

    with db.reading() as session:
        assert session.execute(text("PRAGMA integrity_check")).scalar() == "ok"
        for annotation_id, item_id, label in reported:
            stored = session.get(Annotation, annotation_id)
            assert stored is not None, f"reported annotation {annotation_id} is missing (seed {seed})"
            assert (stored.item_id, [c.name for c in stored.classes]) == (item_id, [label])
    assert len(reported) > ROUNDS  # the kills landed mid-stream, not before the first write
