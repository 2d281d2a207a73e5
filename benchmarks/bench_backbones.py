"""Every backbone that runs here offline, on real photos and on CIFAR-10: feature quality and speed.

Backbones: ``bundled`` (SimCLR on 32x32 CIFAR-10), ``efficientnet_lite0`` (ImageNet-supervised,
weights from its pip package) and a random-init DINOv2 ViT-S/14 as a floor (timm's
``vit_small_patch14_dinov2`` with timm's random initialisation, saved as
``dinov2_vits14_pretrain.pth`` in a scratch torch hub folder and built through
``core.features.backbones.build_backbone("dinov2_vits14", hub_dir=...)``, the path a real download takes).
timm starts DINOv2's LayerScale at 1e-5, so the random blocks barely touch the class token: its
features are nearly the same for every image (pairwise cosine > 0.9999, and the float16 store
rounds much of the rest away). The floor is "no features at all", near chance.

Data: ``hymenoptera_photos.tar.gz`` (396 ant/bee photos, train and val as one pool) and a
CIFAR-10 subset (``--cifar-per-class`` random images of each class), both from ../shared/datasets.

Per data set and backbone:

- embed img/s: one fresh ``core.features.extract.extract_embeddings`` call into an empty store, with the
  app's default ``ExtractConfig`` (decode, resize, crop, forward, L2 norm, store write). Embeddings
  are cached under ``--work-dir``; a rerun reuses them and reprints the speed measured then,
  marked ``*``, with the load average of that run. ``--fresh`` re-embeds and re-times.
- forward img/s: the bare model on a ready random batch of 64, for comparison (decode's share).
- kNN@20: ``core.evaluation.knn.knn_accuracy``, stratified 5-fold, each fold queried against the other four.
- probe@N: ``core.model.probe.LinearProbe`` (app defaults, no out-of-fold fits) on N random labels,
  accuracy on the rest of the pool; mean ± sd over ``--seeds``. Skipped where the pool has fewer
  than N + 100 images.
- skill@100: ``core.features.feature_strength.feature_strength`` on 100 random labels: mean skill ± sd and
  how many seeds it called weak.
- label issues: a random 300-label subset, 10% of it flipped to another random class; out-of-fold
  probabilities of a 5-fold ``LinearProbe`` (as ``services.data_engine.label_issues`` computes them) go to
  ``core.quality.label_issues.find_issues``. Precision and recall against the flips, the share of correct
  labels flagged, and the share flagged when no label was flipped ("clean").

    python -m benchmarks.bench_backbones [--cifar-per-class 300] [--seeds 5] [--fresh]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.model_selection import StratifiedKFold

from core.evaluation.knn import knn_accuracy
from core.features.backbones import build_backbone
from core.features.embedding_store import EmbeddingStore
from core.features.extract import ExtractConfig, extract_embeddings
from core.features.feature_strength import feature_strength
from core.model.probe import LinearProbe
from core.quality.label_issues import find_issues

DATASETS = Path(__file__).resolve().parents[2] / "shared" / "datasets"
PROBE_LABELS = (100, 1000)
MIN_TEST = 100  # a probe budget is skipped unless this many images are left to test on
STRENGTH_LABELS = 100
ISSUE_LABELS = 300
FLIP_SHARE = 0.10
RANDOM_DINOV2 = "random-init dinov2_vits14"


def load_average():
    return Path("/proc/loadavg").read_text().strip()


def log(message):
    print(message, file=sys.stderr, flush=True)


def unpacked(archive, work_dir):
    """``archive`` unpacked under ``work_dir/raw/<archive stem>``, once."""
    target = work_dir / "raw" / archive.name.removesuffix(".tar.gz")
    if not (target / ".complete").is_file():
        shutil.rmtree(target, ignore_errors=True)
        target.mkdir(parents=True)
        with tarfile.open(archive) as tar:
            tar.extractall(target, filter="data")
        (target / ".complete").touch()
    return target


def photo_pool(work_dir):
    """The 396 ant/bee photos, train and val together: paths, labels, class names."""
    root = unpacked(DATASETS / "hymenoptera_photos.tar.gz", work_dir) / "hymenoptera_data"
    classes = sorted(p.name for p in (root / "train").iterdir() if p.is_dir())
    paths, labels = [], []
    for label, name in enumerate(classes):
        found = sorted(p for split in ("train", "val") for p in (root / split / name).glob("*.jpg"))
        paths += found
        labels += [label] * len(found)
    return paths, np.array(labels), classes


def cifar_pool(work_dir, per_class, seed=0):
    """``per_class`` random CIFAR-10 training images of each class: paths, labels, class names."""
    root = unpacked(DATASETS / "cifar10_train.tar.gz", work_dir) / "train"
    classes = sorted(p.name for p in root.iterdir() if p.is_dir())
    rng = np.random.default_rng(seed)
    paths, labels = [], []
    for label, name in enumerate(classes):
        files = sorted((root / name).glob("*.jpg"))
        paths += [files[i] for i in sorted(rng.choice(len(files), per_class, replace=False))]
        labels += [label] * per_class
    return paths, np.array(labels), classes


def random_dinov2(work_dir, seed=0):
    """DINOv2 ViT-S/14 with timm's random initialisation, loaded the way a published file is."""
    import timm

    hub = work_dir / "hub"
    checkpoint = hub / "checkpoints" / "dinov2_vits14_pretrain.pth"
    if not checkpoint.is_file():  # kept, so that its hash (and the embedding cache) stays the same
        checkpoint.parent.mkdir(parents=True, exist_ok=True)
        torch.manual_seed(seed)
        # The default 518-pixel size gives the published file's 37x37 position table.
        model = timm.create_model("vit_small_patch14_dinov2", pretrained=False, num_classes=0)
        torch.save(model.state_dict(), checkpoint)
    return build_backbone("dinov2_vits14", hub_dir=hub)


