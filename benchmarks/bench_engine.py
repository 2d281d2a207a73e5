"""Engine figures: probe retrain at 10k labels, similarity state at 1M items.

Usage: .venv/bin/python benchmarks/bench_engine.py [--pool 1000000] [--dim 384] [--labels 10000]

Synthetic data (no structure at the 1M scale, which is the worst case for any
pruning and irrelevant to brute force). Prints the machine's load so figures from a
shared machine can be read in context.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.probe import LinearProbe  # noqa: E402
from core.selection import select  # noqa: E402
from core.similarity_state import SimilarityState  # noqa: E402


def rss_mb():
    """Resident and peak resident memory of this process, MB."""
    fields = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines() if ":" in line)
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


CPU = {}  # CPU seconds of the last timed call: on a shared machine, wall time includes waiting for a core


def timed(fn, repeats=1):
    """Median wall seconds of ``repeats`` calls, and the last result; their median
    CPU seconds (all threads of this process) go to ``CPU["last"]``."""
    times, cpu = [], []
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        result = fn()
        times.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    CPU["last"] = float(np.median(cpu))
    return float(np.median(times)), result


def cpu_note():
    return f"(CPU {CPU['last']:.2f} s)"


def unit_rows(rng, n, dim, block=100_000):
    out = np.empty((n, dim), np.float32)
    for b0 in range(0, n, block):
        x = rng.standard_normal((min(block, n - b0), dim), dtype=np.float32)
        out[b0 : b0 + block] = x / np.linalg.norm(x, axis=1, keepdims=True)
    return out


def probe_figures(n_labels, dim, rng):
    """10 overlapping classes with a common component, as normalised SSL features have."""
    k = 10
    centres = rng.standard_normal((k, dim)).astype(np.float32)
    common = np.abs(rng.standard_normal(dim)).astype(np.float32)
    y = rng.integers(0, k, n_labels + 10)
    X = 0.006 * centres[y] + 0.05 * rng.standard_normal((len(y), dim)).astype(np.float32) + 0.05 * common
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    print(f"\n== Probe: {n_labels:,} labels x {dim}-d, {k} classes ==")
    probe = LinearProbe()
    seconds, _ = timed(lambda: probe.fit(X[:n_labels], y[:n_labels]))
    oof_accuracy = np.mean(probe.oof_proba_.argmax(axis=1) == y[:n_labels])
    print(f"cold fit (full + 5 out-of-fold fits + temperature): {seconds:.2f} s {cpu_note()} "
          f"(out-of-fold accuracy {oof_accuracy:.3f}, temperature {probe.temperature_:.2f})")
    seconds, _ = timed(lambda: probe.fit(X, y), repeats=3)
    print(f"retrain after 10 new labels, warm start (full + 5 out-of-fold fits): {seconds:.2f} s {cpu_note()}")
    fast = LinearProbe(n_folds=0).fit(X[:n_labels], y[:n_labels])
    seconds, _ = timed(lambda: fast.fit(X, y), repeats=3)
    print(f"retrain after 10 new labels, warm start, no out-of-fold fits (n_folds=0): {seconds:.2f} s {cpu_note()}")
    return probe


def state_figures(n_pool, dim, rng, probe):
    print(f"\n== Similarity state: {n_pool:,} x {dim}-d float32 ==")
    base_rss, _ = rss_mb()
    pool = unit_rows(rng, n_pool, dim)
    pool_rss, _ = rss_mb()
    labels_of = lambda rows: rows % 10  # noqa: E731 - 10 classes
    print(f"embeddings: {pool.nbytes / 2**20:,.0f} MB (process RSS {base_rss:,.0f} -> {pool_rss:,.0f} MB)")

    order = rng.permutation(n_pool)
    full = {}
    for n_labels in (10, 100, 1000):
        rows = order[:n_labels]
        full[n_labels], state = timed(lambda: SimilarityState(pool).refresh(rows, labels_of(rows)))
        print(f"full refresh (recompute) with {n_labels:>5,} labels: {full[n_labels]:.2f} s {cpu_note()}")
    state_rss, peak = rss_mb()
    state_bytes = sum(a.nbytes for a in (state.nearest_similarity_, state.nearest_index_, state.class_similarity_,
                                         state.labeled_))
    print(f"state arrays with 10 classes: {state_bytes / 2**20:,.0f} MB; "
          f"process RSS {state_rss:,.0f} MB (peak {peak:,.0f} MB)")

    batches = [order[1000 + 10 * i : 1010 + 10 * i] for i in range(5)]
    times, cpu = [], []
    for rows in batches:
        seconds, _ = timed(lambda: state.add_labels(rows, labels_of(rows)))
        times.append(seconds)
        cpu.append(CPU["last"])
    incremental = float(np.median(times))
    print(f"incremental update, 10 new labels (1,000 already labeled): {1000 * incremental:.0f} ms "
          f"(median of 5; min {1000 * min(times):.0f} ms; CPU {1000 * np.median(cpu):.0f} ms)")

    labeled = order[:1050]
    recompute, check = timed(lambda: SimilarityState(pool).refresh(labeled, labels_of(labeled)))
    assert np.allclose(check.nearest_similarity_, state.nearest_similarity_, atol=1e-6)
    print(f"naive full recompute with all 1,050 labels (what the state avoids): {recompute:.2f} s {cpu_note()} "
          f"= {recompute / incremental:,.0f}x the incremental update (results equal)")

    def after_retrain():
        predicted = np.concatenate([probe.classes_[probe.predict_proba(pool[b : b + 65_536]).argmax(axis=1)]
                                    for b in range(0, n_pool, 65_536)])
        return state.similarity_to_class(predicted)

    labeled_rows = np.flatnonzero(state.labeled_)
    seconds, _ = timed(lambda: select(pool, labeled_rows, labels_of(labeled_rows), 20, probe=probe, state=state,
                                      rng=0))
    print(f"select 20 (default strategy, with the state and a 10-class probe): {seconds:.2f} s {cpu_note()}")

    seconds, _ = timed(after_retrain)
    print(f"after a retrain (predict the pool, gather each item's predicted-class similarity): {seconds:.2f} s "
          f"{cpu_note()}")
    _, peak = rss_mb()
    print(f"peak process RSS: {peak:,.0f} MB")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pool", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--labels", type=int, default=10_000)
    args = parser.parse_args()
    load = os.getloadavg()[0]
    print(f"cpus: {os.cpu_count()}, 1-min load average: {load:.1f}, "
          f"OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS', 'unset')}")
    rng = np.random.default_rng(0)
    probe = probe_figures(args.labels, args.dim, rng)
    state_figures(args.pool, args.dim, rng, probe)


if __name__ == "__main__":
    main()
