"""Check many files at once: decoding is CPU-bound, so large ingests use worker processes."""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Generator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from functools import partial

from services.ingest.file_scan import FoundFile
from services.ingest.image_check import ImageFacts, check_image_file
from services.ingest.rejection import Rejection


@dataclass(frozen=True)
class ParallelCheckPlan:
    """When and how to fan the checks out to processes.

    Below ``min_files`` the start-up of worker processes costs more than it
    saves. Files go to the pool ``window`` at a time so a million-file ingest
    does not queue a million futures.
    """

    min_files: int = 256
    window: int = 4096
    chunksize: int = 64


def check_files(
    files: Sequence[FoundFile],
    *,
    max_bytes: int,
    max_pixels: int,
    workers: int,
    plan: ParallelCheckPlan = ParallelCheckPlan(),
) -> Generator[ImageFacts | Rejection, None, None]:
    """Yield the check outcome of each file, in the order given.

    Close the generator when stopping early (``contextlib.closing``): that shuts the worker
    processes down at once, in the caller's thread. Left to the garbage collector, the shutdown
    could run in the pool's own thread ("cannot join current thread") or never.

    Parameters
    ----------
    files : sequence of FoundFile
    max_bytes, max_pixels : int
        Limits passed to :func:`services.ingest.image_check.check_image_file`.
    workers : int
        Worker processes; 0 means one per CPU core, 1 checks in this process.
    plan : ParallelCheckPlan
    """
    check = partial(_check, max_bytes=max_bytes, max_pixels=max_pixels)
    workers = workers or os.cpu_count() or 1
    if workers == 1 or len(files) < plan.min_files:
        yield from map(check, files)
        return
    # spawn, not fork: the caller may hold database connections and threads (Streamlit).
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"))
    try:
        for start in range(0, len(files), plan.window):
            yield from pool.map(check, files[start : start + plan.window], chunksize=plan.chunksize)
    finally:
        # A caller that stops early (an error) drops the window's queued checks instead of waiting for them.
        pool.shutdown(wait=True, cancel_futures=True)


def _check(file: FoundFile, *, max_bytes: int, max_pixels: int) -> ImageFacts | Rejection:
    if file.rejection is not None:
        return file.rejection
    return check_image_file(file.read_path, size_bytes=file.size_bytes, max_bytes=max_bytes, max_pixels=max_pixels)
