"""Triage of a new batch: planted near-failures come first, novel items and near-copies are found."""

import csv
import shutil

import numpy as np
import pytest
from PIL import Image, ImageEnhance

from app.cli import main
from core.model.probe import LinearProbe
from core.quality.triage import KINDS, nearest_labeled, novelty_threshold, top_margin, triage
from services.data_engine.triage import parse_since
from services.database import open_database
from services.errors import UserError
from services.projects import get_project
from storage.items import item_queries
from tests.labeling_project import SAMPLE_IMAGES, ingested_sample_project, true_class
from tests.labels_by_name import record_annotation

DIM = 32


def unit(x):
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def on_the_boundary(probe, a, b, rng, n):
    """``n`` points where ``probe`` gives both classes probability 0.5: bisection on the
    segment from ``a`` to ``b``, then a small step along the boundary (orthogonal noise)."""
    low, high = 0.0, 1.0
    for _ in range(60):
        middle = (low + high) / 2
        p_a = probe.predict_proba(unit(a + middle * (b - a))[None])[0, 0]
        low, high = (middle, high) if p_a > 0.5 else (low, middle)
    point = a + low * (b - a)
    return unit(point + 0.002 * rng.normal(size=(n, DIM)))


def planted_batch(seed=0):
    """Two labeled classes around two directions, a probe fit on them, and a batch with
    planted kinds among ordinary items drawn like the labeled ones.

    Returns labeled X, y, the probe, the batch, the batch positions of each planted kind,
    and for the near-copies the positions of the labeled items they copy.
    """
    rng = np.random.default_rng(seed)
    a, b, far = unit(rng.normal(size=(3, DIM)))
    y = np.repeat([0, 1], 100)
    X = unit(np.where(y[:, None] == 0, a, b) + 0.12 * rng.normal(size=(len(y), DIM)))
    probe = LinearProbe(n_folds=0).fit(X, y)
    ordinary = unit(np.where(rng.integers(0, 2, 40)[:, None] == 0, a, b) + 0.12 * rng.normal(size=(40, DIM)))
    boundary = on_the_boundary(probe, a, b, rng, 5)
    far = unit(
        far - np.linalg.lstsq(np.stack([a, b]).T, far, rcond=None)[0] @ np.stack([a, b])
    )  # orthogonal to a and b
    novel = unit(far + 0.4 * a + 0.05 * rng.normal(size=(4, DIM)))  # a new direction, still on a's side
    sources = rng.choice(len(X), 3, replace=False)
    copies = unit(X[sources] + 0.001 * rng.normal(size=(3, DIM)))
    batch = np.concatenate([ordinary, boundary, novel, copies])
    order = rng.permutation(len(batch))  # planted items anywhere in the batch
    position = np.argsort(order)
    planted = dict(near_failure=position[40:45], novel=position[45:49], near_copy=position[49:52])
    return X, y, probe, batch[order], planted, sources


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_report_puts_planted_near_failures_first_and_finds_novel_items_and_near_copies(seed):
    X, y, probe, batch, planted, sources = planted_batch(seed)
    result = triage(batch, probe.predict_proba(batch), X)

    first = result.order[: len(planted["near_failure"])]
    assert set(first.tolist()) == set(planted["near_failure"].tolist())
    assert result.kinds[: len(first), KINDS.index("near_failure")].all()
    assert np.all(np.diff(result.margin[result.kinds[:, 0]]) >= 0)  # ascending margin
    position_in_report = np.argsort(result.order)
    assert result.kinds[position_in_report[planted["novel"]], KINDS.index("novel")].all()
    # Novel is relative: about novel_quantile (1%) of items drawn like the labeled ones count too.
    ordinary = np.setdiff1d(np.arange(len(batch)), np.concatenate(list(planted.values())))
    assert result.kinds[position_in_report[ordinary], KINDS.index("novel")].sum() <= 2
    copy_rows = position_in_report[planted["near_copy"]]
    assert result.kinds[copy_rows, KINDS.index("near_copy")].all()
    assert result.kinds[:, KINDS.index("near_copy")].sum() == len(planted["near_copy"])
    # The label a near-copy would get is the label of the labeled item it copies.
    assert y[result.would_get[copy_rows]].tolist() == y[sources].tolist()
    assert (result.would_get[~result.kinds[:, 2]] == -1).all()


def test_scorers():
    assert np.allclose(top_margin(np.array([[0.5, 0.3, 0.2], [0.9, 0.05, 0.05]])), [0.2, 0.85])
    assert np.allclose(top_margin(np.array([[0.5, 0.9]]), multi_label=True), [0.0])
    assert np.isnan(top_margin(np.ones((2, 1)))).all()
    labeled = unit(np.eye(3)[:, :3] + 0.01)
    nearest, similarity = nearest_labeled(unit(np.array([[1.0, 0.1, 0.0]])), labeled, block_rows=1)
    assert nearest.tolist() == [0] and 0.9 < similarity[0] <= 1.0
    assert np.isnan(novelty_threshold(labeled[:1]))
    # Without labels nothing is novel or a copy, and without a model nothing is a near-failure.
    empty = triage(labeled, None, np.zeros((0, 3)))
    assert not empty.kinds.any() and (empty.nearest == -1).all()


