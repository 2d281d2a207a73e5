"""Similarity index: exact answers, approximate recall, incremental adds, atomic saves."""

import threading

import faiss
import numpy as np
import pytest

from core.similarity.index import IndexConfig, SimilarityIndex


def clustered(n, d=32, clusters=20, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(clusters, d))
    x = centres[rng.integers(0, clusters, n)] + 0.7 * rng.normal(size=(n, d))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def brute_force(vectors, ids, queries, k):
    sims = queries @ vectors.T
    order = np.argsort(-sims, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(sims, order, axis=1), ids[order]


def test_exact_index_returns_the_true_neighbours_by_item_id():
    vectors, ids = clustered(500), np.arange(500) * 7 + 3
    index = SimilarityIndex().fit(vectors, ids)
    scores, found = index.search(vectors[:20], 5)
    true_scores, true_ids = brute_force(vectors, ids, vectors[:20], 5)
    assert index.kind_ == "exact"
    np.testing.assert_array_equal(found, true_ids)
    np.testing.assert_allclose(scores, true_scores, atol=1e-5)


def test_vectors_are_normalised_so_scores_are_cosines():
    vectors = clustered(50)
    index = SimilarityIndex().fit(vectors * np.arange(1, 51)[:, None], np.arange(50))
    scores, found = index.search(vectors[:3] * 9, 1)
    np.testing.assert_array_equal(found[:, 0], [0, 1, 2])
    np.testing.assert_allclose(scores[:, 0], 1, atol=1e-5)


@pytest.mark.slow
def test_large_pools_get_an_ivf_index_with_high_recall():
    vectors, ids = clustered(4000), np.arange(4000)
    index = SimilarityIndex(config=IndexConfig(exact_max=1000, nprobe=16)).fit(vectors, ids)
    _, found = index.search(vectors[:200], 10)
    _, truth = brute_force(vectors, ids, vectors[:200], 10)
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(found, truth)])
    assert index.kind_ == "ivf" and faiss.extract_index_ivf(index.index_).nlist == 63
    assert recall >= 0.95


def test_incremental_add_matches_a_full_build_and_switches_to_ivf_past_the_threshold():
    vectors, ids = clustered(900), np.arange(900) + 1000
    grown = SimilarityIndex().fit(vectors[:600], ids[:600]).add(vectors[600:], ids[600:])
    _, found = grown.search(vectors[:10], 5)
    np.testing.assert_array_equal(found, SimilarityIndex().fit(vectors, ids).search(vectors[:10], 5)[1])
    switched = (
        SimilarityIndex(config=IndexConfig(exact_max=700)).fit(vectors[:600], ids[:600]).add(vectors[600:], ids[600:])
    )
    assert switched.kind_ == "ivf" and sorted(switched.ids_) == sorted(ids)
    with pytest.raises(ValueError, match="already in the index"):
        grown.add(vectors[:1], ids[:1])


def test_save_is_atomic_when_writing_fails(tmp_path, monkeypatch):
    path = tmp_path / "index.faiss"
    SimilarityIndex().fit(clustered(100), np.arange(100)).save(path)

    def broken_write(index, name):
        open(name, "wb").write(b"partial")
        raise RuntimeError("disk full")

    monkeypatch.setattr(faiss, "write_index", broken_write)
    with pytest.raises(RuntimeError, match="disk full"):
        SimilarityIndex().fit(clustered(200), np.arange(200)).save(path)
    assert len(SimilarityIndex.load(path)) == 100
    assert [p.name for p in tmp_path.iterdir()] == ["index.faiss"]


@pytest.mark.slow
def test_readers_always_see_a_whole_index_while_new_versions_are_saved(tmp_path):
    path = tmp_path / "index.faiss"
    versions = [SimilarityIndex().fit(clustered(n, d=256), np.arange(n)) for n in (2000, 4000)]
    versions[0].save(path)
    stop, sizes, errors = threading.Event(), [], []

    def write():
        for i in range(30):
            versions[i % 2].save(path)
        stop.set()

    def read():
        while not stop.is_set():
            try:
                sizes.append(len(SimilarityIndex.load(path)))
            except Exception as error:  # a torn file would show up here
                errors.append(error)

    threads = [threading.Thread(target=write), threading.Thread(target=read)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors and set(sizes) <= {2000, 4000} and len(sizes) > 0
