"""Cosine similarities of labeled items (queries) to the pool's rows: the one product
that :class:`core.similarity.similarity_state.SimilarityState` spends its time in.

Two kernels give the same interface:

``Float32Kernel``
    BLAS over float32 blocks of the pool (a float16 pool is cast one block at a time).
    At 1M x 384 it reads 1.5 GB per scan: memory-bound at ~0.2 s on two cores.
``Int8Kernel``
    The pool as 8-bit codes with one scale per row (as FAISS's scalar quantizer stores
    it) multiplied by fbgemm's int8 kernels through torch's dynamically quantized linear
    op. Only fbgemm's packed copy of the codes stays resident, its rows padded to 512
    bytes at 384-d (a third of float32: ~0.5 GB at 1M rows, built in ~6 s on two cores). Similarities are within about 0.015 of float32
    (8-bit rows, 7-bit queries; mean error 0.002 on the bundled backbone's CIFAR-10
    features). A pair's value depends only on that pair, never on the
    other queries or rows of the call: queries are quantized over a fixed range (two
    anchor rows at +-the pool's largest component pin it), and the integer sums are
    exact, so an incremental update equals a full recompute bit for bit.

:func:`pool_kernel` picks one.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import threading
import warnings
import weakref
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from functools import lru_cache

import numpy as np
from threadpoolctl import ThreadpoolController

INT8_FROM_ROWS = 100_000  # "auto" quantizes pools this large: below it a float32 scan takes milliseconds
KERNELS = ("auto", "float32", "int8")

_BLAS = ThreadpoolController()  # found once: a new one scans the loaded libraries (~5 ms)
_CACHE_ELEMENTS = 1 << 17  # similarity block of 512 KB float32 (a core's L2), whatever the number of queries
_BLOCK_ROWS = 1 << 15  # pool rows per float32 block at most: bounds the copy of a float16 pool
_PAIR_ELEMENTS = 1 << 24  # (queries x items) similarities held at once by best_match: 64 MB
_QUANTIZE_ROWS = 1024  # pool rows coded at once: float32 temporaries of 1.5 MB, reused by the allocator


def pool_kernel(embeddings, kind="auto", *, n_threads=None):
    """The similarity kernel for ``embeddings``.

    Parameters
    ----------
    embeddings : ndarray of shape (N, D)
        L2-normalised rows (a memmap works).
    kind : {"auto", "float32", "int8"}
        ``"auto"``: int8 for pools of at least :data:`INT8_FROM_ROWS` rows where torch's
        fbgemm int8 kernels are available (x86), float32 otherwise.
    n_threads : int or None
        Threads that share a scan of the pool; None: one per CPU core.
    """
    if kind not in KERNELS:
        raise ValueError(f"unknown similarity kernel {kind!r}; choose one of {', '.join(KERNELS)}.")
    if kind == "int8" and not int8_available():
        raise ValueError(
            "the int8 similarity kernel needs torch's fbgemm quantized engine (x86 CPUs); use kernel='float32'."
        )
    if kind == "int8" or (kind == "auto" and len(embeddings) >= INT8_FROM_ROWS and int8_available()):
        return Int8Kernel(embeddings, n_threads=n_threads)
    return Float32Kernel(embeddings, n_threads=n_threads)


class Float32Kernel:
    """Similarities in float32 BLAS over blocks of the pool, one thread per span of rows."""

    def __init__(self, embeddings, *, n_threads=None):
        self.embeddings = embeddings
        self.n_threads = max(1, n_threads or os.cpu_count() or 1)

    def scan(self, queries, visit):
        """``visit(start, sims)`` for every block of pool rows, ``sims`` of shape
        (len(queries), block) = queries x block; returns the visits' results in pool order.

        Blocks of different threads never overlap, so ``visit`` may write its columns.
        """
        spans = np.linspace(0, len(self.embeddings), self.n_threads + 1).astype(int).tolist()
        # One BLAS thread per span: BLAS's own threads cost more to synchronise than these small products gain.
        with _BLAS.limit(limits=1, user_api="blas"):
            if self.n_threads == 1:
                return self._scan_span(0, spans[-1], queries, visit)
            with ThreadPoolExecutor(self.n_threads) as pool:
                parts = [pool.submit(self._scan_span, a, b, queries, visit) for a, b in zip(spans[:-1], spans[1:])]
                return [result for part in parts for result in part.result()]

    def best_match(self, queries, items):
        """Largest similarity of each of ``items`` (pool rows) to ``queries`` and the
        position of that query (the first one on ties).

        Returns
        -------
        value : ndarray of shape (M,), float32
        position : ndarray of shape (M,), int64
        """
        step = max(1, _CACHE_ELEMENTS * 8 // max(1, len(queries)))
        value, position = np.empty(len(items), np.float32), np.empty(len(items), np.int64)
        for i in range(0, len(items), step):
            sims = np.asarray(self.embeddings[items[i : i + step]], dtype=np.float32) @ queries.T
            position[i : i + step] = sims.argmax(axis=1)
            value[i : i + step] = sims[np.arange(len(sims)), position[i : i + step]]
        return value, position

    def _scan_span(self, start, stop, queries, visit):
        # A block small enough that its similarities stay in cache while they are reduced.
        block = int(np.clip(_CACHE_ELEMENTS // max(1, len(queries)), 1024, _BLOCK_ROWS))
        sims_buffer = np.empty((len(queries), block), np.float32)
        convert = self.embeddings.dtype != np.float32
        pool_buffer = np.empty((block, self.embeddings.shape[1]), np.float32) if convert else None
        results = []
        for b0 in range(start, stop, block):
            pool = self.embeddings[b0 : min(b0 + block, stop)]
            if convert:
                pool = pool_buffer[: len(pool)]
                np.copyto(pool, self.embeddings[b0 : b0 + len(pool)], casting="unsafe")
            sims = sims_buffer[:, : len(pool)]
            np.matmul(queries, pool.T, out=sims)  # (queries, block): a wide GEMM, the fast shape for BLAS
            results.append(visit(b0, sims))
        return results


class Int8Kernel:
    """Similarities from 8-bit codes of the pool (one scale per row) and fbgemm's int8 GEMM.

    Attributes
    ----------
    balance_ : ndarray of shape (D,), float32
        Square root of each dimension's largest absolute value in the pool. Pool rows are
        coded as ``x * balance_`` and queries sent as ``q / balance_`` (the products are
        unchanged): SSL features have a few dimensions far larger than the rest (0.9
        against a typical 0.03 in the bundled backbone's), and the queries' one 7-bit
        range would otherwise be spent on them. Cuts the mean error on real features by a third.
    scales_ : ndarray of shape (N,), float32
        Row i of ``embeddings * balance_`` is ``codes_i * scales_[i]``.
    limit_ : float
        Largest absolute component of ``embeddings / balance_``: the fixed range queries
        are quantized over.
    """

    block_rows = 1 << 14  # pool rows per packed block: (1,024 labels x block) similarities take 64 MB

    def __init__(self, embeddings, *, n_threads=None):
        self.embeddings = embeddings
        self.n_threads = max(1, n_threads or os.cpu_count() or 1)
        n, dim = embeddings.shape
        self._starts = list(range(0, n, self.block_rows))
        self.scales_ = np.ones(n, np.float32)
        with ThreadPoolExecutor(self.n_threads) as pool:
            largest = np.max([np.zeros(dim, np.float32), *pool.map(self._largest, self._starts)], axis=0)
            self.balance_ = np.where(largest > 0, np.sqrt(largest), 1.0).astype(np.float32)
            self.limit_ = float((largest / self.balance_).max(initial=0.0)) or 1.0
            # Each block's codes live only until fbgemm has packed them: the packed copy is all
            # a scan reads, and best_match codes its few items again from the embeddings.
            with _single_threaded_torch():
                self._packed = list(pool.map(self._quantize_and_pack, self._starts))
        self._anchors = np.zeros((2, dim), np.float32)
        self._anchors[:, 0] = self.limit_, -self.limit_
        # The codes' and torch's transient copies, freed between the packed blocks, leave holes
        # that glibc keeps (~0.3 GB at 1M rows); hand them back, and the blocks' when this goes.
        _release_free_memory()
        weakref.finalize(self, _drop_packed, self._packed)

    def scan(self, queries, visit):
        """Same as :meth:`Float32Kernel.scan`; the packed blocks are shared by one thread per core."""
        anchored = self._anchored(queries)
        spans = np.linspace(0, len(self._packed), min(self.n_threads, len(self._packed)) + 1).astype(int).tolist()

        # visit() reduces cache-sized column slices: over a whole block of many queries,
        # its column-wise argmax would stream the block through memory several times.
        width = max(256, _CACHE_ELEMENTS // max(1, len(queries)))

        def scan_span(first, stop):
            results = []
            for b in range(first, stop):
                sims = _similarities(anchored, self._packed[b])[: len(queries)]
                results.extend(
                    visit(self._starts[b] + c0, sims[:, c0 : c0 + width]) for c0 in range(0, sims.shape[1], width)
                )
            return results

        with _single_threaded_torch():
            if len(spans) <= 2:
                return scan_span(0, len(self._packed))
            with ThreadPoolExecutor(len(spans) - 1) as pool:
                parts = [pool.submit(scan_span, a, b) for a, b in zip(spans[:-1], spans[1:])]
                return [result for part in parts for result in part.result()]

    def best_match(self, queries, items):
        """Same as :meth:`Float32Kernel.best_match`, with this kernel's similarities.
        The items are coded again (the same codes: their rows and scales give them) and
        packed together, chunk by chunk: an undo's items lie all over the pool, and one
        product per packed block cost a call each."""
        items = np.asarray(items, np.int64)
        value, position = np.full(len(items), -np.inf, np.float32), np.zeros(len(items), np.int64)
        item_step = int(np.clip(_PAIR_ELEMENTS // max(1, len(queries)), 256, self.block_rows))
        query_step = max(1, _PAIR_ELEMENTS // item_step)
        order = np.argsort(items, kind="stable")  # pool order: each chunk reads few packed blocks
        with _single_threaded_torch():
            for i in range(0, len(items), item_step):
                chunk = order[i : i + item_step]
                rows = items[chunk]
                packed = _pack(*self._quantize_rows(self.embeddings[rows], self.scales_[rows]))
                for q0 in range(0, len(queries), query_step):
                    part = queries[q0 : q0 + query_step]
                    sims = _similarities(self._anchored(part), packed)[: len(part)]
                    best = sims.argmax(axis=0)
                    best_value = sims[best, np.arange(len(chunk))]
                    better = best_value > value[chunk]  # strictly: the first query wins ties
                    value[chunk[better]] = best_value[better]
                    position[chunk[better]] = q0 + best[better]
        return value, position

    def _largest(self, start):
        """Each dimension's largest absolute value in the block of rows from ``start``."""
        rows = self.embeddings[start : start + self.block_rows]
        return np.max(
            [
                np.abs(np.asarray(rows[r0 : r0 + 2048], dtype=np.float32)).max(axis=0)
                for r0 in range(0, len(rows), 2048)
            ],
            axis=0,
        )

    def _quantize_and_pack(self, start):
        """fbgemm's packed block of the balanced rows from ``start``; their scales go to ``scales_``."""
        stop = min(start + self.block_rows, len(self.embeddings))
        codes = np.empty((stop - start, self.embeddings.shape[1]), np.int8)
        for r0 in range(start, stop, _QUANTIZE_ROWS):
            r1 = min(r0 + _QUANTIZE_ROWS, stop)
            rows = np.asarray(self.embeddings[r0:r1], dtype=np.float32) * self.balance_
            row_largest = np.maximum(rows.max(axis=1), -rows.min(axis=1))
            self.scales_[r0:r1] = np.where(row_largest > 0, row_largest / 127, 1.0)  # a zero row: any scale codes it
            codes[r0 - start : r1 - start] = self._quantize_rows(rows, self.scales_[r0:r1], balanced=True)[0]
        return _pack(codes, self.scales_[start:stop])

    def _quantize_rows(self, rows, scales, *, balanced=False):
        """8-bit codes of pool ``rows`` given their ``scales_``, and the scales: the same
        float32 operations whether a block is packed or a few items are coded again."""
        rows = rows if balanced else np.asarray(rows, dtype=np.float32) * self.balance_
        return np.rint(np.divide(rows, scales[:, None], out=rows), out=rows).astype(np.int8), scales

    def _anchored(self, queries):
        import torch

        clipped = np.clip(np.asarray(queries, dtype=np.float32) / self.balance_, -self.limit_, self.limit_)
        return torch.from_numpy(np.concatenate([clipped, self._anchors]))


_TORCH_THREADS_LOCK = threading.Lock()
_torch_threads = {"users": 0, "saved": 1}


@contextmanager
def _single_threaded_torch():
    """torch's intra-op threads off while int8 products run in our own threads, one per
    core: fbgemm's threads wait on each other and, on a busy machine, a scan of 1M rows
    for 10 queries took 7 times longer with two of them than with one. Nested and concurrent users
    share one saved setting, restored when the last one leaves."""
    import torch

    with _TORCH_THREADS_LOCK:
        if _torch_threads["users"] == 0:
            _torch_threads["saved"] = torch.get_num_threads()
            torch.set_num_threads(1)
        _torch_threads["users"] += 1
    try:
        yield
    finally:
        with _TORCH_THREADS_LOCK:
            _torch_threads["users"] -= 1
            if _torch_threads["users"] == 0:
                torch.set_num_threads(_torch_threads["saved"])


def _drop_packed(packed):
    """Free a collected kernel's packed blocks and hand their memory back (see _release_free_memory)."""
    packed.clear()
    _release_free_memory()


@lru_cache(maxsize=1)
def _malloc_trim():
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):  # not glibc: nothing to call
        return None


