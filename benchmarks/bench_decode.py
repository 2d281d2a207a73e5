"""Embedding photos from JPEG files against the bare forward pass, with and without JPEG draft decoding.

Usage: .venv/bin/python benchmarks/bench_decode.py PHOTOS [--backbone resnet50|bundled] [--images N]
       [--batch-size 32] [--device cpu] [--half] [--workers N] [--gpu-decode] [--repeats 3]

PHOTOS is a folder searched for ``*.jpg``, e.g. the shared photo set unpacked under /tmp:
``tar xzf /work/shared/datasets/hymenoptera_photos.tar.gz -C /tmp`` (396 ant and bee photos,
mostly about 500x375, a few up to 2592x1944), cycled up to ``--images``. ``resnet50`` is
torchvision's architecture with random weights (no weights file needed) and the DINO evaluation
recipe (resize 256 bicubic, crop 224, ImageNet mean/std); ``bundled`` the 32-px bundled backbone.

"bare" runs the model on a ready, normalised batch on the device, as many images as the files.
"files" is the whole ``extract_embeddings`` call (DataLoader decoding, the recipe, forward, L2
normalisation, writing a fresh store), with ``Recipe.draft`` (a JPEG decodes at 1/2-1/8 scale
while both sides stay >= twice the recipe's resize) and without; the ratio is files / bare. Bare
and file runs alternate for ``--repeats`` rounds (bare once more at the end) and medians are
compared, since other jobs on a shared machine come and go. The cosine similarity of each
image's features with and without draft shows what draft costs (with random weights it says
little: the bundled backbone's figure is the one to read). ``--gpu-decode`` adds a run with
``ExtractConfig.gpu_decode`` (cuda only).
"""

from __future__ import annotations

import argparse
import itertools
import os
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torchvision.models import resnet50

from benchmarks.bench_embed import bare_images_per_second, files_images_per_second
from core.features.backbones import build_backbone
from core.features.embedding_store import EmbeddingStore
from core.features.extract import ExtractConfig
from core.images.decode import DRAFT_MARGIN
from core.images.preprocess import Recipe

REPO_ROOT = Path(__file__).resolve().parents[1]

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
DINO_RECIPE = Recipe(resize=256, crop=224, mean=IMAGENET_MEAN, std=IMAGENET_STD, interpolation="bicubic")


@dataclass(frozen=True)
class RandomResNet50:
    """torchvision's ResNet-50 (``fc`` removed) with random weights: a 224-px backbone without files."""

    model: torch.nn.Module
    recipe: Recipe = DINO_RECIPE
    embed_dim: int = 2048
    name: str = "resnet50 (random weights)"

    def describe(self):
        return dict(
            name=self.name, weights_sha256="random-weights", embed_dim=self.embed_dim, recipe=self.recipe.as_dict()
        )


def random_resnet50():
    torch.manual_seed(0)
    model = resnet50(weights=None)
    model.fc = torch.nn.Identity()
    return RandomResNet50(model=model.eval())


def draft_reduces(path, resize):
    """Whether draft decodes this JPEG below full size (see :func:`core.images.decode.open_rgb`)."""
    with Image.open(path) as image:
        return min(image.width, image.height) // (DRAFT_MARGIN * resize) >= 2


def vectors(folder):
    ids, rows = EmbeddingStore.open_for_reading(folder).done()
    return rows[np.argsort(ids)].astype(np.float32)


def _listed(rates):
    return ", ".join(f"{rate:,.1f}" for rate in rates)


def load():
    return "/".join(f"{value:.2f}" for value in os.getloadavg())


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("photos", type=Path)
    parser.add_argument("--backbone", choices=("resnet50", "bundled"), default="resnet50")
    parser.add_argument("--images", type=int, default=396)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--half", action="store_true")
    parser.add_argument("--workers", type=int)
    parser.add_argument("--gpu-decode", action="store_true")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved rounds of bare and file runs")
    args = parser.parse_args()
    sources = sorted(args.photos.rglob("*.jpg"))
    if not sources:
        parser.error(f"{args.photos} holds no *.jpg files; unpack the photo set there")
    paths = [str(path) for _, path in zip(range(args.images), itertools.cycle(sources))]
    config = ExtractConfig(batch_size=args.batch_size, num_workers=args.workers, device=args.device, half=args.half)
    backbone = random_resnet50() if args.backbone == "resnet50" else build_backbone("bundled")
    full_decode = replace(backbone, recipe=replace(backbone.recipe, draft=False))
    reduced = np.array([draft_reduces(path, backbone.recipe.resize) for path in paths])
    print(
        f"backbone {backbone.name} ({backbone.embed_dim}-d, resize {backbone.recipe.resize}, crop "
        f"{backbone.recipe.crop}), {len(paths)} JPEG files from {args.photos} ({reduced.sum()} large enough for draft "
        f"to reduce), batch {config.batch_size}, {config.workers()} decoding workers, device {config.device}"
        f"{', float16' if config.half else ''}, torch {torch.__version__}, {torch.get_num_threads()} threads"
    )
    print(f"load average at start: {load()}")
    with tempfile.TemporaryDirectory(prefix="banana-bench-") as temporary:
        temporary = Path(temporary)
        # Warm-up, not timed: the first batches pay for kernel selection and worker start-up.
        bare_images_per_second(backbone, 4 * config.batch_size, config)
        files_images_per_second(backbone, paths[: 4 * config.batch_size], config, temporary / "warm-up")
        # Interleaved rounds, medians compared: other jobs on a shared machine come and go.
        rates = {"bare": [], "draft": [], "full": [], "device": []}
        for round_ in range(args.repeats):
            rates["bare"].append(bare_images_per_second(backbone, len(paths), config))
            rates["draft"].append(files_images_per_second(backbone, paths, config, temporary / f"draft{round_}"))
            rates["full"].append(files_images_per_second(full_decode, paths, config, temporary / f"full{round_}"))
            if args.gpu_decode:
                rates["device"].append(
                    files_images_per_second(
                        full_decode, paths, replace(config, gpu_decode=True), temporary / f"device{round_}"
                    )
                )
        rates["bare"].append(bare_images_per_second(backbone, len(paths), config))
        cosine = (vectors(temporary / "draft0") * vectors(temporary / "full0")).sum(axis=1)
    bare = np.median(rates["bare"])
    print(f"bare forward on ready tensors:  median {bare:,.1f} img/s ({_listed(rates['bare'])})")
    for key, label in (
        ("draft", "draft (default)"),
        ("full", "full decode"),
        ("device", f"decoded on {config.device}"),
    ):
        if rates[key]:
            files = np.median(rates[key])
            print(
                f"from files, {label + ':':20} median {files:,.1f} img/s ({_listed(rates[key])}), "
                f"ratio files / bare {files / bare:.3f}"
            )
    print(
        f"cosine(draft, full decode) per image: min {cosine.min():.4f}, mean {cosine.mean():.4f} over all "
        f"{len(cosine)}"
        + (
            f"; min {cosine[reduced].min():.4f}, mean {cosine[reduced].mean():.4f}, median "
            f"{np.median(cosine[reduced]):.4f} over the {reduced.sum()} draft reduced"
            if reduced.any()
            else ""
        )
    )
    print(f"load average at end: {load()}")


if __name__ == "__main__":
    main()
