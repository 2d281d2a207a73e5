"""Leases on asks, on SQLite and PostgreSQL: exclusive under concurrency, expiry, overlap asks."""

import threading
from datetime import timedelta

import pytest
from sqlalchemy import update

from services.errors import UserError
from services.teams.leases import AskLeases, TeamSettings, is_overlap
from storage import queries
from storage.teams import lease_queries
from storage.teams.lease_models import ItemLease
from storage.types import utc_now
from tests.labeling_project import class_id, true_class
from tests.team_project import overlap_wanted, team_engine

pytestmark = pytest.mark.slow

THREADS = 8
NO_OVERLAP = TeamSettings(overlap_share=0.0)


@pytest.fixture
def engine(backend_db, backend_settings, tmp_path):
    engine = team_engine(backend_db, backend_settings, tmp_path, per_class=10)
    yield engine
    engine.close()


def _in_threads(target, n=THREADS):
    """Run ``target(i)`` in ``n`` threads released at once; return their results, re-raising any error."""
    start = threading.Barrier(n)
    results, errors = [None] * n, []

    def run(i):
        try:
            start.wait()
            results[i] = target(i)
        except BaseException as error:  # reported to the test below
            errors.append(error)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors, errors
    return results


def _label(leases, ask):
    return leases.label(ask, [class_id(leases.engine, true_class(ask.path))], duration_ms=1, supersedes_id=None)


def test_the_database_gives_each_item_to_one_taker_when_many_take_the_same_items_at_once(engine):
    annotators = []
    with engine.db.writing() as session:
        for i in range(THREADS):
            annotators.append(queries.get_or_add_annotator(session, f"taker-{i}").id)
    items = engine.pool.item_ids.tolist()
    now = utc_now()

    def take(i):
        with engine.db.writing() as session:
            return lease_queries.take(
                session,
                project_id=engine.project_id,
                annotator_id=annotators[i],
                item_ids=items,
                overlap=False,
                now=now,
                expires_at=now + timedelta(minutes=5),
            )

    taken = _in_threads(take)
    assert sorted(item for got in taken for item in got) == sorted(items)  # each item exactly once


def test_annotators_leasing_at_once_never_get_the_same_item(engine):
    sessions = [AskLeases(engine, f"ann-{i}", team=NO_OVERLAP) for i in range(THREADS)]
    # Everyone's first lease happens before anyone drains the rest: 8 x 3 asks fit in the pool,
    # so each must get some; a free-running thread could otherwise find the pool already empty.
    first_round = threading.Barrier(THREADS)

    def lease_all(i):
        got = [ask.item_id for ask in sessions[i].lease(3)]
        first_round.wait(60)
        while asks := sessions[i].lease(3, exclude=got):
            got += [ask.item_id for ask in asks]
        return got

    leased = _in_threads(lease_all)
    everything = [item for got in leased for item in got]
    assert len(everything) == len(set(everything)) == len(engine.pool.item_ids)
    assert all(leased), "every annotator got some asks"
    with engine.db.reading() as session:
        rows = lease_queries.leases(session, engine.project_id)
    holder = {row.item_id: row.annotator_id for row in rows}
    assert len(rows) == len(holder) == len(everything)
    for i, got in enumerate(leased):
        assert {holder[item] for item in got} == {sessions[i].annotator_id}


def test_an_abandoned_lease_returns_to_the_pool_and_its_old_holder_can_no_longer_label_it(engine):
    first, second = AskLeases(engine, "first", team=NO_OVERLAP), AskLeases(engine, "second", team=NO_OVERLAP)
    held = first.lease(len(engine.pool.item_ids))
    assert len(held) == len(engine.pool.item_ids) and second.lease(5) == []
    abandoned, kept = held[0], held[1]
    with engine.db.writing() as session:  # as if the lease time had passed for one of them
        session.execute(
            update(ItemLease)
            .where(ItemLease.item_id == abandoned.item_id)
            .values(expires_at=utc_now() - timedelta(seconds=1))
        )

    taken_over = second.lease(5)
    assert [ask.item_id for ask in taken_over] == [abandoned.item_id]
    with pytest.raises(UserError, match="no longer yours"):
        _label(first, abandoned)
    _label(second, taken_over[0])
    _label(first, kept)  # an unexpired lease still labels
    assert first.renew(held) == {ask.item_id for ask in held[2:]}


def test_a_released_ask_goes_to_the_next_annotator(engine):
    first, second = AskLeases(engine, "first", team=NO_OVERLAP), AskLeases(engine, "second", team=NO_OVERLAP)
    held = first.lease(len(engine.pool.item_ids))
    first.release(held[:2])
    assert {ask.item_id for ask in second.lease(5)} == {ask.item_id for ask in held[:2]}


def test_overlap_asks_go_to_one_other_annotator_for_about_the_configured_share(engine):
    share = 0.25
    team = TeamSettings(overlap_share=share)
    first, second, third = (AskLeases(engine, name, team=team) for name in ("first", "second", "third"))
    labeled = []
    while asks := first.lease(8, exclude=labeled):
        assert not any(is_overlap(ask) for ask in asks), "never asked again of the one who labeled it"
        for ask in asks:
            _label(first, ask)
            labeled.append(ask.item_id)
    assert len(labeled) == len(engine.pool.item_ids)

    overlap = [ask for ask in second.lease(len(labeled)) if is_overlap(ask)]
    offered = {ask.item_id for ask in overlap}
    assert offered == {item for item in labeled if overlap_wanted(item, share)}
    assert abs(len(offered) / len(labeled) - share) < 0.1
    assert third.lease(len(labeled)) == []  # each overlap ask goes to one other annotator only
    assert first.lease(len(labeled)) == []

    for ask in overlap:
        _label(second, ask)
    assert third.lease(len(labeled)) == []
    with engine.db.reading() as session:
        rows = lease_queries.leases(session, engine.project_id)
    assert sorted(row.item_id for row in rows if row.overlap) == sorted(offered)
    assert all(row.labeled_at is not None for row in rows)
