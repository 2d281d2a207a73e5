"""Triage's "Label these next": queued images are asked before the strategy's picks, in order, once each.

The service tests run on SQLite and PostgreSQL (tests/backends.py) over a project with
synthetic embeddings; the CLI and page tests over the small real project.
"""

import csv
import re

import pytest
from sqlalchemy import select

from app.cli import main
from app.safe_text import escape_markdown
from services.data_engine.triage import TriageReport, TriageRow, label_next, label_next_message, near_failures
from services.database import open_database
from services.engine.project_engine import ProjectEngine
from services.labeling.priority_asks import QueueResult, clear_queue, queue_priority_asks, queue_view
from services.labeling.session import LabelingSession
from services.projects import get_project
from services.teams.leases import AskLeases, TeamSettings
from storage.labels import label_queries, priority_queries
from storage.models import Item, Pick, SelectionRun
from storage.types import utc_now
from tests.app_helpers import open_page
from tests.labeling_project import true_class
from tests.labels_by_name import record_annotation
from tests.team_project import pending_items, team_engine
from tests.test_leases import _in_threads
from tests.test_slices import label_truly
from tests.test_triage import triaged_project  # noqa: F401  (a fixture)

NO_OVERLAP = TeamSettings(overlap_share=0.0)


@pytest.fixture
def team(backend_db, backend_settings, tmp_path):
    engine = team_engine(backend_db, backend_settings, tmp_path, per_class=10)
    yield engine
    engine.close()


def queue(engine, items):
    """Queue ``items`` in this order, the k-th with triage margin k / 100."""
    return queue_priority_asks(
        engine.db,
        project_id=engine.project_id,
        items=[(item, {"triage_margin": rank / 100}) for rank, item in enumerate(items)],
    )


def some_items(engine, n=6):
    """``n`` item ids in an order no strategy would choose: every third item, from the end."""
    return engine.pool.item_ids.tolist()[::-3][:n]


def answer(session, ask):
    session.label(ask.item_id, [next(c.id for c in session.engine.classes.values() if c.name == true_class(ask.path))])


def test_queued_images_are_asked_first_in_order_as_triage_picks_outside_audit_accuracy(team):
    items = some_items(team)
    result = queue(team, items)
    assert (result.queued, result.already_queued, result.labeled) == (6, 0, 0)
    session = LabelingSession(team, "ann", team=NO_OVERLAP)
    asked = []
    for _ in items:
        ask = session.current()
        asked.append(ask)
        answer(session, ask)
    assert [ask.item_id for ask in asked] == items
    assert {ask.source for ask in asked} == {"triage"}
    assert [ask.score_parts for ask in asked] == [{"triage_margin": rank / 100} for rank in range(len(items))]
    assert session.current().source != "triage"  # the queue is done: the strategy's picks follow
    with team.db.reading() as db_session:
        picks = db_session.execute(
            select(Pick.item_id, Pick.source, Pick.predicted, SelectionRun.strategy)
            .join(SelectionRun, SelectionRun.id == Pick.selection_run_id)
            .where(Pick.id.in_([ask.pick_id for ask in asked]))
        ).all()
        audited = {pick.item_id for pick in label_queries.audit_picks(db_session, team.project_id)}
    assert sorted(picks) == sorted((item, "triage", None, "triage") for item in items)
    assert not audited & set(items)
    assert pending_items(team.db, team.project_id) == []
    session.close()


