"""End to end in a real browser: start the app, label 20 images with the keyboard only, undo one,
and find exactly those 19 labels in the database. Screenshots go to test-artifacts/.

Needs Debian's chromium at /usr/bin/chromium (``.ci/run`` installs it) and the playwright
package; playwright's own browser download is never used.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from services.config import Settings
from services.database import open_database
from services.projects import get_project
from storage.items import item_queries
from storage.labels import label_queries
from tests.e2e_app import CHROMIUM, CHROMIUM_ARGS, REPO, add_account, running_app, settle, sign_in
from tests.labeling_project import ingested_sample_project

pytestmark = pytest.mark.e2e

ARTIFACTS = REPO / "test-artifacts"
CLASSES = ("airplane", "cat", "frog", "ship", "truck")
PER_CLASS = 6
LABELS = 20

if not CHROMIUM.exists() and os.environ.get("CI") != "true":  # CI installs it, so there it must be found
    pytest.skip("Debian's chromium is not installed (apt-get install -y chromium)", allow_module_level=True)
sync_playwright = pytest.importorskip("playwright.sync_api").sync_playwright


@pytest.fixture
def project_home(tmp_path: Path) -> Path:
    """A fresh BANANA_HOME whose project holds 30 ingested images, not yet embedded, and 5 classes,
    and the annotator account "ann"."""
    home = ingested_sample_project(tmp_path, classes=CLASSES, per_class=PER_CLASS).home
    add_account(home, "ann")
    return home


@pytest.fixture
def app_url(project_home: Path):
    with running_app(project_home) as url:
        yield url


def shown_path(page) -> str:
    return page.locator('[data-testid="stMain"] [data-testid="stText"]').first.inner_text()


def press_and_wait_for_new_image(page, key: str, before: str, labeled: int) -> str:
    """Press ``key``; wait for another image and for the pane's run to reach its end (the caption
    counting ``labeled`` answers), so that the next key meets this run's buttons."""
    page.keyboard.press(key)
    page.wait_for_function(
        'before => { const e = document.querySelector(\'[data-testid="stMain"] [data-testid="stText"]\');'
        " return e && e.innerText !== before; }",
        arg=before,
        timeout=60_000,
    )
    page.get_by_text(f"{labeled} labeled in this session").wait_for(timeout=60_000)
    settle(page)
    return shown_path(page)


def test_label_twenty_images_with_the_keyboard_and_undo_one(app_url, project_home):
    ARTIFACTS.mkdir(exist_ok=True)
    given: list[tuple[str, str]] = []  # (path, class) in the order labeled
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        sign_in(page, app_url, "ann")  # first start: the app embeds the images, showing progress, then asks
        page.get_by_role("button", name="Skip").wait_for(timeout=120_000)
        settle(page)
        path = shown_path(page)
        for _ in range(LABELS):
            truth = path.split("/")[0]
            accept = page.get_by_role("button", name=f"Accept {truth}")
            key = "Enter" if accept.count() and accept.is_enabled() else str(CLASSES.index(truth) + 1)
            given.append((path, truth))
            path = press_and_wait_for_new_image(page, key, path, len(given))
        last = given[-1][0]
        assert press_and_wait_for_new_image(page, "u", path, LABELS - 1) == last  # undo asks the image again
        page.screenshot(path=str(ARTIFACTS / "label-page.png"))
        page.get_by_test_id("stSidebarNav").get_by_text("Dashboard").click()  # a reload would sign out
        page.get_by_text("Labels per class").wait_for(timeout=60_000)
        settle(page)
        page.locator('[data-testid="stPlotlyChart"] .main-svg').nth(1).wait_for(timeout=60_000)  # charts drawn
        page.wait_for_timeout(500)
        page.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)
        browser.close()

    with open_database(Settings(home=project_home)) as db:
        project = get_project(db, "default")
        with db.reading() as session:
            names = {c.id: c.name for c in label_queries.label_classes(session, project.id)}
            paths = dict(item_queries.ok_item_paths(session, project.id))
            current = label_queries.current_labels(session, project.id)
    labeled = {paths[item]: [names[c] for c in label.class_ids] for item, label in current.items() if label.class_ids}
    assert labeled == {path: [truth] for path, truth in given[:-1]}
    assert current[next(i for i, p in paths.items() if p == last)].class_ids == ()  # undone, history kept
