"""Leases on asks: each ask is held by one annotator until it is labeled, given back or expires.

The leases live in the database (:mod:`storage.teams.lease_models`), so they hold across
processes and on PostgreSQL. An annotator's asks come from the engine's ranked
selection, minus items someone else holds and items labeled by anyone. A share of the
items labeled through a lease (``overlap_share``, picked by item id hash) is offered to
exactly one other annotator as an overlap ask, never back to the one who labeled it;
the two labels measure agreement (:mod:`services.teams.agreement`), and when they differ the
item goes to the review queue (:mod:`services.teams.review`). A lease not labeled within
``lease_seconds`` returns to the pool: the next annotator who is offered it takes it over.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from datetime import timedelta

from services import shared_settings
from services.database import Database
from services.engine.project_engine import Ask, ProjectEngine
from services.errors import UserError
from services.labeling.priority_asks import priority_asks
from services.labeling.write import HeldLease, LabelWrite, write_labels
from storage import queries
from storage.labels import label_queries
from storage.models import AnnotationSource
from storage.teams import lease_queries
from storage.types import utc_now

OVERLAP_SOURCE = "overlap"  # the pick source of an overlap ask


@dataclass(frozen=True)
class TeamSettings:
    """How a project's annotators share the work.

    lease_seconds : an unlabeled ask returns to the pool this long after it was leased or renewed.
    overlap_share : fraction of labeled items asked again of one other annotator (0 turns overlap off).
    """

    lease_seconds: int = 600
    overlap_share: float = 0.05

    def __post_init__(self) -> None:
        if not isinstance(self.lease_seconds, int) or self.lease_seconds < 10:
            raise UserError(f"lease_seconds must be a whole number of at least 10 seconds, got {self.lease_seconds!r}")
        if not 0 <= self.overlap_share <= 1:
            raise UserError(f"overlap_share must be between 0 and 1 (0.05 = 5%), got {self.overlap_share!r}")


def read_team_settings(db: Database, project_id: int) -> TeamSettings:
    """The project's team settings (kept in the database: every server reads the same); defaults when never set."""
    stored = shared_settings.read_setting(db, project_id, shared_settings.TEAM)
    if stored is None:
        return TeamSettings()
    try:
        return TeamSettings(
            lease_seconds=int(stored.get("lease_seconds", TeamSettings.lease_seconds)),
            overlap_share=float(stored.get("overlap_share", TeamSettings.overlap_share)),
        )
    except (ValueError, TypeError, AttributeError) as error:
        raise UserError(
            f"the stored team settings are not valid ({error}); save them again on the Review page "
            f"(defaults: {asdict(TeamSettings())})"
        ) from None


def save_team_settings(db: Database, project_id: int, team: TeamSettings, *, by: str | None = None) -> None:
    shared_settings.write_setting(db, project_id, shared_settings.TEAM, asdict(team), by=by)


def is_overlap(ask: Ask) -> bool:
    return ask.source == OVERLAP_SOURCE