def test_labeled_images_are_skipped_and_queueing_again_adds_nothing(team):
    items = some_items(team)
    names = {item: true_class(team.pool.paths[team.pool.row_of[item]]) for item in items}
    record_annotation(team.db, item_id=items[1], class_names=[names[items[1]]], annotator="grid")
    first = queue(team, items)
    assert (first.queued, first.already_queued, first.labeled) == (5, 0, 1)
    again = queue(team, list(reversed(items)))
    assert (again.queued, again.already_queued, again.labeled) == (0, 5, 1)
    assert label_next_message(again) == "Queued no new images (5 already queued, 1 labeled already)."
    assert label_next_message(first).startswith("Queued 5 images to be asked next on the Label page")
    one = QueueResult(queued=1, already_queued=0, labeled=0)
    assert label_next_message(one, what="near-failure") == (
        "Queued 1 near-failure to be asked next on the Label page, in report order."
    )
    with team.db.reading() as session:
        assert len(session.scalars(select(SelectionRun).where(SelectionRun.strategy == "triage")).all()) == 1

    # Labeled meanwhile on another page (the engine has not heard of it): skipped.
    record_annotation(team.db, item_id=items[2], class_names=[names[items[2]]], annotator="grid")
    session = LabelingSession(team, "ann", team=NO_OVERLAP)
    assert [session.current().item_id] == [items[0]]
    answer(session, session.current())
    assert session.current().item_id == items[3]
    assert pending_items(team.db, team.project_id) == items[3:]
    session.close()


def test_the_queue_survives_a_restart(team, backend_settings):
    items = some_items(team)
    queue(team, items)
    with open_database(backend_settings) as db:  # a new process: a new database handle and a new engine
        project = get_project(db, "default")
        engine = ProjectEngine(db, backend_settings, project=project, pool=team.pool)
        try:
            session = LabelingSession(engine, "ann", team=NO_OVERLAP)
            got = []
            for _ in items:
                ask = session.current()
                got.append((ask.item_id, ask.source))
                answer(session, ask)
            assert got == [(item, "triage") for item in items]
            session.close()
        finally:
            engine.close()


def test_annotators_at_once_are_each_asked_different_queued_images(team):
    items = team.pool.item_ids.tolist()[::-2][:12]
    queue(team, items)
    annotators = [AskLeases(team, f"ann-{i}", team=NO_OVERLAP) for i in range(4)]
    leased = _in_threads(lambda i: annotators[i].lease(3), n=4)
    got = [ask.item_id for asks in leased for ask in asks]
    assert sorted(got) == sorted(items)  # each queued image once, none of the strategy's picks yet
    assert all(ask.source == "triage" for asks in leased for ask in asks)
    for asks in leased:  # each annotator's share keeps the queue's order
        assert [ask.item_id for ask in asks] == sorted((ask.item_id for ask in asks), key=items.index)


def test_a_skipped_or_held_image_goes_to_the_next_annotator(team):
    items = some_items(team, 3)
    queue(team, items)
    first = LabelingSession(team, "ann", team=NO_OVERLAP, batch_size=1, low_water=0)
    second = LabelingSession(team, "bob", team=NO_OVERLAP, batch_size=1, low_water=0)
    assert first.current().item_id == items[0]
    assert second.current().item_id == items[1]  # items[0] is ann's
    first.skip(items[0])
    third = LabelingSession(team, "cy", team=NO_OVERLAP, batch_size=1, low_water=0)
    assert third.current().item_id == items[0]  # given back: the next annotator gets it
    assert first.current().item_id == items[2]  # not asked again of ann in this session
    for session in (first, second, third):
        session.close()


def test_label_next_queues_report_rows_in_order_with_their_margin(team):
    items = some_items(team, 4)
    rows = [
        TriageRow(
            item_id=item,
            path=team.pool.paths[team.pool.row_of[item]],
            kinds=kinds,
            margin=margin,
            predicted=None,
            confidence=None,
            nearest_path=None,
            nearest_similarity=None,
            would_get=None,
        )
        for item, kinds, margin in zip(
            items, [("near_failure",), ("near_failure", "novel"), ("novel",), ()], [0.01, 0.05, 0.7, None]
        )
    ]
    report = TriageReport(batch="every unlabeled image", rows=rows)
    assert [row.item_id for row in near_failures(report)] == items[:2]
    result = label_next(team.db, project="default", rows=rows)
    assert result.queued == 4
    with team.db.reading() as session:
        parts = dict(session.execute(select(Pick.item_id, Pick.score_parts).where(Pick.source == "triage")).all())
    assert [parts[item] for item in items] == [
        {"triage_margin": 0.01},
        {"triage_margin": 0.05},
        {"triage_margin": 0.7},
        {},
    ]
    assert pending_items(team.db, team.project_id) == items


