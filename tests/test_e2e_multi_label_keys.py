"""End to end in a real browser: a reviewer chooses class SETS of a multi-label project with the
keyboard only. Keys 1–9 and 0 toggle the classes (in the order they were added), starting from

- on the Review page, the classes every annotator gave; Enter saves the decision;
- on the Label issues page, the flagged image's given classes; Ctrl+Enter saves them.

The database must then hold exactly the chosen set as the image's newest, ``review``,
annotation. One app start for the module (it embeds the 24 sample images on first start).
Screenshots go to test-artifacts/.

Needs Debian's chromium at /usr/bin/chromium (``.ci/run`` installs it) and the playwright
package; playwright's own browser download is never used.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path

import pytest
from sqlalchemy import select

from services.config import Settings
from services.database import open_database
from services.projects import get_project, set_multi_label
from services.teams.disagreement import open_if_disagreement
from storage.items import item_queries
from storage.models import Annotation, AnnotationSource, Annotator, Role
from storage.types import utc_now
from tests.e2e_app import CHROMIUM, CHROMIUM_ARGS, REPO, add_account, running_app, settle, sign_in
from tests.labeling_project import CLASSES, ingested_sample_project, true_class
from tests.labels_by_name import NewLabel, record_annotations

pytestmark = pytest.mark.e2e

ARTIFACTS = REPO / "test-artifacts"
REVIEWER = "rev"
FIRST_PAGE_MS = 180_000  # the first page a test opens may wait for the app to embed the images

if not CHROMIUM.exists() and os.environ.get("CI") != "true":  # CI installs it, so there it must be found
    pytest.skip("Debian's chromium is not installed (apt-get install -y chromium)", allow_module_level=True)
sync_playwright = pytest.importorskip("playwright.sync_api").sync_playwright


@dataclass(frozen=True)
class Project:
    home: Path
    disputed: str  # path of the image in the review queue
    planted: dict[str, list[str]]  # path -> the wrong class set "ann" gave it


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Project:
    """The 24 sample images (4 classes), multi-label, every image labeled by "ann": its true class,
    except three planted wrong sets (as in tests/test_label_issues_multilabel.py, where cleanlab
    flags them). One cat image is disputed: "ann" gave it cat and frog, then "second" gave it cat,
    so its review task starts with cat chosen. The reviewer account "rev"."""
    settings = ingested_sample_project(tmp_path_factory.mktemp("multi-label-keys"))
    add_account(settings.home, REVIEWER, Role.REVIEWER)
    with open_database(settings) as db:
        assert set_multi_label(db, "default", True)
        project_id = get_project(db, "default").id
        with db.reading() as session:
            paths = dict(item_queries.ok_item_paths(session, project_id))
        first = {name: sorted(p for p in paths.values() if p.startswith(f"{name}/")) for name in CLASSES}
        planted = {
            first["airplane"][0]: ["airplane", "truck"],
            first["frog"][0]: ["cat"],
            first["cat"][1]: ["cat", "frog"],
        }
        disputed = first["cat"][3]
        given = {**planted, disputed: ["cat", "frog"]}
        record_annotations(
            db, [NewLabel(item, given.get(path, [true_class(path)])) for item, path in paths.items()], annotator="ann"
        )
        item = next(item for item, path in paths.items() if path == disputed)
        record_annotations(db, [NewLabel(item, ["cat"])], annotator="second")
        with db.writing() as session:
            open_if_disagreement(session, project_id=project_id, item_id=item, now=utc_now())
    return Project(settings.home, disputed, planted)


@pytest.fixture(scope="module")
def app_url(project: Project):
    with running_app(project.home) as url:
        yield url


@dataclass(frozen=True)
class Written:
    """One annotation as stored."""

    id: int
    source: AnnotationSource
    annotator: str | None
    classes: frozenset[str]
    supersedes_id: int | None


def annotations_of(home: Path, path: str) -> list[Written]:
    """The image's annotations, oldest first."""
    with open_database(Settings(home=home)) as db:
        project_id = get_project(db, "default").id
        with db.reading() as session:
            item = next(i for i, p in item_queries.ok_item_paths(session, project_id) if p == path)
            rows = session.scalars(select(Annotation).where(Annotation.item_id == item).order_by(Annotation.id)).all()
            names = {
                row.annotator_id: session.get(Annotator, row.annotator_id).name for row in rows if row.annotator_id
            }
            return [
                Written(
                    row.id,
                    row.source,
                    names.get(row.annotator_id),
                    frozenset(c.name for c in row.classes),
                    row.supersedes_id,
                )
                for row in rows
            ]


