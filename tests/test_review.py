"""The review queue on SQLite and PostgreSQL: disagreeing overlap labels open a task, the
reviewer's decision is a new annotation, final, and reopened only by a new disagreement."""

import pytest
from sqlalchemy import select

from services.errors import UserError
from services.labeling.session import LabelingSession
from services.teams.agreement import project_agreement
from services.teams.leases import AskLeases, TeamSettings, is_overlap, read_team_settings
from services.teams.review import decide, review_queue
from storage import queries
from storage.models import Annotation, AnnotationSource, Annotator, Role
from tests.app_helpers import open_page, shortcuts
from tests.labeling_project import CLASSES, class_id, multi_label_engine, true_class
from tests.team_project import class_ids_by_name, team_engine

EVERY_ITEM_OVERLAPS = TeamSettings(overlap_share=1.0)


@pytest.fixture
def team(backend_db, backend_settings, tmp_path):
    engine = team_engine(backend_db, backend_settings, tmp_path, per_class=1)
    yield engine
    engine.close()


def _label(leases, ask, name, supersedes_id=None):
    return leases.label(ask, [class_id(leases.engine, name)], duration_ms=1, supersedes_id=supersedes_id)


def _wrong(ask):
    return "cat" if true_class(ask.path) != "cat" else "frog"


@pytest.mark.slow
def test_disagreeing_overlap_labels_go_to_review_and_the_decision_is_a_final_review_annotation(team):
    engine = team
    first, second = (
        AskLeases(engine, "first", team=EVERY_ITEM_OVERLAPS),
        AskLeases(engine, "second", team=EVERY_ITEM_OVERLAPS),
    )
    asks = first.lease(4)
    for ask in asks:
        _label(first, ask, true_class(ask.path))
    overlap = second.lease(4)
    assert sorted(a.item_id for a in overlap) == sorted(a.item_id for a in asks) and all(map(is_overlap, overlap))
    disputed, agreed = overlap[0], overlap[1:]
    _label(second, disputed, _wrong(disputed))
    for ask in agreed:
        _label(second, ask, true_class(ask.path))

    (task,) = review_queue(engine.db, "default")
    by_name = class_ids_by_name(engine)
    assert task.item_id == disputed.item_id and task.round == 1
    assert task.labels == {"first": (by_name[true_class(disputed.path)],), "second": (by_name[_wrong(disputed)],)}

    decision = decide(
        engine.db,
        project_id=engine.project_id,
        task=task,
        reviewer="rita",
        class_ids=[class_id(engine, true_class(disputed.path))],
    )
    with engine.db.reading() as session:
        row = session.get(Annotation, decision)
        newest = queries.latest_annotation(session, disputed.item_id)
        reviewer = session.scalar(select(Annotator).where(Annotator.name == "rita"))
        assert (row.source, row.annotator_id, [c.name for c in row.classes]) == (
            AnnotationSource.REVIEW,
            reviewer.id,
            [true_class(disputed.path)],
        )
        assert newest.id == decision and row.supersedes_id is not None
    assert review_queue(engine.db, "default") == []
    with pytest.raises(UserError, match="decided by another reviewer"):
        decide(
            engine.db,
            project_id=engine.project_id,
            task=task,
            reviewer="ralph",
            class_ids=[class_id(engine, _wrong(disputed))],
        )


def test_a_decided_item_reopens_only_when_a_later_label_disagrees_with_the_decision(team):
    engine = team
    first, second = (
        AskLeases(engine, "first", team=EVERY_ITEM_OVERLAPS),
        AskLeases(engine, "second", team=EVERY_ITEM_OVERLAPS),
    )
    (ask,) = first.lease(1)
    first_label = _label(first, ask, true_class(ask.path))
    (overlap,) = second.lease(1)
    second_label = _label(second, overlap, _wrong(overlap))
    (task,) = review_queue(engine.db, "default")
    decision = decide(
        engine.db,
        project_id=engine.project_id,
        task=task,
        reviewer="rita",
        class_ids=[class_id(engine, true_class(ask.path))],
    )

    # The second annotator undoes and labels again as the reviewer decided: nothing reopens.
    undone = second.undo(overlap, [class_id(engine, true_class(ask.path))], supersedes_id=second_label)
    agreeing = _label(second, overlap, true_class(ask.path), supersedes_id=undone)
    assert review_queue(engine.db, "default") == []
    # The first annotator changes their mind against the decision: a new disagreement, round 2.
    undone = first.undo(ask, [class_id(engine, true_class(ask.path))], supersedes_id=first_label)
    _label(first, ask, _wrong(ask), supersedes_id=undone)
    (again,) = review_queue(engine.db, "default")
    assert (again.task_id, again.round) == (task.task_id, 2)
    assert again.previous_decision == (class_ids_by_name(engine)[true_class(ask.path)],)
    assert decision < agreeing
    with pytest.raises(UserError):
        decide(
            engine.db,
            project_id=engine.project_id,
            task=task,
            reviewer="rita",
            class_ids=[class_id(engine, true_class(ask.path))],
        )  # round 1 is over
    decide(
        engine.db,
        project_id=engine.project_id,
        task=again,
        reviewer="rita",
        class_ids=[class_id(engine, true_class(ask.path))],
    )
    assert review_queue(engine.db, "default") == []


