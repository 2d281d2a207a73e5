"""Embedding throughput from image files against the same backbone's bare forward pass, in one run.

Usage: .venv/bin/python benchmarks/bench_embed.py [--backbone bundled] [--images 3000]
       [--batch-size 128] [--device cpu] [--half] [--workers N] [--random-resnet50 ARCH]

The files are copies of sample_data/images (JPEG, 32x32) in a temporary folder. "bare" runs
the model on a ready, normalised batch on the device, as many images as the files; "files"
is the whole ``extract_embeddings`` call: DataLoader decoding, the backbone's recipe, forward,
L2 normalisation and writing to a fresh store. The bare pass is timed before and after, and the
ratio is files / mean(bare). ``--random-resnet50 ARCH`` (``resnet50``, ``dino_resnet50``,
``swav_resnet50``) benchmarks that 224-px architecture with random weights, for machines
without the published weights file.
"""

from __future__ import annotations

import argparse
import itertools
import shutil
import tempfile
import time
from pathlib import Path

import torch
from torchvision.models import resnet50

from core.features.backbones import build_backbone
from core.features.embedding_store import EmbeddingStore
from core.features.extract import ExtractConfig, extract_embeddings
from core.images.preprocess import normalise

REPO_ROOT = Path(__file__).resolve().parents[1]


def bare_images_per_second(backbone, n, config):
    device = torch.device(config.device)
    dtype = torch.float16 if config.half else torch.float32
    model = backbone.model.to(device=device, dtype=dtype).eval()
    crop = backbone.recipe.crop
    batch = normalise(
        torch.randint(0, 256, (config.batch_size, 3, crop, crop), dtype=torch.uint8, device=device),
        backbone.recipe,
        dtype=dtype,
    )
    batches = max(1, n // config.batch_size)
    with torch.inference_mode():
        model(batch)
        _sync(device)
        start = time.perf_counter()
        for _ in range(batches):
            torch.nn.functional.normalize(model(batch).float(), dim=1)
        _sync(device)
    return batches * config.batch_size / (time.perf_counter() - start)


def files_images_per_second(backbone, paths, config, folder):
    with EmbeddingStore.open_for_writing(folder, backbone=backbone.describe(), dim=backbone.embed_dim) as store:
        start = time.perf_counter()
        report = extract_embeddings(backbone, store, list(range(len(paths))), paths, config=config)
        _sync(torch.device(config.device))
        seconds = time.perf_counter() - start
    assert report.embedded == len(paths) and not report.failures
    return len(paths) / seconds


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="bundled")
    parser.add_argument("--random-resnet50", metavar="ARCH", help="use ARCH@<random resnet50 weights> instead")
    parser.add_argument("--images", type=int, default=3000)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--half", action="store_true")
    parser.add_argument("--workers", type=int)
    args = parser.parse_args()
    config = ExtractConfig(batch_size=args.batch_size, num_workers=args.workers, device=args.device, half=args.half)
    with tempfile.TemporaryDirectory(prefix="banana-bench-") as temporary:
        temporary = Path(temporary)
        name = args.backbone
        if args.random_resnet50:
            model = resnet50(weights=None)
            model.fc = torch.nn.Identity()
            torch.save(model.state_dict(), temporary / "random.pth")
            name = f"{args.random_resnet50}@{temporary / 'random.pth'}"
        sources = sorted((REPO_ROOT / "sample_data" / "images").rglob("*.jpg"))
        paths = []
        for index, source in zip(range(args.images), itertools.cycle(sources)):
            paths.append(str(temporary / "images" / f"{index:07d}.jpg"))
            Path(paths[-1]).parent.mkdir(exist_ok=True)
            shutil.copyfile(source, paths[-1])
        backbone = build_backbone(name)
        print(
            f"backbone {backbone.name} ({backbone.embed_dim}-d, {backbone.recipe.crop}px), {args.images} JPEG files, "
            f"batch {config.batch_size}, {config.workers()} decoding workers, device {config.device}"
            f"{', float16' if config.half else ''}, torch {torch.__version__}, {torch.get_num_threads()} threads"
        )
        before = bare_images_per_second(backbone, args.images, config)
        files = files_images_per_second(backbone, paths, config, temporary / "store")
        after = bare_images_per_second(backbone, args.images, config)
        print(f"bare forward on ready tensors: {before:,.0f} img/s before, {after:,.0f} img/s after")
        print(f"embedding from files:          {files:,.0f} img/s")
        print(f"ratio files / bare:            {files / ((before + after) / 2):.3f}")


if __name__ == "__main__":
    main()