def _release_free_memory():
    """glibc's malloc_trim: free pages inside the heap go back to the system. Packing
    interleaves transient and kept blocks of a few MB, and glibc returns only the free
    memory at a heap's top by itself."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


def _pack(codes, scales):
    import torch

    codes = torch.from_numpy(np.ascontiguousarray(codes))
    with warnings.catch_warnings():
        # torch marks its quantized tensors deprecated in favour of torchao; they still
        # run fbgemm's int8 kernels in the pinned torch, and int8_available() guards them.
        warnings.simplefilter("ignore", UserWarning)
        weight = torch._make_per_channel_quantized_tensor(
            codes, torch.from_numpy(scales).double(), torch.zeros(len(codes), dtype=torch.long), 0
        )
        return torch.ops.quantized.linear_prepack(weight, None)


def _similarities(anchored_queries, packed):
    import torch

    # reduce_range: 7-bit queries, so fbgemm's 16-bit pair sums cannot saturate and the sums stay exact.
    return torch.ops.quantized.linear_dynamic(anchored_queries, packed, True).numpy()


@lru_cache(maxsize=1)
def int8_available():
    """Whether torch's int8 linear kernels run here (fbgemm, x86 CPUs)."""
    try:
        import torch

        if torch.backends.quantized.engine not in ("x86", "fbgemm"):
            return False
        rows = np.eye(4, 8, dtype=np.float32)
        kernel_codes, kernel_scales = np.rint(rows * 127).astype(np.int8), np.full(4, 1 / 127, np.float32)
        anchored = torch.from_numpy(np.concatenate([rows, [[1] + [0] * 7, [-1] + [0] * 7]]).astype(np.float32))
        sims = _similarities(anchored, _pack(kernel_codes, kernel_scales))[:4]
        return bool(np.allclose(sims, np.eye(4), atol=0.02))
    except Exception:  # noqa: BLE001 - any failure means: use float32
        return False
