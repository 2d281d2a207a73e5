import numpy as np
import pytest
import torch

from core.similarity import pool_kernels
from core.similarity.pool_kernels import Float32Kernel, Int8Kernel, pool_kernel
from tests.engine_data import clusters, normalise


@pytest.fixture
def pool(monkeypatch):
    monkeypatch.setattr(Int8Kernel, "block_rows", 100)  # 1,000 rows: 10 packed blocks
    X, _ = clusters([250, 250, 250, 250], dim=48, spread=1.0, seed=3)
    return X


def scan_all(kernel, queries):
    """Every similarity of ``queries`` to the pool, (Q, N), from a scan."""
    return np.concatenate(kernel.scan(queries, lambda b0, sims: sims.copy()), axis=1)


def test_int8_similarities_are_close_to_float32(pool):
    exact = pool[:40] @ pool.T
    got = scan_all(Int8Kernel(pool, n_threads=3), pool[:40])
    assert got.shape == exact.shape
    assert np.abs(got - exact).max() < 0.02
    assert np.abs(got - exact).mean() < 0.004
    np.testing.assert_allclose(scan_all(Float32Kernel(pool, n_threads=3), pool[:40]), exact, atol=1e-6)


def test_an_int8_pair_does_not_depend_on_the_rest_of_the_call(pool):
    kernel = Int8Kernel(pool, n_threads=2)
    many = scan_all(kernel, pool[:50])
    alone = scan_all(kernel, pool[7:8])
    np.testing.assert_array_equal(alone[0], many[7])
    items = np.array([999, 3, 512, 4, 100, 101])  # unsorted, across blocks
    value, position = kernel.best_match(pool[:50], items)
    np.testing.assert_array_equal(value, many[:, items].max(axis=0))
    np.testing.assert_array_equal(position, many[:, items].argmax(axis=0))


def test_best_match_splits_many_queries_and_items(pool, monkeypatch):
    monkeypatch.setattr(pool_kernels, "_PAIR_ELEMENTS", 300)  # forces item and query chunks
    kernel = Int8Kernel(pool)
    queries = pool[::7]
    items = np.arange(0, len(pool), 3)
    everything = scan_all(kernel, queries)[:, items]
    value, position = kernel.best_match(queries, items)
    np.testing.assert_array_equal(value, everything.max(axis=0))
    np.testing.assert_array_equal(position, everything.argmax(axis=0))  # first query on ties, as argmax


def test_a_zero_row_and_queries_beyond_the_pool_range_are_handled(monkeypatch):
    monkeypatch.setattr(Int8Kernel, "block_rows", 4)
    X = normalise(np.random.default_rng(0).standard_normal((10, 16)))
    X[5] = 0
    kernel = Int8Kernel(X)
    assert np.isfinite(kernel.scales_).all()
    assert kernel.limit_ == pytest.approx(np.abs(X / kernel.balance_).max(), rel=1e-6)
    sims = scan_all(kernel, X[:3])
    assert (sims[:, 5] == 0).all()
    beyond = np.zeros((1, 16), np.float32)
    beyond[0, 0] = 10.0  # clipped to the pool's range, so the quantization range stays fixed
    np.testing.assert_array_equal(scan_all(kernel, np.concatenate([X[:3], beyond]))[:3], sims)


def test_scans_run_torch_single_threaded_and_restore_its_setting(pool):
    before = torch.get_num_threads()
    seen = []
    Int8Kernel(pool).scan(pool[:2], lambda b0, sims: seen.append(torch.get_num_threads()))
    assert seen and set(seen) == {1}
    assert torch.get_num_threads() == before


def test_pool_kernel_picks_by_size_and_availability(pool, monkeypatch):
    assert isinstance(pool_kernel(pool), Float32Kernel)  # below INT8_FROM_ROWS
    monkeypatch.setattr(pool_kernels, "INT8_FROM_ROWS", 500)
    assert isinstance(pool_kernel(pool), Int8Kernel)
    monkeypatch.setattr(pool_kernels, "int8_available", lambda: False)
    assert isinstance(pool_kernel(pool), Float32Kernel)
    with pytest.raises(ValueError, match="fbgemm"):
        pool_kernel(pool, "int8")
    with pytest.raises(ValueError, match="unknown similarity kernel"):
        pool_kernel(pool, "int4")


def test_one_large_dimension_does_not_cost_the_others_their_precision(pool):
    skewed = pool.copy()
    skewed[::20, 0] += 3  # one dimension near 0.9 in a few rows, as in real SSL features
    skewed = normalise(skewed)
    kernel = Int8Kernel(skewed)
    assert kernel.balance_.argmax() == 0
    error = np.abs(scan_all(kernel, skewed[:40]) - skewed[:40] @ skewed.T)
    assert error.max() < 0.02 and error.mean() < 0.003


def test_int8_keeps_only_packed_blocks_and_scales_and_frees_them_when_dropped(pool):
    kernel = Int8Kernel(pool)
    held = [value for value in vars(kernel).values() if isinstance(value, np.ndarray) and value is not pool]
    assert sum(array.nbytes for array in held) < pool.shape[0] * pool.shape[1]  # no copy of the 8-bit codes
    packed = kernel._packed
    assert len(packed) == 10
    del kernel
    assert packed == []  # the finalizer released fbgemm's blocks


def test_best_match_codes_items_again_as_the_packed_blocks_did(pool):
    kernel = Int8Kernel(pool)
    items = np.arange(len(pool))
    value, _ = kernel.best_match(pool[:5], items)
    np.testing.assert_array_equal(value, scan_all(kernel, pool[:5]).max(axis=0))
    f16 = Int8Kernel(pool.astype(np.float16))
    value16, _ = f16.best_match(pool[:5], items)
    np.testing.assert_array_equal(value16, scan_all(f16, pool[:5]).max(axis=0))