# ----- the CLI on a small real project ----------------------------------------------------


def near_copy(source, target):
    """A re-encoded, slightly brightened copy of an image (new bytes, same picture)."""
    ImageEnhance.Brightness(Image.open(source).convert("RGB")).enhance(1.03).save(target, format="PNG")


@pytest.fixture
def triaged_project(tmp_path, home):
    """Two classes, 5 labeled images each; a batch folder ``new/`` with 6 unseen sample images
    and 2 near-copies of labeled images, ingested (not embedded)."""
    settings = ingested_sample_project(tmp_path, classes=("airplane", "cat"), per_class=5)
    assert settings.home == home
    with open_database(settings) as db:
        project = get_project(db, "default")
        with db.reading() as session:
            items = item_queries.ok_item_paths(session, project.id)
        for item_id, path in items:
            record_annotation(db, item_id=item_id, class_names=[true_class(path)], annotator="ann")
    new = tmp_path / "images" / "new"
    new.mkdir()
    for name in ("airplane", "cat"):
        for source in sorted((SAMPLE_IMAGES / name).iterdir())[5:8]:
            shutil.copy(source, new / f"{name}-{source.name}")
    copies = {"copy-of-airplane.png": "airplane", "copy-of-cat.png": "cat"}
    for target, name in copies.items():
        near_copy(
            tmp_path / "images" / name / sorted(p.name for p in (tmp_path / "images" / name).iterdir())[0], new / target
        )
    assert main(["ingest", str(new)]) == 0
    return tmp_path, copies


@pytest.mark.slow
def test_cli_triage_writes_the_report_and_a_summary(triaged_project, capsys):
    base, copies = triaged_project
    out = base / "report.csv"
    capsys.readouterr()
    assert main(["triage", "--batch", "new", "--out", str(out), "--workers", "0"]) == 0
    printed = capsys.readouterr().out
    assert "batch: folder new: 8 unlabeled images (18 embedded now)" in printed
    assert "near-failures:" in printed and f"report: {out} (8 rows)" in printed

    with open(out, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["path"].split("/")[0] for row in rows] == ["new"] * 8
    by_path = {row["path"]: row for row in rows}
    for name, label in copies.items():
        row = by_path[f"new/{name}"]
        assert "near_copy" in row["kinds"].split(";") and row["would_get"] == label
        assert row["nearest_labeled_path"].startswith(f"{label}/") and float(row["nearest_similarity"]) >= 0.95
    assert sum("near_copy" in row["kinds"] for row in rows) == 2
    # Near-failures come first, lowest margin first.
    kinds = [row["kinds"].split(";") for row in rows]
    failures = [i for i, k in enumerate(kinds) if "near_failure" in k]
    assert failures == list(range(len(failures)))
    margins = [float(rows[i]["margin"]) for i in failures]
    assert margins == sorted(margins)
    assert all(row["predicted"] in ("airplane", "cat") for row in rows)

    # A second run embeds nothing new.
    assert main(["triage", "--batch", "new", "--out", str(out), "--workers", "0"]) == 0
    assert "(0 embedded now)" in capsys.readouterr().out


def test_cli_triage_errors_name_the_fix(triaged_project, capsys):
    base, _ = triaged_project
    assert main(["triage", "--batch", "nothing-here", "--out", str(base / "r.csv")]) == 1
    assert "no unlabeled images" in capsys.readouterr().err
    assert main(["triage", "--since", "yesterday", "--out", str(base / "r.csv")]) == 1
    assert "2026-11-26T14:30" in capsys.readouterr().err
    assert main(["triage", "--since", "2999-01-01", "--out", str(base / "r.csv")]) == 1
    with pytest.raises(UserError):
        parse_since("soon")
    assert parse_since("2026-11-26").tzinfo is not None


def test_batch_folder_is_read_relative_to_the_root_or_as_given_to_ingest(tmp_path, monkeypatch):
    from services.data_engine.triage import _folder_prefix

    root = tmp_path / "root"
    (root / "new" / "day1").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    assert _folder_prefix(str(root), "new/day1") == "new/day1/"
    assert _folder_prefix(str(root), "root/new") == "new/"  # relative to the working folder
    assert _folder_prefix(str(root), str(root / "new")) == "new/"
    assert _folder_prefix(str(root), ".") == ""
    assert _folder_prefix(str(root), "gone/later") == "gone/later/"  # deleted since ingest: still a prefix
    with pytest.raises(UserError, match="not under the project root"):
        _folder_prefix(str(root), "../elsewhere")
