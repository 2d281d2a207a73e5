"""Train the bundled backbone: SimCLR on CIFAR-10 training images, time-boxed.

Images whose file number is below ``--holdout-from`` (in every class folder) are
the SSL training pool; the rest are held out, so quality figures are measured on
images the backbone never saw. Class folder names feed only the kNN monitor.

    python -m scripts.train_bundled_backbone --data-dir /tmp/cifar10/train \
        --out sample_data/backbone --train-seconds 450 --device cuda \
        [--init sample_data/backbone/backbone.safetensors]

``--init`` continues training from a backbone file (a new projection head, a new
learning-rate schedule); the result's info records the file it started from.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import torch

from core.evaluation.knn import KNNMonitor
from core.features.backbone_file import Preprocessing, load_backbone, read_header, save_backbone
from core.ssl.simclr import SimCLRConfig, SimCLRTrainer
from core.transfer.class_folder import read_class_folder


class StepTimer:
    def __init__(self, start_step):
        self.start_step, self.times = start_step, {}

    def on_step(self, trainer, step, loss):
        if step in (self.start_step, self.start_step + 20):
            if trainer.device == "cuda":
                torch.cuda.synchronize()
            self.times[step] = time.perf_counter()


class Progress:
    def __init__(self, every):
        self.every, self.start = every, time.perf_counter()

    def on_step(self, trainer, step, loss):
        if step % self.every == 0:
            print(f"step {step} loss {float(loss):.4f} {time.perf_counter() - self.start:.0f}s", flush=True)


class Snapshot:
    """Exports the backbone now and then, so a run cut short still leaves a usable file."""

    def __init__(self, path, every):
        self.path, self.every = path, every

    def on_epoch_end(self, trainer, epoch):
        if (epoch + 1) % self.every == 0:
            export(trainer, self.path, info=dict(partial=True, steps=trainer.step_))


def export(trainer, path, *, info):
    preprocessing = Preprocessing(
        image_size=trainer.config.image_size, mean=tuple(map(float, trainer.mean_)), std=tuple(map(float, trainer.std_))
    )
    save_backbone(path, trainer.backbone_, preprocessing=preprocessing, info=info)


def calibrate_seconds_per_step(images, config, device):
    """Time 20 steps after 10 warm-up steps with the real recipe."""
    subset = images[: config.batch_size * 30]
    steps_per_epoch = len(subset) // min(config.batch_size, len(subset))
    probe = replace(config, epochs=-(-30 // steps_per_epoch))
    timer = StepTimer(10)
    SimCLRTrainer(config=probe, device=device, callbacks=[timer]).fit(subset)
    return (timer.times[30] - timer.times[10]) / 20


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--out", required=True, help="output folder for backbone.safetensors and train_log.json")
    parser.add_argument("--state", default=None, help="resumable training state (default: OUT/simclr_state.pt)")
    parser.add_argument("--holdout-from", type=int, default=4000)
    parser.add_argument("--epochs", type=int, default=None, help="default: as many as fit in --train-seconds")
    parser.add_argument("--train-seconds", type=float, default=450)
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--monitor-every", type=int, default=10)
    parser.add_argument("--workers", type=int, default=os.cpu_count())
    parser.add_argument("--init", default=None, help="backbone file to continue training from")
    args = parser.parse_args()
    started = time.perf_counter()
    if args.device == "cuda":
        torch.backends.cudnn.benchmark = True

    images, labels, paths, classes = read_class_folder(args.data_dir, size=32, workers=args.workers)
    numbers = np.array([int(p.stem) for p in paths])
    train = numbers < args.holdout_from
    print(
        f"decoded {len(images)} images in {time.perf_counter() - started:.1f}s; "
        f"{train.sum()} train, {(~train).sum()} held out",
        flush=True,
    )

    config = SimCLRConfig(batch_size=args.batch_size)
    init_backbone, continued_from = None, None
    if args.init:
        model, _, _ = load_backbone(args.init)
        init_backbone = model.state_dict()
        config = replace(config, widths=model.widths, blocks=model.blocks)
        continued_from = dict(file=Path(args.init).name, info=read_header(args.init)["info"])
    epochs = args.epochs
    if epochs is None:
        seconds_per_step = calibrate_seconds_per_step(images[train], config, args.device)
        steps_per_epoch = int(train.sum()) // config.batch_size
        epochs = max(1, int(args.train_seconds / (seconds_per_step * steps_per_epoch * 1.08)))
        print(f"{seconds_per_step * 1000:.1f} ms/step -> {epochs} epochs in {args.train_seconds:.0f}s", flush=True)
    config = replace(config, epochs=epochs)

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    monitor = KNNMonitor(
        bank_images=images[train],
        bank_labels=labels[train],
        query_images=images[~train],
        query_labels=labels[~train],
        every=args.monitor_every,
    )
    trainer = SimCLRTrainer(
        config=config,
        device=args.device,
        init_backbone=init_backbone,
        callbacks=[monitor, Progress(100), Snapshot(out / "backbone.safetensors", args.monitor_every)],
    )
    train_started = time.perf_counter()
    trainer.fit(images[train], checkpoint_path=args.state or str(out / "simclr_state.pt"))
    train_seconds = time.perf_counter() - train_started
    final_knn = monitor.evaluate(trainer)

    device_name = torch.cuda.get_device_name() if args.device == "cuda" else platform.processor() or "cpu"
    info = dict(
        method="SimCLR",
        config=json.loads(json.dumps(asdict(config))),
        data=f"CIFAR-10 train, file numbers < {args.holdout_from} per class ({int(train.sum())} images)",
        device=device_name,
        torch=torch.__version__,
        train_seconds=round(train_seconds, 1),
        steps=trainer.step_,
        knn20_heldout=round(final_knn, 4),
        classes_for_monitor_only=classes,
    )
    if continued_from:
        info["continued_from"] = continued_from
    export(trainer, out / "backbone.safetensors", info=info)
    (out / "train_log.json").write_text(
        json.dumps(dict(info=info, monitor=monitor.results_, history=trainer.history_), indent=1)
    )
    print(json.dumps(info), flush=True)
    print(f"total {time.perf_counter() - started:.0f}s", flush=True)


if __name__ == "__main__":
    main()
