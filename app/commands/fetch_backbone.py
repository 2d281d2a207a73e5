"""``fetch-backbone``: download a published backbone's checkpoint, the only download banana makes."""

from __future__ import annotations

import argparse
import os
import sys
import time

from services.config import Settings

# Not imported from services.features.backbone_download, which imports torch: --help stays fast.
MIRROR_VARIABLE = "BANANA_BACKBONE_MIRROR"
EXIT_STOPPED = 130  # the shell's code for a command ended by Ctrl-C


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "fetch-backbone",
        help="download a published backbone's weights (DINOv2, DINO, ResNet-50, ...) into the torch hub cache",
        description=(
            "Download the original published checkpoint of a backbone to $TORCH_HOME/hub/checkpoints, where "
            "`embed --backbone NAME` and the app find it. This is the only command that downloads. An "
            "interrupted download resumes when you run the command again; the file is checked against its "
            "pinned SHA-256 before it gets its final name (a mismatch deletes it). Exits 0 when the weights "
            "are in place (or need no download), 1 when they could not be fetched, 130 when stopped with Ctrl-C."
        ),
    )
    parser.add_argument(
        "name",
        metavar="NAME",
        help="dinov2_vits14, dinov2_vitb14, dino_vits16, dino_resnet50, swav_resnet50 or resnet50",
    )
    parser.add_argument(
        "--mirror",
        default=os.environ.get(MIRROR_VARIABLE) or None,
        metavar="URL",
        help="http(s)://host[:port][/prefix] serving the published paths, used instead of the "
        f"publisher's host (default: the {MIRROR_VARIABLE} variable)",
    )
    parser.add_argument(
        "--unverified",
        action="store_true",
        help="download a backbone that has no pinned SHA-256 (dino_vits16, swav_resnet50); "
        "its hash is printed for you to compare",
    )
    parser.set_defaults(run=run)


class ByteProgress:
    """A download's progress on stderr: a tqdm bar on a terminal, else a plain line every tenth."""

    def __init__(self, name):
        self.name = name
        self.bar = None
        self.started = None
        self.first = 0
        self.tenths_said = -1

    def __call__(self, *, url, path, done, total):
        if self.started is None:
            self.started, self.first = time.monotonic(), done
            resumed = f", resuming at {done / 1e6:.1f} MB" if done else ""
            print(f"fetching {self.name} from {url} to {path}{resumed}", file=sys.stderr, flush=True)
            if sys.stderr.isatty():
                from tqdm import tqdm

                self.bar = tqdm(total=total, initial=done, unit="B", unit_scale=True, desc=self.name)
        if self.bar is not None:
            self.bar.update(done - self.bar.n)
            return
        tenths = int(10 * done / total) if total else done // 50_000_000
        if tenths > self.tenths_said:
            self.tenths_said = tenths
            seconds = time.monotonic() - self.started
            speed = f", {(done - self.first) / 1e6 / seconds:.1f} MB/s" if seconds > 0 else ""
            of_total = f" of {total / 1e6:.1f} MB ({100 * done // total}%)" if total else " MB"
            print(f"{self.name}: {done / 1e6:.1f}{of_total}{speed}", file=sys.stderr, flush=True)

    def close(self):
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def run(args: argparse.Namespace, settings: Settings) -> int:
    from services.features.backbone_download import DownloadStopped, fetch_backbone  # imports torch

    progress = ByteProgress(args.name)
    try:
        report = fetch_backbone(args.name, mirror=args.mirror, allow_unverified=args.unverified, on_progress=progress)
    except DownloadStopped as stopped:
        progress.close()
        print(f"stopped: {stopped}", file=sys.stderr)
        return EXIT_STOPPED
    finally:
        progress.close()
    print(describe(report))
    return 0


def describe(report) -> str:
    """What happened, in one or two sentences, and how to use the backbone."""
    use = (
        f" Use it: python -m app.cli backbone --set {report.name} [--project NAME] (new projects pick a "
        "fetched self-supervised backbone by themselves)."
    )
    if report.outcome == "bundled":
        return f"{report.name}: nothing to download; it ships with banana ({report.path})."
    if report.outcome == "packaged":
        return (
            f"{report.name}: nothing to download; its weights ship inside an installed pip package ({report.path})."
            + use
        )
    if report.outcome == "present":
        check = (
            f"verified (SHA-256 {report.sha256})"
            if report.verified
            else f"SHA-256 {report.sha256}; no published hash is pinned to check it against"
        )
        return f"{report.name}: already downloaded, {check}: {report.path}. Nothing to do." + use
    resumed = f", resumed at {report.resumed_from / 1e6:.1f} MB" if report.resumed_from else ""
    size = (report.downloaded_bytes + report.resumed_from) / 1e6
    if report.verified:
        return (
            f"{report.name}: downloaded {size:.1f} MB{resumed} to {report.path}; SHA-256 verified "
            f"({report.sha256})." + use
        )
    return (
        f"{report.name}: downloaded {size:.1f} MB{resumed} to {report.path}. NOT verified: no published "
        f"SHA-256 is pinned for it; its SHA-256 is {report.sha256}: compare it with a source you trust." + use
    )