# ----- the CLI and the Triage page over the small real project ---------------------------


@pytest.mark.slow
def test_cli_triage_label_next_queues_the_near_failures_once(triaged_project, capsys):  # noqa: F811
    base, _ = triaged_project
    out = base / "report.csv"
    arguments = [
        "triage",
        "--batch",
        "new",
        "--out",
        str(out),
        "--workers",
        "0",
        "--near-failure-margin",
        "0.5",
        "--label-next",
    ]
    capsys.readouterr()
    assert main(arguments) == 0
    printed = capsys.readouterr().out
    with open(out, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    failures = [int(row["item_id"]) for row in rows if "near_failure" in row["kinds"].split(";")]
    assert failures, printed
    noun = "near-failure" if len(failures) == 1 else "near-failures"
    assert f"Queued {len(failures)} {noun} to be asked next on the Label page, in report order." in printed
    from services.config import load_settings

    with open_database(load_settings()) as db:
        assert pending_items(db, get_project(db, "default").id) == failures

    assert main(arguments) == 0
    assert f"Queued no new near-failures ({len(failures)} already queued)." in capsys.readouterr().out
    assert main(["triage", "--batch", "new", "--out", str(out), "--workers", "0"]) == 0
    assert "Queued" not in capsys.readouterr().out  # without --label-next nothing is queued


@pytest.mark.slow
def test_triage_page_label_these_next_then_the_label_page_asks_the_first(engine):
    label_truly(engine, 10)
    app = open_page("pages/triage.py")
    app.button[0].click().run()  # the form's submit: every unlabeled image
    report = app.session_state["triage_report"][1]
    shown = [row for row in report.rows if row.kinds]  # every kind is chosen
    assert shown
    app.button(key="triage_label_next").click().run()
    assert not app.exception
    assert app.success[0].value.startswith(f"Queued {len(shown)} images to be asked next on the Label page")
    app.button(key="triage_label_next").click().run()
    assert app.success[0].value.startswith(f"Queued no new images \\({len(shown)} already queued\\)")

    label_page = open_page()
    assert label_page.text[0].value == shown[0].path
    why = " ".join(m.value for m in label_page.expander[0].markdown)
    assert "Queued from the Triage report" in why
    assert pending_items(engine.db, engine.project_id) == [row.item_id for row in shown]


# ----- viewing and clearing the queue ------------------------------------------------------


def _queue_picks(engine):
    with engine.db.reading() as session:
        return session.execute(
            select(Pick.item_id, Pick.withdrawn_at)
            .join(SelectionRun)
            .where(SelectionRun.strategy == "triage")
            .order_by(Pick.id)
        ).all()


def test_clear_withdraws_only_waiting_images_and_keeps_what_was_asked(team):
    items = some_items(team)
    queue(team, items)
    first = LabelingSession(team, "ann", team=NO_OVERLAP, batch_size=1, low_water=0)
    second = LabelingSession(team, "bob", team=NO_OVERLAP, batch_size=1, low_water=0)
    asked = first.current()
    answer(first, asked)  # items[0]: asked and labeled
    held = second.current()  # items[1]: leased by bob, not labeled yet
    assert (asked.item_id, held.item_id) == (items[0], items[1])
    view = queue_view(team.db, team.project_id, first=3)
    assert view.waiting == 5 and [pick.item_id for pick in view.first] == items[1:4]
    assert [pick.score_parts for pick in view.first] == [{"triage_margin": r / 100} for r in (1, 2, 3)]
    assert view.first[0].path == team.pool.paths[team.pool.row_of[items[1]]]

    assert clear_queue(team.db, team.project_id) == 5
    assert pending_items(team.db, team.project_id) == []
    assert queue_view(team.db, team.project_id).waiting == 0
    picks = _queue_picks(team)  # every pick stays: the record of what was queued
    assert [item for item, _ in picks] == items
    assert [withdrawn is None for _, withdrawn in picks] == [True] + [False] * 5
    with team.db.reading() as session:
        assert session.get(Pick, asked.pick_id).withdrawn_at is None
    assert clear_queue(team.db, team.project_id) == 0

    answer(second, held)  # shown before the clear: bob can still label it
    third = LabelingSession(team, "cy", team=NO_OVERLAP)
    assert third.current().source != "triage"  # the cleared images are no longer asked first
    again = queue(team, items)  # queueing the cleared images again works
    assert (again.queued, again.already_queued, again.labeled) == (4, 0, 2)
    assert pending_items(team.db, team.project_id) == items[2:]
    for session in (first, second, third):
        session.close()


def test_clearing_one_project_leaves_the_other_and_items_queued_twice_all_leave(team):
    items = some_items(team, 3)
    queue(team, items)
    queue_priority_asks(team.db, project_id=team.project_id, items=[(items[0], {})])  # waiting: adds nothing
    assert clear_queue(team.db, team.project_id + 1000) == 0
    assert pending_items(team.db, team.project_id) == items
    assert clear_queue(team.db, team.project_id) == 3
    assert all(withdrawn is not None for _, withdrawn in _queue_picks(team))


def test_put_first_ranks_new_picks_before_a_run_s_picks(team):
    items = some_items(team, 5)
    with team.db.writing() as session:
        run_id, old = label_queries.add_selection_run(
            session,
            project_id=team.project_id,
            model_version_id=None,
            strategy="margin",
            parameters={},
            picks=[dict(item_id=item, score_parts={}, source="margin", predicted=None) for item in items[2:]],
        )
        new = priority_queries.put_first(
            session, run_id, [dict(item_id=item, score_parts={}, source="triage", predicted=None) for item in items[:2]]
        )
    with team.db.reading() as session:
        ranked = session.execute(
            select(Pick.id, Pick.item_id).where(Pick.selection_run_id == run_id).order_by(Pick.rank)
        ).all()
    assert [pick for pick, _ in ranked] == new + old and [item for _, item in ranked] == items


def test_cli_triage_clear_queue_prints_the_count(triaged_project, capsys):  # noqa: F811
    from services.config import load_settings

    with open_database(load_settings()) as db:
        project_id = get_project(db, "default").id
        with db.reading() as session:
            unlabeled = sorted(session.scalars(select(Item.id).where(Item.project_id == project_id)))[-3:]
        queue_priority_asks(db, project_id=project_id, items=[(item, {}) for item in unlabeled])
        waiting = len(pending_items(db, project_id))
    assert waiting
    capsys.readouterr()
    assert main(["triage", "--clear-queue"]) == 0
    noun = "image" if waiting == 1 else "images"
    assert f"removed {waiting} waiting {noun}" in capsys.readouterr().out
    assert main(["triage", "--clear-queue"]) == 0
    assert "was empty: nothing to clear" in capsys.readouterr().out
    with open_database(load_settings()) as db:
        assert pending_items(db, project_id) == []
    with pytest.raises(SystemExit) as usage:
        main(["triage"])
    assert usage.value.code == 2
    with pytest.raises(SystemExit) as usage:
        main(["triage", "--clear-queue", "--label-next"])
    assert usage.value.code == 2


@pytest.mark.slow
def test_triage_page_shows_the_queue_in_order_and_clears_it(engine):
    label_truly(engine, 10)
    app = open_page("pages/triage.py")
    assert not app.exception
    assert [m.value for m in app.metric if m.label == "Images waiting"] == ["0"]
    assert app.button(key="triage_clear_queue").disabled

    unlabeled = [item for item in engine.pool.item_ids.tolist() if engine.current_label(item) is None]
    items = unlabeled[::-1][:4]
    queue(engine, items)
    app = open_page("pages/triage.py")
    assert [m.value for m in app.metric if m.label == "Images waiting"] == ["4"]
    captions = [c.value for c in app.caption]
    shown = [
        next(
            i
            for i, c in enumerate(captions)
            if c.startswith(escape_markdown(engine.pool.paths[engine.pool.row_of[item]]))
        )
        for item in items
    ]
    assert shown == sorted(shown)  # in ask order
    assert f"margin {3 / 100:.2f}" in captions[shown[3]]

    app.button(key="triage_clear_queue").click().run()
    assert not app.exception
    assert "removed 4 waiting images" in app.success[0].value
    assert [m.value for m in app.metric if m.label == "Images waiting"] == ["0"]
    assert pending_items(engine.db, engine.project_id) == []
    label_page = open_page()
    assert "Queued from the Triage report" not in " ".join(m.value for m in label_page.expander[0].markdown)


@pytest.mark.slow
def test_an_open_session_asks_newly_queued_images_after_its_next_two(team, monkeypatch):
    monkeypatch.setattr("services.labeling.session.QUEUE_CHECK_SECONDS", 0.0)
    session = LabelingSession(team, "ann", team=NO_OVERLAP)
    first = session.current()
    assert first.source != "triage"
    with session._lock:
        held = [ask.item_id for ask in session._queue]
    assert len(held) > 3  # a batch is queued already
    items = [item for item in some_items(team, 12) if item not in held][:3]
    queue(team, items)
    asked = []
    for _ in range(5):
        ask = session.current()
        asked.append(ask)
        answer(session, ask)
    # The two asks already on their way stay; the queued images come next, in order.
    assert [ask.source == "triage" for ask in asked] == [False, False, True, True, True]
    assert [ask.item_id for ask in asked[2:]] == items
    session.close()


@pytest.mark.slow
def test_images_another_annotator_holds_do_not_unsettle_a_session(team, monkeypatch):
    monkeypatch.setattr("services.labeling.session.QUEUE_CHECK_SECONDS", 0.0)
    queue(team, some_items(team, 2))
    other = LabelingSession(team, "other", team=NO_OVERLAP)
    assert other.current().source == "triage"  # it leases both queued images
    session = LabelingSession(team, "ann", team=NO_OVERLAP)
    first = session.current()
    with session._lock:
        before = [ask.item_id for ask in session._queue]
    assert session.current() is first
    with session._lock:
        assert [ask.item_id for ask in session._queue] == before  # nothing dropped for images it cannot have
    session.close()
    other.close()


@pytest.mark.slow
def test_a_session_full_of_queued_images_is_left_alone_while_more_wait(team, monkeypatch):
    monkeypatch.setattr("services.labeling.session.QUEUE_CHECK_SECONDS", 0.0)
    queue(team, team.pool.item_ids.tolist()[::-2][:20])  # more than one batch
    session = LabelingSession(team, "ann", team=NO_OVERLAP)
    released = []
    original = session.leases.release
    monkeypatch.setattr(session.leases, "release", lambda asks: (released.extend(asks), original(asks)))
    for _ in range(6):
        answer(session, session.current())
    assert not released  # its queued asks were never dropped for the ones still waiting
    assert {ask.source for ask in session._queue} == {"triage"}
    session.close()


# ----- listing the queue: queue_view's details and `triage --show-queue` -----------------------


def _cli_uses(settings, monkeypatch):
    """Point the CLI, which reads its settings from the environment, at ``settings``' home and database."""
    for name in ("BANANA_CONFIG", "BANANA_PROJECT", "BANANA_BACKBONE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("BANANA_HOME", str(settings.home))
    monkeypatch.setenv("BANANA_DATABASE_URL", settings.database_url)


def test_queue_view_says_when_and_from_which_batch_each_image_was_queued_and_who_holds_it(team):
    items = some_items(team, 4)
    before = utc_now()
    queue_priority_asks(
        team.db,
        project_id=team.project_id,
        items=[(item, {}) for item in items[:3]],
        parameters=dict(batch="folder new"),
    )
    queue(team, items[3:])  # no batch recorded
    after = utc_now()
    held = AskLeases(team, "ann", team=NO_OVERLAP).lease(1)  # the first queued image
    assert [ask.item_id for ask in held] == items[:1]

    view = queue_view(team.db, team.project_id)

    assert [pick.item_id for pick in view.first] == items
    assert all(before <= pick.queued_at <= after for pick in view.first)
    assert [pick.batch for pick in view.first] == ["folder new"] * 3 + [""]
    assert set(view.held) == {items[0]}
    assert view.held[items[0]].annotator == "ann" and view.held[items[0]].expires_at > after
    assert queue_view(team.db, team.project_id, first=0).held == {}  # holders only of the images shown


def test_cli_triage_show_queue_lists_the_waiting_images_in_ask_order(team, backend_settings, monkeypatch, capsys):
    _cli_uses(backend_settings, monkeypatch)
    capsys.readouterr()
    assert main(["triage", "--show-queue"]) == 0
    assert capsys.readouterr().out == (
        "The \"Label these next\" queue of project 'default' is empty: no images wait. Queue a report's "
        "near-failures with: python -m app.cli triage --out report.csv --label-next\n"
    )

    items = some_items(team, 3)
    queue(team, items)
    AskLeases(team, "bob", team=NO_OVERLAP).lease(1)  # bob holds the first
    assert main(["triage", "--show-queue"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 4
    for rank, (line, item) in enumerate(zip(lines, items), start=1):
        path = team.pool.paths[team.pool.row_of[item]]
        assert line.startswith(f"{rank}. {path} (item {item}): margin {(rank - 1) / 100:.2f}; ")
        assert re.search(r"; queued \d{4}-\d\d-\d\d \d\d:\d\d UTC; ", line)
    assert " held by bob until " in lines[0] and lines[1].endswith("; not held") and lines[2].endswith("; not held")
    assert lines[3].startswith("3 images wait in the \"Label these next\" queue of project 'default'")

    assert main(["triage", "--clear-queue", "--show-queue"]) == 0  # clears first, then lists
    cleared, listed = capsys.readouterr().out.splitlines()
    assert "removed 3 waiting images" in cleared and "is empty: no images wait" in listed


def test_cli_triage_show_queue_of_a_missing_project_names_it_and_the_fix(team, backend_settings, monkeypatch, capsys):
    _cli_uses(backend_settings, monkeypatch)
    capsys.readouterr()
    assert main(["triage", "--show-queue", "--project", "nowhere"]) == 1
    printed = capsys.readouterr()
    assert printed.out == ""
    assert "no project called 'nowhere' (projects: 'default')" in printed.err
    assert "python -m app.cli ingest FOLDER --project nowhere" in printed.err


@pytest.mark.slow
def test_cli_triage_label_next_then_show_queue_lists_the_near_failures(triaged_project, capsys):  # noqa: F811
    base, _ = triaged_project
    out = base / "report.csv"
    capsys.readouterr()
    assert (
        main(
            [
                "triage",
                "--batch",
                "new",
                "--out",
                str(out),
                "--workers",
                "0",
                "--near-failure-margin",
                "0.5",
                "--label-next",
                "--show-queue",
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out.splitlines()
    with open(out, newline="", encoding="utf-8") as handle:
        failures = [row for row in csv.DictReader(handle) if "near_failure" in row["kinds"].split(";")]
    assert failures
    listed = printed[-len(failures) - 1 :]  # after the report's summary: the queue, then its count
    for rank, (line, row) in enumerate(zip(listed, failures), start=1):
        assert line.startswith(f"{rank}. {row['path']} (item {row['item_id']}): margin {float(row['margin']):.2f}; ")
        assert "from the triage of folder new; not held" in line
    noun = "image waits" if len(failures) == 1 else "images wait"
    assert listed[-1].startswith(f"{len(failures)} {noun} in the \"Label these next\" queue of project 'default'")