def backbones(work_dir):
    """(label, builder) of every backbone that runs here without a download."""
    return [
        ("bundled", lambda: build_backbone("bundled")),
        ("efficientnet_lite0", lambda: build_backbone("efficientnet_lite0")),
        (RANDOM_DINOV2, lambda: random_dinov2(work_dir)),
    ]


def timed_embeddings(backbone, paths):
    """Embeddings of ``paths`` from one fresh extraction into an empty store, and its seconds."""
    with tempfile.TemporaryDirectory(prefix="bench_backbones_store_") as folder:
        with EmbeddingStore.open_for_writing(folder, backbone=backbone.describe(), dim=backbone.embed_dim) as store:
            started = time.perf_counter()
            report = extract_embeddings(backbone, store, np.arange(len(paths)), [str(p) for p in paths])
            seconds = time.perf_counter() - started
            ids, vectors = store.done()
    if report.failures:
        raise RuntimeError(f"{len(report.failures)} images failed, e.g. {report.failures[0].message}")
    return vectors[np.argsort(ids)], seconds


@torch.inference_mode()
def forward_images_per_second(backbone, *, batch_size=64, batches=2):
    """The bare forward pass on a ready batch, for comparison with the whole extraction."""
    crop = backbone.recipe.crop
    batch = torch.randn(batch_size, 3, crop, crop)
    backbone.model(batch)  # warm-up
    started = time.perf_counter()
    for _ in range(batches):
        backbone.model(batch)
    return batches * batch_size / (time.perf_counter() - started)


def cached_embeddings(work_dir, dataset, label, build, paths, *, fresh):
    """(vectors, extraction img/s, forward img/s, load average when timed, whether read from the cache)."""
    cache = work_dir / "embeddings" / f"{dataset}-{len(paths)}-{label.replace(' ', '_')}.npz"
    if cache.is_file() and not fresh:
        saved = np.load(cache)
        return saved["vectors"], float(saved["speed"]), float(saved["forward"]), str(saved["loadavg"]), True
    backbone = build()
    log(f"  embedding {len(paths)} images with {label} ...")
    before = load_average()
    vectors, seconds = timed_embeddings(backbone, paths)
    speed, forward = len(paths) / seconds, forward_images_per_second(backbone)
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.savez(cache, vectors=vectors, speed=speed, forward=forward, loadavg=before)
    return vectors, speed, forward, before, False


def knn_5fold(x, y, seed=0):
    """kNN@20 accuracy over a stratified 5-fold split, every image queried once."""
    correct = 0
    for bank, queries in StratifiedKFold(5, shuffle=True, random_state=seed).split(x, y):
        correct += knn_accuracy(x[bank], y[bank], x[queries], y[queries], k=20) * len(queries)
    return correct / len(y)


def random_labels(n_pool, n_labels, seed):
    order = np.random.default_rng(seed).permutation(n_pool)
    return order[:n_labels], order[n_labels:]


def probe_accuracy(x, y, n_labels, seed):
    """Accuracy on the rest of the pool of a LinearProbe fit on ``n_labels`` random labels."""
    train, test = random_labels(len(y), n_labels, seed)
    probe = LinearProbe(n_folds=0).fit(x[train], y[train], classes=np.unique(y))
    return float(np.mean(probe.predict(x[test]) == y[test]))


def strength(x, y, seed):
    train, _ = random_labels(len(y), STRENGTH_LABELS, seed)
    return feature_strength(x[train], y[train])


def flagged_labels(x, noisy, n_classes, seed):
    """Positions that ``find_issues`` flags, from 5-fold out-of-fold LinearProbe probabilities."""
    probe = LinearProbe(n_folds=5, random_state=seed).fit(x, noisy, classes=np.arange(n_classes))
    return set(find_issues(noisy, probe.oof_proba_).positions.tolist())