@pytest.mark.slow
def test_the_review_page_shows_each_label_and_records_the_reviewers_key_as_final(engine):
    first, second = (
        AskLeases(engine, "first", team=EVERY_ITEM_OVERLAPS),
        AskLeases(engine, "second", team=EVERY_ITEM_OVERLAPS),
    )
    (ask,) = first.lease(1)
    _label(first, ask, true_class(ask.path))
    (overlap,) = second.lease(1)
    _label(second, overlap, _wrong(overlap))

    app = open_page("pages/review.py", name="rita", role=Role.REVIEWER)
    assert app.text[0].value == ask.path
    shown = {row["annotator"]: row["label"] for row in app.dataframe[0].value.to_dict("records")}
    assert shown == {"first": true_class(ask.path), "second": _wrong(ask)}
    assert shortcuts(app)["s"] == "Later"
    app.button(key=f"decide-{class_ids_by_name(engine)[true_class(ask.path)]}").click().run()

    assert not app.exception and review_queue(engine.db, "default") == []
    assert app.success[0].value == "Nothing to review."
    with engine.db.reading() as session:
        newest = queries.latest_annotation(session, ask.item_id)
        assert newest.source is AnnotationSource.REVIEW and [c.name for c in newest.classes] == [true_class(ask.path)]
    assert engine.current_label(ask.item_id).annotation_id == newest.id


@pytest.mark.slow
def test_multi_label_review_starts_from_the_agreed_classes_and_number_keys_toggle_the_rest(engine):
    engine = multi_label_engine(engine)
    ids = class_ids_by_name(engine)
    first, second = (
        AskLeases(engine, "first", team=EVERY_ITEM_OVERLAPS),
        AskLeases(engine, "second", team=EVERY_ITEM_OVERLAPS),
    )
    (ask,) = first.lease(1)
    first.label(ask, [class_id(engine, "cat"), class_id(engine, "frog")], duration_ms=1, supersedes_id=None)
    (overlap,) = second.lease(1)
    second.label(overlap, [class_id(engine, "cat"), class_id(engine, "truck")], duration_ms=1, supersedes_id=None)

    app = open_page("pages/review.py", name="rita", role=Role.REVIEWER)
    keys = shortcuts(app)
    assert tuple(keys[str(n)] for n in range(1, 5)) == CLASSES and keys["enter"] == "Save the decision"

    def chosen():
        return {b.label for b in app.button if b.proto.shortcut in "1234" and b.proto.type == "primary"}

    assert chosen() == {"cat"}  # the class both annotators gave
    for name in ("airplane", "cat"):  # toggle one on, one off
        app.button(key=next(b.key for b in app.button if b.label == name)).click().run()
    assert chosen() == {"airplane"}
    next(b for b in app.button if b.proto.shortcut == "enter").click().run()

    assert not app.exception and review_queue(engine.db, "default") == []
    assert engine.current_label(ask.item_id).class_ids == (ids["airplane"],)
    with engine.db.reading() as session:
        newest = queries.latest_annotation(session, ask.item_id)
        assert newest.source is AnnotationSource.REVIEW and [c.name for c in newest.classes] == ["airplane"]


@pytest.mark.slow
def test_annotators_cannot_open_the_review_page_and_admins_set_the_team_settings_there(engine):
    refused = open_page("pages/review.py", name="anna", role=Role.ANNOTATOR)
    assert [e.value for e in refused.error] == ["This page is for accounts with the reviewer role or above."]
    assert open_page("pages/review.py", name="rita", role=Role.REVIEWER).expander == []

    app = open_page("pages/review.py", name="adam", role=Role.ADMIN)
    assert app.expander[0].label == "Team settings"
    app.number_input[0].set_value(3)
    app.number_input[1].set_value(20.0)
    app.button[[b.label for b in app.button].index("Save")].click().run()
    assert read_team_settings(engine.db, engine.project_id) == TeamSettings(lease_seconds=180, overlap_share=0.2)
    assert LabelingSession(engine, "new").leases.team.overlap_share == 0.2


@pytest.mark.slow
def test_undoing_a_second_opinion_restores_the_first_label_without_agreeing_with_it(team):
    engine = team
    first, second = (
        AskLeases(engine, "first", team=EVERY_ITEM_OVERLAPS),
        AskLeases(engine, "second", team=EVERY_ITEM_OVERLAPS),
    )
    (ask,) = first.lease(1)
    _label(first, ask, true_class(ask.path))
    (overlap,) = second.lease(1)
    wrong = _label(second, overlap, _wrong(overlap))
    second.undo(
        overlap, [class_id(engine, true_class(ask.path))], supersedes_id=wrong
    )  # the item's label before: the first's

    with engine.db.reading() as session:
        newest = queries.latest_annotation(session, ask.item_id)
        assert [c.name for c in newest.classes] == [true_class(ask.path)]  # the item's current label is back
        assert newest.source is AnnotationSource.UNDO
    agreement = project_agreement(engine.db, "default")
    assert agreement.n_items == 0  # only the first annotator still holds an opinion on the item
    assert all(person.annotator != "second" for person in agreement.annotators)
