"""Quality of a backbone file on CIFAR-10 images it did not train on, beside a random-init twin.

kNN: k=20, cosine, similarity-weighted votes (DINO's protocol); the bank is the SSL
training split (file number < HOLDOUT_FROM in each class folder), the queries are the
held-out rest. Linear probe: logistic regression on 1,000 random training-split
images with their labels, accuracy on the held-out images.

    python -m benchmarks.bench_backbone_quality /tmp/cifar10/train [--backbone PATH]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression

from core.evaluation.knn import knn_accuracy
from core.features.backbone_file import load_backbone
from core.features.encode import encode_uint8
from core.features.nets import SmallResNet
from core.transfer.class_folder import read_class_folder

BUNDLED = Path(__file__).resolve().parents[1] / "sample_data" / "backbone" / "backbone.safetensors"


def linear_probe_accuracy(train_x, train_y, test_x, test_y, n_labels, seed):
    pick = np.random.default_rng(seed).choice(len(train_x), n_labels, replace=False)
    probe = LogisticRegression(max_iter=2000, C=1.0).fit(train_x[pick], train_y[pick])
    return float(probe.score(test_x, test_y))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data_dir")
    parser.add_argument("--backbone", default=str(BUNDLED))
    parser.add_argument("--holdout-from", type=int, default=4000)
    parser.add_argument("--labels", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))

    model, prep, info = load_backbone(args.backbone)
    started = time.perf_counter()
    images, labels, paths, _ = read_class_folder(args.data_dir, size=prep.image_size, workers=args.workers)
    train = np.array([int(p.stem) for p in paths]) < args.holdout_from
    print(
        f"decoded {len(images)} images in {time.perf_counter() - started:.0f}s "
        f"({train.sum()} SSL-training split, {(~train).sum()} held out)"
    )

    torch.manual_seed(0)
    random_twin = SmallResNet(widths=model.widths, blocks=model.blocks).eval()
    rows = []
    for name, network in [("random init", random_twin), (f"SSL ({info.get('method', '?')})", model)]:
        started = time.perf_counter()
        features = encode_uint8(network, images, mean=prep.mean, std=prep.std, batch_size=500)
        seconds = time.perf_counter() - started
        knn = knn_accuracy(features[train], labels[train], features[~train], labels[~train], k=20)
        probe = linear_probe_accuracy(
            features[train], labels[train], features[~train], labels[~train], args.labels, seed=0
        )
        rows.append((name, knn, probe, len(images) / seconds))
    print(f"\nbackbone: {args.backbone}\n")
    print(f"| network | kNN@20 held-out | linear probe, {args.labels} labels | embed img/s (CPU) |")
    print("| --- | --- | --- | --- |")
    for name, knn, probe, speed in rows:
        print(f"| {name} | {knn:.1%} | {probe:.1%} | {speed:.0f} |")


if __name__ == "__main__":
    main()