# ----- the class toggles (app/class_toggles.py) in the page ---------------------------------

TOGGLES_JS = """prefix => [...document.querySelectorAll(`[class*="st-key-${prefix}"][class*="-toggle-"] button`)]
    .map(b => [(b.querySelector('[data-testid="stMarkdownContainer"]') || b).innerText.trim(),
               b.getAttribute('data-testid') === 'stBaseButton-primary'])"""


def toggles(page, prefix: str) -> list[tuple[str, bool]]:
    """(class name, chosen) of each toggle button whose key starts with ``prefix``, in page order."""
    return [(name, chosen) for name, chosen in page.evaluate(TOGGLES_JS, prefix)]


def wait_for_chosen(page, prefix: str, names: set[str], timeout_ms: int = 60_000) -> None:
    """Wait until exactly ``names`` show as chosen (primary buttons); then until the run ended."""
    page.wait_for_function(
        f"([prefix, names]) => {{ const t = ({TOGGLES_JS})(prefix); return t.length > 0 &&"
        " JSON.stringify(t.filter(x => x[1]).map(x => x[0]).sort()) === JSON.stringify(names); }",
        arg=[prefix, sorted(names)],
        timeout=timeout_ms,
    )
    settle(page)


def toggle_with_keys(page, prefix: str, start: set[str], names: list[str]) -> set[str]:
    """Press the number key of each class in ``names`` in turn (the toggles are in key order),
    checking after each that exactly that class flipped; returns the chosen set."""
    order = [name for name, _ in toggles(page, prefix)]
    chosen = set(start)
    for name in names:
        page.keyboard.press(str((order.index(name) + 1) % 10))
        chosen ^= {name}
        wait_for_chosen(page, prefix, chosen)
    return chosen


def open_page(page, title: str) -> None:
    """Open a page from the sidebar (a reload would sign out); returns once its title shows."""
    page.get_by_test_id("stSidebarNav").get_by_text(title, exact=True).click()
    page.get_by_role("heading", name=title, exact=True).wait_for(timeout=FIRST_PAGE_MS)


# ----- the tests -------------------------------------------------------------------------------


def test_review_chooses_a_class_set_with_number_keys_and_enter_saves_it(app_url, project):
    ARTIFACTS.mkdir(exist_ok=True)
    before = annotations_of(project.home, project.disputed)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        sign_in(page, app_url, REVIEWER)
        open_page(page, "Review")
        prefix = "review-"
        # The toggles start with the classes every annotator gave: "ann" cat and frog, "second" cat.
        wait_for_chosen(page, prefix, {"cat"}, timeout_ms=FIRST_PAGE_MS)
        assert page.locator('[data-testid="stMain"] [data-testid="stText"]').first.inner_text() == project.disputed
        assert [name for name, _ in toggles(page, prefix)] == list(CLASSES)  # keys 1-4, in the order added
        page.get_by_role("heading", name="Review", exact=True).click()  # the focus on the page, not a field

        chosen = toggle_with_keys(page, prefix, {"cat"}, ["airplane", "truck", "airplane"])  # 1, 4, 1 again
        assert chosen == {"cat", "truck"}
        page.screenshot(path=str(ARTIFACTS / "review-multi-label.png"))
        page.keyboard.press("Enter")
        page.get_by_text("Nothing to review.").wait_for(timeout=60_000)
        settle(page)
        assert not toggles(page, prefix)
        browser.close()

    after = annotations_of(project.home, project.disputed)
    assert after[: len(before)] == before and len(after) == len(before) + 1  # one annotation, the decision
    decision = after[-1]
    assert (decision.source, decision.annotator, decision.classes, decision.supersedes_id) == (
        AnnotationSource.REVIEW,
        REVIEWER,
        {"cat", "truck"},
        before[-1].id,
    )


