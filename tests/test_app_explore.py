"""The Explore page: a PCA or t-SNE map coloured by label or prediction, and "more like this"."""

import base64
import json
import threading
import time

import numpy as np
import pytest

import services.features.explore
from core.similarity.maps import TsneConfig
from services.features.explore import more_like, pca_2d
from services.labeling.session import LabelingSession
from tests.app_helpers import open_page
from tests.labeling_project import class_id, true_class


def label_some(engine, n):
    """Label the first ``n`` asks with their true class; returns the labeled item ids."""
    session = LabelingSession(engine, "ann")
    for _ in range(n):
        ask = session.current()
        session.label(ask.item_id, [class_id(engine, true_class(ask.path))])
    return set(engine.labeled_items())


def chart(app):
    """The map's traces and layout."""
    spec = json.loads(app.get("plotly_chart")[0].proto.spec)
    return spec["data"], spec["layout"]


def item_ids(traces):
    """Every point's item id (customdata; plotly may send a numpy array as base64 with its dtype)."""
    ids = []
    for trace in traces:
        data = trace["customdata"]
        if isinstance(data, dict):
            data = np.frombuffer(base64.b64decode(data["bdata"]), dtype=data["dtype"])
        ids += [int(i) for i in data]
    return ids


def choose_tsne(app, seconds=60):
    """Pick the t-SNE map and run the page until its computation is done (the page's fragment
    would refresh itself in a browser)."""
    app.radio(key="map_kind").set_value("t-SNE").run()
    deadline = time.monotonic() + seconds
    while not app.get("plotly_chart") and not app.error and time.monotonic() < deadline:
        assert not app.exception, app.exception
        time.sleep(0.1)
        app.run()
    assert not app.exception, app.exception
    return app


@pytest.mark.slow
def test_map_has_one_trace_per_label_and_one_for_unlabeled_images(engine):
    session = LabelingSession(engine, "ann")
    for _ in range(3):
        ask = session.current()
        session.label(ask.item_id, [class_id(engine, true_class(ask.path))])
    names = {engine.classes[engine.current_label(i).class_ids[0]].name for i in engine.labeled_items()}

    app = open_page("pages/explore.py")
    traces = json.loads(app.get("plotly_chart")[0].proto.spec)["data"]
    assert {t["name"] for t in traces} == names | {"unlabeled"}
    assert sum(len(t["hovertext"]) for t in traces) == 24  # one point per image


@pytest.mark.slow
def test_tsne_map_shows_a_capped_sample_with_every_labeled_image(engine, monkeypatch):
    labeled = label_some(engine, 3)
    monkeypatch.setattr(services.features.explore, "TSNE_CONFIG", TsneConfig(max_points=20, perplexity=5, max_iter=250))
    release, real_tsne = threading.Event(), services.features.explore.tsne_2d
    monkeypatch.setattr(
        services.features.explore, "tsne_2d", lambda points, config: release.wait(30) and real_tsne(points, config)
    )
    app = open_page("pages/explore.py")
    assert app.radio(key="map_kind").value == "PCA"  # the default, drawn at once
    assert json.loads(app.get("plotly_chart")[0].proto.spec)["layout"]["xaxis"]["title"]["text"] == "PC 1"

    app.radio(key="map_kind").set_value("t-SNE").run()
    assert not app.exception, app.exception
    assert not app.get("plotly_chart")  # computed in the background meanwhile: the page does not wait
    assert "Computing the t-SNE map of 20 images" in app.info[0].value
    release.set()
    traces, layout = chart(choose_tsne(app))
    ids = item_ids(traces)
    assert len(ids) == len(set(ids)) == 20 and labeled <= set(ids)
    assert {t["name"] for t in traces} == {
        engine.classes[engine.current_label(i).class_ids[0]].name for i in labeled
    } | {"unlabeled"}
    assert (layout["xaxis"]["title"]["text"], layout["yaxis"]["title"]["text"]) == ("t-SNE 1", "t-SNE 2")
    assert any("20 of 24 images (3 labeled, 17 a random sample" in c.value for c in app.caption)


@pytest.mark.slow
def test_tsne_map_of_a_small_pool_shows_every_image(engine, monkeypatch):
    monkeypatch.setattr(services.features.explore, "TSNE_CONFIG", TsneConfig(perplexity=5, max_iter=250))
    app = choose_tsne(open_page("pages/explore.py"))
    traces, _ = chart(app)
    assert sorted(item_ids(traces)) == sorted(engine.pool.item_ids.tolist())
    assert any(c.value == "t-SNE map of 24 of 24 images." for c in app.caption)


@pytest.mark.slow
def test_a_failed_tsne_map_says_why_and_leaves_the_pca_map(engine, monkeypatch):
    def fail(points, config):
        raise MemoryError("no room for the map")

    monkeypatch.setattr(services.features.explore, "tsne_2d", fail)
    app = choose_tsne(open_page("pages/explore.py"))
    error = app.error[0].value  # escaped markdown: the colon shows as typed
    assert "t-SNE map could not be made: MemoryError" in error and "no room for the map" in error
    traces, layout = chart(app)
    assert sum(len(t["hovertext"]) for t in traces) == 24 and layout["xaxis"]["title"]["text"] == "PC 1"

    monkeypatch.setattr(
        services.features.explore, "tsne_2d", lambda points, config: np.zeros((len(points), 2), np.float32)
    )
    next(b for b in app.button if b.label == "Try t-SNE again").click().run()
    traces, layout = chart(choose_tsne(app))
    assert not app.error and layout["xaxis"]["title"]["text"] == "t-SNE 1"


def test_pca_keeps_the_direction_of_largest_spread():
    rng = np.random.default_rng(0)
    points = rng.standard_normal((500, 8)) * np.array([10, 3, 1, 1, 1, 1, 1, 1])
    xy = pca_2d(points.astype(np.float32))
    assert abs(np.corrcoef(xy[:, 0], points[:, 0])[0, 1]) > 0.99
    assert abs(np.corrcoef(xy[:, 1], points[:, 1])[0, 1]) > 0.9


def test_more_like_this_ranks_by_similarity_and_leaves_out_the_image_itself(engine):
    item = int(engine.pool.item_ids[0])
    similar = more_like(engine, item, n=5)
    scores = [s for _, s in similar]
    assert item not in [i for i, _ in similar] and scores == sorted(scores, reverse=True)