class AskLeases:
    """One annotator's leases on one project's items; see the module docstring.

    Parameters
    ----------
    engine : ProjectEngine
    annotator : str
        The annotator's name (added if new).
    team : TeamSettings
    """

    def __init__(self, engine: ProjectEngine, annotator: str, *, team: TeamSettings) -> None:
        self.engine, self.annotator, self.team = engine, annotator, team
        with engine.db.writing() as session:
            self.annotator_id = queries.get_or_add_annotator(session, annotator).id

    def _expiry(self):
        now = utc_now()
        return now, now + timedelta(seconds=self.team.lease_seconds)

    # ----- taking asks -----------------------------------------------------------------

    def lease(self, n: int, *, exclude: Iterable[int] = ()) -> list[Ask]:
        """Lease up to ``n`` asks: waiting overlap asks first, then queued priority asks
        (:mod:`services.labeling.priority_asks`: the Triage report's "Label these next"), then the engine's best picks."""
        exclude = set(exclude)
        asks = self._overlap_asks(n, exclude)
        if len(asks) < n:
            asks += priority_asks(self, n - len(asks), exclude | {ask.item_id for ask in asks})
        if len(asks) < n:
            asks += self._primary_asks(n - len(asks), exclude | {ask.item_id for ask in asks})
        return asks

    def _primary_asks(self, n: int, exclude: set[int]) -> list[Ask]:
        """The engine's best picks that this annotator could lease. When others took every
        candidate meanwhile, choose again without them (each round excludes more, so it ends)."""
        refused: set[int] = set()
        while True:
            with self.engine.db.reading() as session:
                held = lease_queries.held_by_others(
                    session, project_id=self.engine.project_id, annotator_id=self.annotator_id, now=utc_now()
                )
            refused_now: set[int] = set()

            def claim(candidates: list[int]) -> list[int]:
                taken = self._take(candidates)
                refused_now.update(set(candidates) - taken)  # noqa: B023 - claim runs within this round
                return [item for item in candidates if item in taken]

            asks = self.engine.next_asks(n, claim=claim, exclude=exclude | held | refused)
            if asks or not refused_now:
                return asks
            refused |= refused_now

    def _take(self, candidates: Sequence[int]) -> set[int]:
        """Lease the candidates nobody holds or has labeled; the engine learns of labels it missed."""
        now, expires_at = self._expiry()
        with self.engine.db.writing() as session:
            labeled = {
                i: lab for i, lab in label_queries.current_labels_of(session, candidates).items() if lab.class_ids
            }
            taken = lease_queries.take(
                session,
                project_id=self.engine.project_id,
                annotator_id=self.annotator_id,
                item_ids=[i for i in candidates if i not in labeled],
                overlap=False,
                now=now,
                expires_at=expires_at,
            )
        # Labeled by another process meanwhile: the engine takes them now rather than at its next poll.
        self.engine.take_labels(labeled)
        return taken

    def _overlap_asks(self, n: int, exclude: set[int]) -> list[Ask]:
        engine = self.engine
        now, expires_at = self._expiry()
        serving = engine.serving
        with engine.db.reading() as session:  # most refills find none: no write transaction for them
            wanted = lease_queries.overlap_candidates(
                session,
                project_id=engine.project_id,
                annotator_id=self.annotator_id,
                share=self.team.overlap_share,
                now=now,
                limit=n + len(exclude),
            )
        wanted = [item for item in wanted if item in engine.pool.row_of and item not in exclude][:n]
        if not wanted:
            return []
        with engine.db.writing() as session:
            taken = lease_queries.take(
                session,
                project_id=engine.project_id,
                annotator_id=self.annotator_id,
                item_ids=wanted,
                overlap=True,
                now=now,
                expires_at=expires_at,
            )
            items = [item for item in wanted if item in taken]
            if not items:
                return []
            _, pick_ids = label_queries.add_selection_run(
                session,
                project_id=engine.project_id,
                model_version_id=serving.model_version_id,
                strategy=OVERLAP_SOURCE,
                parameters=dict(overlap_share=self.team.overlap_share),
                picks=[dict(item_id=item, score_parts={}, source=OVERLAP_SOURCE, predicted=None) for item in items],
            )
        return [
            Ask(
                item_id=item,
                path=engine.pool.paths[engine.pool.row_of[item]],
                pick_id=pick_id,
                source=OVERLAP_SOURCE,
                score_parts={},
                predicted=(),
                model_version_id=serving.model_version_id,
                band=None,
            )
            for item, pick_id in zip(items, pick_ids)
        ]

    # ----- holding and giving back -----------------------------------------------------

    def renew(self, asks: Iterable[Ask]) -> set[int]:
        """Push the expiry of these asks' leases; return the item ids still held."""
        _, expires_at = self._expiry()
        with self.engine.db.writing() as session:
            held = lease_queries.renew(
                session,
                annotator_id=self.annotator_id,
                keys=[(ask.item_id, is_overlap(ask)) for ask in asks],
                expires_at=expires_at,
            )
        return {item for item, _ in held}

    def release(self, asks: Iterable[Ask]) -> None:
        """Give these asks back to the pool (skipped, or never shown)."""
        keys = [(ask.item_id, is_overlap(ask)) for ask in asks]
        if keys:
            with self.engine.db.writing() as session:
                lease_queries.release(session, annotator_id=self.annotator_id, keys=keys)

    # ----- labels ----------------------------------------------------------------------

    def label(self, ask: Ask, class_ids: Sequence[int], *, duration_ms: int | None, supersedes_id: int | None) -> int:
        """Record the label and mark the lease labeled in one transaction (the one label path:
        :func:`services.labeling.write.write_labels`); a review task opens when it disagrees with
        another annotator's label of the item.

        Raises
        ------
        LeaseLost
            When the lease lapsed and someone else took the item over.
        UserError
            When the label breaks a rule of :func:`services.labeling.write.add_label`.
        """
        label = LabelWrite(ask.item_id, tuple(class_ids), supersedes_id, duration_ms)
        return write_labels(
            self.engine.db,
            project_id=self.engine.project_id,
            labels=[label],
            annotator=self.annotator,
            source=AnnotationSource.HUMAN,
            lease=self._held(ask),
        )[0]

    def undo(self, ask: Ask, class_ids: Sequence[int], *, supersedes_id: int) -> int:
        """Record the undo (the item's earlier class set) and hold the item again, in one transaction."""
        label = LabelWrite(ask.item_id, tuple(class_ids), supersedes_id)
        return write_labels(
            self.engine.db,
            project_id=self.engine.project_id,
            labels=[label],
            annotator=self.annotator,
            source=AnnotationSource.UNDO,
            lease=self._held(ask),
        )[0]

    def _held(self, ask: Ask) -> HeldLease:
        _, expires_at = self._expiry()
        return HeldLease(self.annotator_id, is_overlap(ask), self.team.lease_seconds, expires_at)