def given_and_suggested(page) -> tuple[set[str], set[str]]:
    """The issue's given and suggested class sets, as the page states them."""
    text = page.locator('[data-testid="stMarkdownContainer"]').filter(has_text="Given classes:").first.inner_text()
    found = re.search(r"Given classes: (.+)\n\s*Suggested classes: (.+)\n", text)
    assert found, text
    return tuple(set(part.split(", ")) for part in found.groups())


def test_label_issues_chooses_a_class_set_with_number_keys_and_ctrl_enter_saves_it(app_url, project):
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        sign_in(page, app_url, REVIEWER)
        open_page(page, "Label issues")
        save = page.get_by_role("button", name="Save these classes")
        save.wait_for(timeout=FIRST_PAGE_MS)  # at least one image flagged (the planted sets)
        settle(page)
        shown = page.locator('[data-testid="stMain"] [data-testid="stText"]').first.inner_text()
        if shown == project.disputed:  # the Review test may have given it a wrong set: leave it to that test
            page.keyboard.press("s")
            page.wait_for_function(
                'before => { const e = document.querySelector(\'[data-testid="stMain"] [data-testid="stText"]\');'
                " return e && e.innerText !== before; }",
                arg=shown,
                timeout=60_000,
            )
            settle(page)
            shown = page.locator('[data-testid="stMain"] [data-testid="stText"]').first.inner_text()
        position = re.compile(r"^\d+ of \d+$")  # the issue's heading, "1 of 9"
        heading = page.locator('[data-testid="stMain"] h3').filter(has_text=position).first.inner_text()
        prefix = "label-issue-set-"
        given, suggested = given_and_suggested(page)
        wait_for_chosen(page, prefix, given)  # the toggles start with the given set
        assert [name for name, _ in toggles(page, prefix)] == list(CLASSES)
        before = annotations_of(project.home, shown)
        assert before[-1].classes == given

        # Two classes flipped, to a set that is neither the given nor the suggested one (Keep, K, and
        # Accept, Enter, save those), and not empty.
        flipped = next(
            list(pair)
            for pair in combinations(CLASSES, 2)
            if (target := given ^ set(pair)) and target not in (given, suggested)
        )
        page.get_by_role("heading", name="Label issues", exact=True).click()  # the focus on the page
        chosen = toggle_with_keys(page, prefix, given, flipped)
        page.screenshot(path=str(ARTIFACTS / "label-issues-multi-label.png"))
        page.keyboard.press("Control+Enter")
        page.wait_for_function(
            "before => { const h = [...document.querySelectorAll('[data-testid=\"stMain\"] h3')]"
            ".map(e => e.innerText.trim()); return !h.includes(before); }",
            arg=heading,
            timeout=60_000,
        )
        settle(page)
        browser.close()

    after = annotations_of(project.home, shown)
    assert after[: len(before)] == before and len(after) == len(before) + 1, after  # one annotation, the verdict
    verdict = after[-1]
    assert (verdict.source, verdict.annotator, verdict.classes, verdict.supersedes_id) == (
        AnnotationSource.REVIEW,
        REVIEWER,
        chosen,
        before[-1].id,
    )
    assert chosen not in (given, suggested) and len(chosen ^ given) == 2
