"""Engine figures: probe retrain at 10k labels; similarity state, refresh and memory at 1M items.

Usage: .venv/bin/python benchmarks/bench_engine.py [--pool 1000000] [--dim 384] [--labels 10000]
                                                 [--dtype float32|float16]

Prints, each with the naive full recompute it replaces (measured in the same run):
the incremental update after 10 new labels (float32 and int8 similarity kernels, and
how far apart they are), the full refresh after a retrain, the probe retrain at 10k
labels with and without out-of-fold fits, and resident memory.
Synthetic data (no structure at the 1M scale, which is the worst case for any
pruning and irrelevant to brute force). Prints the machine's load and CPU seconds
next to wall seconds, so figures from a shared machine can be read in context.
benchmarks/bench_int8_memory.py breaks the int8 kernel's resident memory down, step by step.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np

from core.model.probe import LinearProbe
from core.model.retrain_worker import ProbeTrainer
from core.selection.scorers import band_parameters, get_scores
from core.selection.selection import select
from core.similarity.similarity_state import SimilarityState


def rss_mb():
    """Resident and peak resident memory of this process, MiB."""
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


def unit_rows(rng, n, dim, dtype, block=100_000):
    out = np.empty((n, dim), dtype)
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
    print(
        f"cold fit (full + 5 out-of-fold fits + temperature), in this process: {seconds:.2f} s {cpu_note()} "
        f"(out-of-fold accuracy {oof_accuracy:.3f}, temperature {probe.temperature_:.2f})"
    )
    warm = LinearProbe().fit(X[:n_labels], y[:n_labels])
    with_oof, _ = timed(lambda: warm.fit(X, y), repeats=3)
    print(
        f"retrain after 10 new labels, warm start, with 5 out-of-fold fits (naive: the served model waits "
        f"for them): {with_oof:.2f} s {cpu_note()}"
    )
    fast = LinearProbe().fit(X[:n_labels], y[:n_labels])
    without_oof, _ = timed(lambda: fast.fit(X, y, out_of_fold=False), repeats=3)
    print(f"retrain after 10 new labels, warm start, without out-of-fold fits: {without_oof:.2f} s {cpu_note()}")

    trainer = ProbeTrainer()
    try:
        served, _ = timed(lambda: trainer.fit(X[:n_labels], y[:n_labels], None))  # starts the worker
        print(f"worker process, first fit (process start + cold fit): {served:.2f} s")
        previous, _ = trainer.fit(X[:n_labels], y[:n_labels], None)  # a warm worker, as in use
        trainer.collect_calibration()
        served, (served_probe, _) = timed(lambda: trainer.fit(X, y, previous))
        calibration, _ = timed(trainer.collect_calibration)
        print(
            f"PROBE RETRAIN at {n_labels:,} labels, worker process, until the new model serves: {served:.2f} s "
            f"(wall, arrays both ways included); its out-of-fold calibration follows in the worker in "
            f"{calibration:.2f} s more; the same retrain waiting for out-of-fold fits in one go: "
            f"{with_oof:.2f} s ({with_oof / served:.1f}x)"
        )
    finally:
        trainer.close()
    return served_probe


def state_figures(n_pool, dim, rng, probe, dtype):
    print(f"\n== Similarity state: {n_pool:,} x {dim}-d {dtype}, float32 and int8 kernels ==")
    base_rss, _ = rss_mb()
    pool = unit_rows(rng, n_pool, dim, dtype)
    pool_rss, _ = rss_mb()
    labels_of = lambda rows: rows % 10  # noqa: E731 - 10 classes
    print(f"embeddings: {pool.nbytes / 2**20:,.0f} MiB (process RSS {base_rss:,.0f} -> {pool_rss:,.0f} MiB)")

    order = rng.permutation(n_pool)
    batches = [order[1000 + 10 * i : 1010 + 10 * i] for i in range(5)]
    states, incremental = {}, {}
    for kernel in ("float32", "int8"):
        rows = order[:1000]
        before, _ = rss_mb()
        seconds, state = timed(
            lambda kernel=kernel, rows=rows: SimilarityState(pool, kernel=kernel).refresh(rows, labels_of(rows))
        )
        packing = " (quantizing and packing the pool included)" if kernel == "int8" else ""
        print(
            f"[{kernel}] state from scratch with 1,000 labels{packing}: {seconds:.2f} s {cpu_note()}; "
            f"process RSS +{rss_mb()[0] - before:,.0f} MiB"
        )
        times, cpu = [], []
        for rows in batches:
            seconds, _ = timed(lambda state=state, rows=rows: state.add_labels(rows, labels_of(rows)))
            times.append(seconds)
            cpu.append(CPU["last"])
        incremental[kernel] = float(np.median(times))
        print(
            f"[{kernel}] INCREMENTAL UPDATE, 10 new labels (1,000 already labeled): {1000 * incremental[kernel]:.0f} ms "
            f"(median of 5; min {1000 * min(times):.0f} ms; CPU {1000 * np.median(cpu):.0f} ms)"
        )
        states[kernel] = state
    gap = np.abs(states["int8"].nearest_similarity_ - states["float32"].nearest_similarity_)
    print(
        f"int8 against float32 nearest-labeled similarity: max |difference| {gap.max():.4f}, mean {gap.mean():.5f}; "
        f"int8 is {incremental['float32'] / incremental['int8']:.1f}x faster"
    )

    labeled = order[:1050]
    naive_state, check = timed(lambda: SimilarityState(pool, kernel="float32").refresh(labeled, labels_of(labeled)))
    naive_state_cpu = CPU["last"]
    assert np.allclose(check.nearest_similarity_, states["float32"].nearest_similarity_, atol=1e-6)
    assert np.allclose(check.class_similarity_, states["float32"].class_similarity_, atol=1e-6)
    del check, states["float32"]
    state = states["int8"]
    full_int8, check = timed(lambda: SimilarityState(pool, kernel="int8").refresh(labeled, labels_of(labeled)))
    assert np.array_equal(check.nearest_similarity_, state.nearest_similarity_)
    assert np.array_equal(check.class_similarity_, state.class_similarity_)
    del check
    print(
        f"naive full recompute with all 1,050 labels (float32): {naive_state:.2f} s (CPU {naive_state_cpu:.2f} s) "
        f"= {naive_state / incremental['int8']:,.0f}x the int8 incremental update; the int8 full recompute "
        f"({full_int8:.2f} s, packing included) equals the int8 incremental state bit for bit"
    )

    undo_rows = batches[-1][:1]
    undo, _ = timed(lambda: state.remove_labels(undo_rows, labels_of(undo_rows)))
    undo_cpu = CPU["last"]
    state.add_labels(undo_rows, labels_of(undo_rows))
    print(
        f"[int8] undo of one label (remove_labels: that label x pool, then the items it was nearest to): "
        f"{1000 * undo:.0f} ms (CPU {1000 * undo_cpu:.0f} ms); the naive full recompute takes "
        f"{naive_state / undo:,.0f}x as long"
    )

    def refresh_after_retrain():
        """Predict the pool once, gather each item's predicted-class similarity, combine the scores."""
        predictions = state.predictions(probe)
        uncertainty = predictions.uncertainty("margin")
        class_similarity = state.similarity_to_class(probe.classes_[predictions.predicted_column()])
        centre, width = band_parameters(state.nearest_similarity_[~state.labeled_])
        score, _ = get_scores(
            "default",
            uncertainty_values=uncertainty,
            similarity=state.nearest_similarity_,
            band_center=centre,
            band_width=width,
        )
        return score, class_similarity

    refresh, _ = timed(refresh_after_retrain)
    refresh_cpu = CPU["last"]
    naive_refresh = naive_state + refresh  # recompute the similarities too, as if labels had changed
    print(
        f"FULL REFRESH AFTER A RETRAIN (predict the pool, gather the predicted-class similarity, combine): "
        f"{refresh:.2f} s (CPU {refresh_cpu:.2f} s); naive (also recompute all labels x pool): "
        f"{naive_refresh:.2f} s = {naive_refresh / refresh:.1f}x"
    )

    labeled_rows = np.flatnonzero(state.labeled_)
    state._predictions = None  # as after a new model version
    first, _ = timed(lambda: select(pool, labeled_rows, labels_of(labeled_rows), 20, probe=probe, state=state, rng=0))
    first_cpu = CPU["last"]
    cached, _ = timed(
        lambda: select(pool, labeled_rows, labels_of(labeled_rows), 20, probe=probe, state=state, rng=1), repeats=3
    )
    print(
        f"select 20 (default strategy, 10-class probe): first after a retrain {first:.2f} s (CPU {first_cpu:.2f} s),"
        f" later {cached:.2f} s {cpu_note()}"
    )
    rss, peak = rss_mb()
    arrays = [
        state.nearest_similarity_,
        state.nearest_index_,
        state.class_similarity_,
        state.labeled_,
        state.predictions(probe).predicted_column(),
        *state.predictions(probe)._uncertainty.values(),
    ]
    print(
        f"RESIDENT MEMORY at {n_pool:,} items: {rss:,.0f} MiB (peak {peak:,.0f} MiB; embeddings "
        f"{pool.nbytes / 2**20:,.0f} MiB, similarity state and pool predictions "
        f"{sum(a.nbytes for a in arrays) / 2**20:,.0f} MiB)"
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pool", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--labels", type=int, default=10_000)
    parser.add_argument("--dtype", choices=("float32", "float16"), default="float32")
    args = parser.parse_args()
    load = os.getloadavg()[0]
    print(
        f"cpus: {os.cpu_count()}, 1-min load average: {load:.1f}, "
        f"OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS', 'unset')}"
    )
    rng = np.random.default_rng(0)
    probe = probe_figures(args.labels, args.dim, rng)
    state_figures(args.pool, args.dim, rng, probe, args.dtype)
    print(f"1-min load average at the end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
