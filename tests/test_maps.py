"""t-SNE maps for Explore: the sample they cover, that they keep neighbourhoods, and the
background job that computes them."""

import time

import numpy as np
import pytest
from sklearn.manifold import TSNE
from threadpoolctl import threadpool_info

from core.similarity.maps import TsneConfig, map_sample, pca_reduce, tsne_2d
from services.features.explore import pca_2d, start_tsne_map

FAST = TsneConfig(perplexity=10, max_iter=300, pca_dims=20)


def clusters(n_clusters=10, per=30, dim=64, seed=0):
    """Well-separated Gaussian clusters: points (N, dim) float32 and each one's cluster (N,)."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((n_clusters, dim)) * 2.0
    cluster = np.repeat(np.arange(n_clusters), per)
    return (centres[cluster] + rng.standard_normal((len(cluster), dim))).astype(np.float32), cluster


def neighbours_in_same_cluster(xy, cluster, k=5):
    """Share of each point's k nearest 2D neighbours that are in its cluster."""
    distance = ((xy[:, None, :] - xy[None, :, :]) ** 2).sum(axis=-1)
    np.fill_diagonal(distance, np.inf)
    nearest = np.argsort(distance, axis=1)[:, :k]
    return float((cluster[nearest] == cluster[:, None]).mean())


@pytest.mark.slow
def test_tsne_keeps_well_separated_clusters_apart_better_than_pca():
    points, cluster = clusters()
    xy = tsne_2d(points, FAST)
    assert xy.shape == (len(points), 2) and xy.dtype == np.float32 and np.isfinite(xy).all()
    tsne_share = neighbours_in_same_cluster(xy, cluster)
    pca_share = neighbours_in_same_cluster(pca_2d(points), cluster)
    assert tsne_share >= 0.95
    assert tsne_share > pca_share  # ten clusters do not all fit apart on two principal components


def test_tsne_is_the_same_for_the_same_seed():
    points, _ = clusters(n_clusters=3, per=10)
    np.testing.assert_array_equal(tsne_2d(points, FAST), tsne_2d(points, FAST))


@pytest.mark.parametrize("n", [0, 1, 2, 3, 7])
def test_tsne_maps_tiny_samples_with_a_lowered_perplexity(n):
    points = np.random.default_rng(0).standard_normal((n, 16)).astype(np.float32)
    xy = tsne_2d(points, TsneConfig(perplexity=30, max_iter=250))
    assert xy.shape == (n, 2) and np.isfinite(xy).all()


def test_pca_reduce_keeps_the_largest_spread_and_caps_the_dimensions():
    rng = np.random.default_rng(0)
    points = rng.standard_normal((200, 12)) * np.array([10, 5] + [1] * 10)
    reduced = pca_reduce(points, 3)
    assert reduced.shape == (200, 3)
    assert abs(np.corrcoef(reduced[:, 0], points[:, 0])[0, 1]) > 0.99
    assert pca_reduce(points, 50).shape == (200, 12)


def test_sample_holds_every_labeled_row_and_respects_the_cap():
    labeled = np.zeros(1000, bool)
    labeled[np.random.default_rng(1).choice(1000, 40, replace=False)] = True
    rows = map_sample(labeled, 100, seed=0)
    assert len(rows) == 100 and len(np.unique(rows)) == 100 and (np.diff(rows) > 0).all()
    assert set(np.flatnonzero(labeled)) <= set(rows.tolist())
    np.testing.assert_array_equal(rows, map_sample(labeled, 100, seed=0))  # a fixed sample
    assert not np.array_equal(rows, map_sample(labeled, 100, seed=1))


def test_sample_is_everything_under_the_cap_and_labeled_rows_only_over_it():
    labeled = np.zeros(50, bool)
    labeled[:30] = True
    np.testing.assert_array_equal(map_sample(labeled, 50), np.arange(50))
    over = map_sample(labeled, 20)  # more labeled rows than the cap: the cap wins
    assert len(over) == 20 and labeled[over].all()


def wait_for(job, seconds=60):
    deadline = time.monotonic() + seconds
    while job.phase == "running" and time.monotonic() < deadline:
        time.sleep(0.02)
    return job


def test_background_map_covers_the_sample_and_reports_its_counts():
    points, cluster = clusters(n_clusters=4, per=25)
    labeled = np.zeros(len(points), bool)
    labeled[[3, 50, 99]] = True
    job = wait_for(start_tsne_map(points, labeled, TsneConfig(max_points=40, perplexity=5, max_iter=250)))
    assert job.phase == "ready", job.error
    assert (job.total, job.labeled, len(job.rows), job.xy.shape) == (100, 3, 40, (40, 2))
    assert {3, 50, 99} <= set(job.rows.tolist())


def test_background_map_failure_is_reported_not_raised():
    job = wait_for(
        start_tsne_map(np.full((30, 8), np.nan, np.float32), np.zeros(30, bool), TsneConfig(perplexity=5, max_iter=250))
    )
    assert job.phase == "failed" and job.error and job.xy is None


def test_tsne_runs_on_the_configured_threads(monkeypatch):
    seen = []

    def record(self, points):
        seen.append({info["user_api"]: info["num_threads"] for info in threadpool_info()})
        return np.zeros((len(points), 2))

    monkeypatch.setattr(TSNE, "fit_transform", record)
    tsne_2d(np.random.default_rng(0).normal(size=(20, 8)), TsneConfig(threads=1))
    assert seen and all(threads == 1 for threads in seen[0].values())
