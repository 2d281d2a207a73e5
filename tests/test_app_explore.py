"""The Explore page: a PCA map coloured by label or prediction, and "more like this"."""

import json

import numpy as np

from services.explore import more_like, pca_2d
from services.labeling import LabelingSession
from tests.app_helpers import open_page
from tests.labeling_project import class_id, true_class


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


def test_pca_keeps_the_direction_of_largest_spread():
    rng = np.random.default_rng(0)
    points = rng.standard_normal((500, 8)) * np.array([10, 3, 1, 1, 1, 1, 1, 1])
    xy = pca_2d(points.astype(np.float32))
    assert abs(np.corrcoef(xy[:, 0], points[:, 0])[0, 1]) > 0.99
    assert abs(np.corrcoef(xy[:, 1], points[:, 1])[0, 1]) > 0.9


def test_more_like_this_ranks_by_similarity_and_leaves_out_the_image_itself(engine):
    item = int(engine.item_ids[0])
    similar = more_like(engine, item, n=5)
    scores = [s for _, s in similar]
    assert item not in [i for i, _ in similar] and scores == sorted(scores, reverse=True)
