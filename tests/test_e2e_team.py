"""End to end in a real browser: two annotators, signed in from two browser sessions, label the
same project side by side with the keyboard (alternating keypresses); the database shows no
image labeled by both (overlap share 0) and every label each of them gave.

Needs Debian's chromium at /usr/bin/chromium and the playwright package.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from sqlalchemy import select

from services.config import Settings
from services.database import open_database
from services.projects import get_project
from services.teams.leases import TeamSettings, save_team_settings
from storage.items import item_queries
from storage.models import Annotation, AnnotationSource, Annotator
from tests.e2e_app import CHROMIUM, CHROMIUM_ARGS, add_account, running_app, settle, sign_in
from tests.labeling_project import ingested_sample_project

pytestmark = pytest.mark.e2e

CLASSES = ("airplane", "cat", "frog", "ship", "truck")
PER_CLASS = 6
LABELS_EACH = 6
ANNOTATORS = ("ann", "bob")

if not CHROMIUM.exists() and os.environ.get("CI") != "true":  # CI installs it, so there it must be found
    pytest.skip("Debian's chromium is not installed (apt-get install -y chromium)", allow_module_level=True)
sync_playwright = pytest.importorskip("playwright.sync_api").sync_playwright


@pytest.fixture
def project_home(tmp_path: Path) -> Path:
    """30 ingested images of 5 classes, overlap asks off, and two annotator accounts."""
    home = ingested_sample_project(tmp_path, classes=CLASSES, per_class=PER_CLASS).home
    settings = Settings(home=home)
    with open_database(settings) as db:
        save_team_settings(db, get_project(db, "default").id, TeamSettings(overlap_share=0.0))
    for name in ANNOTATORS:
        add_account(home, name)
    return home


def shown_path(page) -> str:
    return page.locator('[data-testid="stMain"] [data-testid="stText"]').first.inner_text()


def label_shown_image(page) -> str:
    """Press the number key of the shown image's true class; return the path once the next image shows."""
    path = shown_path(page)
    page.keyboard.press(str(CLASSES.index(path.split("/")[0]) + 1))
    page.wait_for_function(
        'before => { const e = document.querySelector(\'[data-testid="stMain"] [data-testid="stText"]\');'
        " return e && e.innerText !== before; }",
        arg=path,
        timeout=60_000,
    )
    settle(page)
    return path


def test_two_annotators_label_side_by_side_without_sharing_an_image(project_home):
    given: dict[str, list[str]] = {name: [] for name in ANNOTATORS}
    with running_app(project_home) as url, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        pages = {}
        for name in ANNOTATORS:  # separate contexts: separate cookies, so separate app sessions
            page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
            sign_in(page, url, name)
            page.get_by_role("button", name="Skip").wait_for(timeout=120_000)  # the first start embeds
            settle(page)
            pages[name] = page
        assert shown_path(pages["ann"]) != shown_path(pages["bob"])
        for _ in range(LABELS_EACH):
            for name in ANNOTATORS:
                given[name].append(label_shown_image(pages[name]))
        browser.close()

    with open_database(Settings(home=project_home)) as db:
        project = get_project(db, "default")
        with db.reading() as session:
            paths = dict(item_queries.ok_item_paths(session, project.id))
            rows = session.execute(
                select(Annotation.item_id, Annotator.name)
                .join(Annotator)
                .where(Annotation.source == AnnotationSource.HUMAN)
            ).all()
    labeled = {name: sorted(paths[item] for item, who in rows if who == name) for name in ANNOTATORS}
    assert labeled == {name: sorted(given[name]) for name in ANNOTATORS}
    assert all(len(labeled[name]) == LABELS_EACH for name in ANNOTATORS)
    assert not set(labeled["ann"]) & set(labeled["bob"])
