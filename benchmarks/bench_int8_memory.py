"""Resident memory and build time of the int8 similarity kernel at 1M x 384-d, for the
working tree's core/similarity/pool_kernels.py and a git revision's, in one run.

Usage: .venv/bin/python benchmarks/bench_int8_memory.py [--pool 1000000] [--dim 384]
                                                        [--baseline HEAD] [--labels 1000]

Each variant runs in a fresh process (so resident memory is its own) through the same steps
as benchmarks/bench_engine.py's int8 part: the pool, a SimilarityState with 1,000 labels
built from scratch, 5 incremental updates of 10 labels, then a second state from scratch
with all labels (the full recompute, checked equal bit for bit) that is then dropped.
After each step it prints RSS and peak RSS (/proc/self/status) and glibc's heap figures
(mallinfo2: bytes in use and bytes free but kept by the allocator). The variants' final
similarities are compared bit for bit.
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import hashlib
import json
import os
import subprocess
import sys
import time
import types
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def rss_mb():
    fields = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines() if ":" in line)
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


class _MallInfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost".split()
    ]


def heap_mb():
    """glibc's (heap in use, heap free but kept, mmapped chunks), MiB; None off glibc."""
    try:
        mallinfo2 = ctypes.CDLL("libc.so.6").mallinfo2
    except (OSError, AttributeError):
        return None
    mallinfo2.restype = _MallInfo2
    info = mallinfo2()
    return info.uordblks / 2**20, info.fordblks / 2**20, info.hblkhd / 2**20


def child(rev, n, dim, n_labels):
    import numpy as np

    if rev:  # the revision's kernels, in place of the working tree's, before anything imports them
        import core.similarity

        module = types.ModuleType("core.similarity.pool_kernels")
        module.__file__ = f"{rev}:core/similarity/pool_kernels.py"
        source = subprocess.run(
            ["git", "show", f"{rev}:core/similarity/pool_kernels.py"],
            cwd=ROOT,
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        sys.modules["core.similarity.pool_kernels"] = module
        exec(compile(source, module.__file__, "exec"), module.__dict__)
        core.similarity.pool_kernels = module
    import torch  # noqa: F401 - loaded before the baseline figure, as the kernel loads it

    from core.similarity.similarity_state import SimilarityState

    records = []

    def record(step, seconds=None):
        rss, peak = rss_mb()
        heap = heap_mb()
        records.append(
            {
                "step": step,
                "rss": rss,
                "peak": peak,
                "seconds": seconds,
                "heap_used": heap and heap[0],
                "heap_free": heap and heap[1],
                "mmapped": heap and heap[2],
            }
        )

    record("start (numpy, torch, core imported)")
    rng = np.random.default_rng(0)
    pool = np.empty((n, dim), np.float32)
    for b0 in range(0, n, 100_000):  # as bench_engine.unit_rows
        x = rng.standard_normal((min(100_000, n - b0), dim), dtype=np.float32)
        pool[b0 : b0 + 100_000] = x / np.linalg.norm(x, axis=1, keepdims=True)
    del x
    record(f"pool {n:,} x {dim} float32 ({pool.nbytes / 2**20:,.0f} MiB)")
    labels_of = lambda rows: rows % 10  # noqa: E731
    order = rng.permutation(n)
    rows = order[:n_labels]

    start = time.perf_counter()
    state = SimilarityState(pool, kernel="int8")
    record("int8 kernel built (quantized and packed)", time.perf_counter() - start)
    start = time.perf_counter()
    state.refresh(rows, labels_of(rows))
    record(f"state refreshed with {n_labels:,} labels", time.perf_counter() - start)
    start = time.perf_counter()
    for i in range(5):
        batch = order[n_labels + 10 * i : n_labels + 10 * i + 10]
        state.add_labels(batch, labels_of(batch))
    record("5 incremental updates of 10 labels", time.perf_counter() - start)
    undo = order[n_labels + 40 : n_labels + 41]
    start = time.perf_counter()
    state.remove_labels(undo, labels_of(undo))
    state.add_labels(undo, labels_of(undo))
    record("undo of one label and redo", time.perf_counter() - start)
    labeled = order[: n_labels + 50]
    start = time.perf_counter()
    full = SimilarityState(pool, kernel="int8").refresh(labeled, labels_of(labeled))
    record("second state from scratch (full recompute)", time.perf_counter() - start)
    same = np.array_equal(full.nearest_similarity_, state.nearest_similarity_) and np.array_equal(
        full.class_similarity_, state.class_similarity_
    )
    del full
    gc.collect()
    record("second state dropped")
    digest = hashlib.sha256(
        state.nearest_similarity_.tobytes() + state.class_similarity_.tobytes() + state.nearest_index_.tobytes()
    ).hexdigest()[:16]
    print(json.dumps({"records": records, "incremental_equals_full": bool(same), "digest": digest}))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pool", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--labels", type=int, default=1000)
    parser.add_argument(
        "--baseline", default="HEAD", help="git revision whose core/similarity/pool_kernels.py is compared"
    )
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        return child(args.child, args.pool, args.dim, args.labels)
    print(f"cpus: {os.cpu_count()}, 1-min load average: {os.getloadavg()[0]:.1f}")
    results = {}
    for name, rev in ((f"{args.baseline} (before)", args.baseline), ("working tree (after)", "")):
        out = subprocess.run(
            [
                sys.executable,
                __file__,
                "--child",
                rev,
                "--pool",
                str(args.pool),
                "--dim",
                str(args.dim),
                "--labels",
                str(args.labels),
            ],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        results[name] = json.loads(out.strip().splitlines()[-1])
    for name, result in results.items():
        print(f"\n== int8 kernel, {name}: {args.pool:,} x {args.dim}-d ==")
        print(
            f"{'step':<48} {'seconds':>8} {'RSS MiB':>8} {'peak':>8} {'heap used':>10} {'heap free':>10} {'mmapped':>8}"
        )
        previous = None
        for r in result["records"]:
            seconds = "" if r["seconds"] is None else f"{r['seconds']:.2f}"
            heap = (
                ("", "", "")
                if r["heap_used"] is None
                else (f"{r['heap_used']:,.0f}", f"{r['heap_free']:,.0f}", f"{r['mmapped']:,.0f}")
            )
            delta = "" if previous is None else f" ({r['rss'] - previous:+,.0f})"
            print(
                f"{r['step']:<48} {seconds:>8} {r['rss']:>8,.0f} {r['peak']:>8,.0f} {heap[0]:>10} {heap[1]:>10} "
                f"{heap[2]:>8}{delta}"
            )
            previous = r["rss"]
        print(f"incremental state equals the full recompute bit for bit: {result['incremental_equals_full']}")
    digests = {result["digest"] for result in results.values()}
    print(f"\nboth variants give the same similarities bit for bit: {len(digests) == 1}")
    print(f"1-min load average at the end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