def planted_issues(x, y, seed):
    """Precision, recall, share of correct labels flagged, share flagged with no flips."""
    rng = np.random.default_rng(seed)
    n_classes = int(y.max()) + 1
    subset = rng.permutation(len(y))[:ISSUE_LABELS]
    xs, given = x[subset], y[subset].copy()
    clean_share = len(flagged_labels(xs, given, n_classes, seed)) / len(given)
    flipped = rng.choice(len(given), round(FLIP_SHARE * len(given)), replace=False)
    given[flipped] = (given[flipped] + rng.integers(1, n_classes, len(flipped))) % n_classes  # another class
    flagged = flagged_labels(xs, given, n_classes, seed)
    planted = set(flipped.tolist())
    hits = len(flagged & planted)
    precision = hits / len(flagged) if flagged else float("nan")
    return precision, hits / len(planted), len(flagged - planted) / (len(given) - len(planted)), clean_share


def mean_sd(values, *, percent=True):
    """``mean ± sd`` of the non-NaN values, in percent or with two decimals; n/a if all are NaN."""
    values = np.asarray(values, float)
    if np.isnan(values).all():
        return "n/a"
    scale, unit, digits = (100, "%", 1) if percent else (1, "", 2)
    return f"{scale * np.nanmean(values):.{digits}f} ± {scale * np.nanstd(values):.{digits}f}{unit}"


def evaluate(x, y, seeds):
    """One table row's figures (strings) for embeddings ``x`` with labels ``y``."""
    row = {"kNN@20": f"{knn_5fold(x, y):.1%}"}
    for n_labels in PROBE_LABELS:
        row[f"probe@{n_labels}"] = (
            mean_sd([probe_accuracy(x, y, n_labels, s) for s in seeds]) if len(y) >= n_labels + MIN_TEST else "skipped"
        )
    verdicts = [strength(x, y, s) for s in seeds]
    row[f"skill@{STRENGTH_LABELS}"] = (
        f"{mean_sd([v.skill for v in verdicts], percent=False)}, weak {sum(v.weak for v in verdicts)}/{len(verdicts)}"
    )
    issues = np.array([planted_issues(x, y, s) for s in seeds])
    row["issues P"] = mean_sd(issues[:, 0], percent=False)
    row["issues R"] = mean_sd(issues[:, 1], percent=False)
    row["correct flagged"] = mean_sd(issues[:, 2])
    row["clean flagged"] = mean_sd(issues[:, 3])
    return row


def print_table(title, rows):
    print(f"\n### {title}\n")
    columns = list(rows[0])
    print("| " + " | ".join(columns) + " |")
    print("|" + " --- |" * len(columns))
    for row in rows:
        print("| " + " | ".join(row[c] for c in columns) + " |")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cifar-per-class", type=int, default=300)
    parser.add_argument("--seeds", type=int, default=5, help="random label draws per figure (default 5)")
    parser.add_argument(
        "--work-dir",
        type=Path,
        default=Path(tempfile.gettempdir()) / "bench_backbones",
        help="unpacked data, the random DINOv2 file and cached embeddings (default /tmp/bench_backbones)",
    )
    parser.add_argument("--fresh", action="store_true", help="re-embed and re-time instead of using cached embeddings")
    args = parser.parse_args()
    seeds = range(args.seeds)
    started = time.perf_counter()
    print(f"loadavg before: {load_average()}")
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, extraction {ExtractConfig()}, "
        f"{args.seeds} seeds"
    )
    pools = [
        ("hymenoptera photos (train+val)", "photos", lambda: photo_pool(args.work_dir)),
        (
            f"CIFAR-10, {args.cifar_per_class} per class",
            "cifar10",
            lambda: cifar_pool(args.work_dir, args.cifar_per_class),
        ),
    ]
    for title, dataset, pool in pools:
        paths, y, classes = pool()
        log(f"{title}: {len(paths)} images")
        rows, notes = [], []
        for label, build in backbones(args.work_dir):
            x, speed, forward, timed_load, cached = cached_embeddings(
                args.work_dir, dataset, label, build, paths, fresh=args.fresh
            )
            log(f"  evaluating {label} ...")
            mark = "*" if cached else ""
            if cached:
                notes.append(f"* {label}: speeds from the run that cached it (loadavg then: {timed_load})")
            rows.append(
                {
                    "backbone": label,
                    "dim": str(x.shape[1]),
                    "embed img/s": f"{speed:.0f}{mark}",
                    "forward img/s": f"{forward:.0f}{mark}",
                    **evaluate(x, y, seeds),
                }
            )
        print_table(f"{title}: {len(paths)} images, {len(classes)} classes ({', '.join(classes)})", rows)
        for n_labels in PROBE_LABELS:
            if len(paths) < n_labels + MIN_TEST:
                print(
                    f"probe@{n_labels} skipped: the pool has {len(paths)} images, fewer than {n_labels} labels "
                    f"+ {MIN_TEST} to test on"
                )
        for note in notes:
            print(note)
    print(
        f"\nissues: {ISSUE_LABELS} random labels, {FLIP_SHARE:.0%} flipped; P/R against the flips; "
        "'correct flagged' = share of unflipped labels flagged; 'clean flagged' = share flagged with no flips"
    )
    print(f"total {time.perf_counter() - started:.0f}s")
    print(f"loadavg after: {load_average()}")


if __name__ == "__main__":
    main()
