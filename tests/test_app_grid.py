"""The Grid page: label many images at once, leaving out the ones unchecked."""

import pytest

from services.labeling.grid import near_copies
from services.labeling.session import LabelingSession
from tests.app_helpers import open_page
from tests.labeling_project import class_id, true_class


@pytest.mark.slow
def test_grid_labels_the_checked_images_of_the_predicted_class_in_one_action(engine):
    session = LabelingSession(engine, "ann")
    for _ in range(8):
        ask = session.current()
        session.label(ask.item_id, [class_id(engine, true_class(ask.path))])
    engine.retrain_now()
    assert engine.loop.wait_idle(60)

    app = open_page("pages/grid.py")
    app.selectbox[0].select(next(c for c in engine.active_classes() if c.name == "frog")).run()
    boxes = [box for box in app.checkbox if box.key.startswith("grid-")]
    assert boxes and all(box.value for box in boxes)
    boxes[0].uncheck()
    app.button[0].click().run()  # the form's submit button

    assert not app.exception
    frog = class_id(engine, "frog")
    kept = [int(box.key.removeprefix("grid-")) for box in boxes[1:]]
    assert all(engine.current_label(item).class_ids == (frog,) for item in kept)
    assert engine.current_label(int(boxes[0].key.removeprefix("grid-"))) is None
    assert len(engine.labeled_items()) == 8 + len(kept)
    assert app.success[0].value == f"Labeled {len(kept)} images as frog\\."


def test_near_copies_are_the_unlabeled_images_most_like_a_labeled_one(engine):
    session = LabelingSession(engine, "ann")
    ask = session.current()
    session.label(ask.item_id, [class_id(engine, true_class(ask.path))])

    copies = near_copies(engine, ask.item_id, n=5, min_similarity=-1.0)
    similarity = engine.pool.embeddings @ engine.pool.embeddings[engine.pool.row_of[ask.item_id]]
    expected = sorted(
        (i for i in engine.pool.item_ids.tolist() if i != ask.item_id), key=lambda i: -similarity[engine.pool.row_of[i]]
    )[:5]
    assert [c.item_id for c in copies] == expected
    assert near_copies(engine, ask.item_id, min_similarity=1.01) == []
