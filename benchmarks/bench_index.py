"""Similarity index at scale: build and search time, recall@10 of the approximate index, memory.

Usage: .venv/bin/python benchmarks/bench_index.py [--sizes 100000 1000000]

Synthetic 384-d embeddings, built to be hard for an approximate index: 10 random cluster
centres, a shared 64-d linear latent spread twice as large as the centres, and isotropic noise
(nearest-neighbour cosine about 0.58, 10th about 0.52). Well-separated clusters would make any
IVF look perfect. Queries are 1,000 pool items, as with ``similar ITEM``. For each size the index the
product builds by default is timed (exact up to 200k items, IVF above), plus the IVF
index at sizes where the default is exact; recall@10 is measured against exact search,
for several nprobe values. Resident memory is read from /proc before and after the build.
"""

from __future__ import annotations

import argparse
import resource
import time
from dataclasses import replace

import faiss
import numpy as np

from core.similarity.index import IndexConfig, SimilarityIndex

DIM, CLUSTERS, LATENT, SPREAD, NOISE = 384, 10, 64, 2.0, 0.3
QUERIES, K = 1000, 10


def synthetic(n, seed=0, chunk=100_000):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(CLUSTERS, DIM)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    latent = rng.normal(scale=1 / np.sqrt(DIM), size=(LATENT, DIM)).astype(np.float32)
    out = np.empty((n, DIM), np.float32)
    for start in range(0, n, chunk):
        size = min(n, start + chunk) - start
        x = centres[rng.integers(0, CLUSTERS, size)]
        x += SPREAD / np.sqrt(LATENT) * rng.normal(size=(size, LATENT)).astype(np.float32) @ latent
        x += NOISE / np.sqrt(DIM) * rng.normal(size=(size, DIM)).astype(np.float32)
        out[start : start + size] = x / np.linalg.norm(x, axis=1, keepdims=True)
    return out


def exact_top_k(vectors, queries, k, chunk=100_000):
    best_scores = np.full((len(queries), k), -np.inf, np.float32)
    best_ids = np.zeros((len(queries), k), np.int64)
    for start in range(0, len(vectors), chunk):
        sims = queries @ vectors[start : start + chunk].T
        scores = np.concatenate([best_scores, sims], axis=1)
        ids = np.concatenate([best_ids, np.arange(start, start + sims.shape[1])[None].repeat(len(queries), 0)], axis=1)
        top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        best_scores, best_ids = np.take_along_axis(scores, top, 1), np.take_along_axis(ids, top, 1)
    return best_ids


def recall(found, truth):
    return float(np.mean([len(set(a) & set(b)) / len(b) for a, b in zip(found, truth)]))


def rss_mib():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def measure(vectors, queries, truth, config, label):
    before = rss_mib()
    start = time.perf_counter()
    index = SimilarityIndex(config=config).fit(vectors, np.arange(len(vectors)))
    build = time.perf_counter() - start
    index_mib = rss_mib() - before
    start = time.perf_counter()
    _, found = index.search(queries, K)
    search = time.perf_counter() - start
    print(
        f"  {label}: {index.kind_}, build {build:.1f} s, search {QUERIES} queries {search * 1000:.0f} ms "
        f"({search / QUERIES * 1000:.2f} ms/query), recall@10 {recall(found, truth):.4f}, "
        f"resident memory of the index {index_mib:,.0f} MiB"
    )
    if index.kind_ == "ivf":
        ivf = faiss.extract_index_ivf(index.index_)
        for nprobe in (16, 32, 64, 128):
            ivf.nprobe = nprobe
            start = time.perf_counter()
            _, found = index.search(queries, K)
            seconds = time.perf_counter() - start
            print(
                f"    nprobe {nprobe:>3} of {ivf.nlist} lists: recall@10 {recall(found, truth):.4f}, "
                f"{seconds / QUERIES * 1000:.2f} ms/query"
            )
    return index


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    args = parser.parse_args()
    print(f"faiss {faiss.__version__}, {faiss.omp_get_max_threads()} threads, {DIM}-d, k={K}")
    for n in args.sizes:
        vectors = synthetic(n)
        queries = vectors[np.random.default_rng(1).choice(n, QUERIES, replace=False)]
        start = time.perf_counter()
        truth = exact_top_k(vectors, queries, K)
        print(
            f"{n:,} vectors (data {vectors.nbytes / 2**20:,.0f} MiB float32); brute-force truth "
            f"{time.perf_counter() - start:.1f} s"
        )
        config = IndexConfig()
        index = measure(vectors, queries, truth, config, "default")
        if index.kind_ == "exact":
            del index
            measure(vectors, queries, truth, replace(config, exact_max=0), "IVF forced")
        del vectors
    print(f"peak resident memory of this process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:,.0f} MiB")


if __name__ == "__main__":
    main()
