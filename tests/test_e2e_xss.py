"""End to end in a real browser: a class name, file and folder names and an account name that
carry ``<img src=x onerror=alert(1)>`` never run as HTML on any page; they show as literal text.

Also: the first request a fresh server gets for a page's URL, before anyone signed in, shows no
page content (Streamlit runs ``app/pages/`` files by URL until ``st.navigation`` first runs).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from services.config import Settings
from services.database import open_database
from services.ingest.ingest import ingest
from services.labeling.classes import add_label_class
from services.projects import get_project
from services.teams.disagreement import open_if_disagreement
from storage.items import item_queries
from storage.models import Role
from storage.types import utc_now
from tests.e2e_app import CHROMIUM, CHROMIUM_ARGS, add_account, running_app, settle, sign_in
from tests.labeling_project import SAMPLE_IMAGES
from tests.labels_by_name import NewLabel, record_annotations

pytestmark = pytest.mark.e2e

XSS = "<img src=x onerror=alert(1)>"
# Every page of an admin's navigation: (sidebar title, whether it shows one of the names as text).
PAGES = [
    ("Label", True),
    ("Dashboard", True),
    ("Grid", True),
    ("Explore", True),
    ("Classes and settings", True),
    ("Export / import", True),
    ("Files", True),
    ("Users", True),
    ("Review", True),
    ("Label issues", True),
    ("Triage", False),
    ("Failure slices", False),
]

if not CHROMIUM.exists() and os.environ.get("CI") != "true":
    pytest.skip("Debian's chromium is not installed (apt-get install -y chromium)", allow_module_level=True)
playwright_api = pytest.importorskip("playwright.sync_api")
sync_playwright, PlaywrightTimeout = playwright_api.sync_playwright, playwright_api.TimeoutError


@pytest.fixture
def hostile_home(tmp_path: Path) -> Path:
    """A project whose class, folder, file and account names carry the payload; every image but
    ``cat/<payload>.png`` is labeled, and one image has disagreeing labels (a review task)."""
    images = tmp_path / "images"
    sources = {name: sorted((SAMPLE_IMAGES / name).iterdir()) for name in ("cat", "frog", "airplane")}
    for name, folder in (("cat", "cat"), ("frog", "frog"), ("airplane", XSS)):
        (images / folder).mkdir(parents=True)
        for source in sources[name][:4]:
            shutil.copy(source, images / folder / source.name)
    shutil.copy(sources["cat"][4], images / "cat" / f"{XSS}.png")
    (images / f"{XSS}.jpg").write_bytes(b"not an image")  # rejected: listed on the Files page
    settings = Settings(home=tmp_path / "home")
    add_account(settings.home, XSS, Role.ADMIN)
    add_account(settings.home, "second", Role.ANNOTATOR)
    with open_database(settings) as db:
        ingest(db, settings, source=images, project="default")
        project = get_project(db, "default")
        for name in (XSS, "cat", "frog"):  # the payload first: the Grid and the keys show it first
            add_label_class(db, project=project, name=name)
        with db.reading() as session:
            paths = dict(item_queries.ok_item_paths(session, project.id))
        truth = {item: {XSS: XSS}.get(path.split("/")[0], path.split("/")[0]) for item, path in paths.items()}
        unlabeled = next(item for item, path in paths.items() if path == f"cat/{XSS}.png")
        record_annotations(
            db, [NewLabel(item, [name]) for item, name in truth.items() if item != unlabeled], annotator=XSS
        )
        disputed = next(item for item, path in paths.items() if path.startswith(f"{XSS}/"))
        record_annotations(db, [NewLabel(disputed, ["cat"])], annotator="second")
        with db.writing() as session:
            open_if_disagreement(session, project_id=project.id, item_id=disputed, now=utc_now())
    return settings.home


def no_payload_ran(page, dialogs: list[str], where: str) -> None:
    assert dialogs == [], f"{where}: a dialog opened: {dialogs}"
    assert page.locator("img[onerror]").count() == 0, f"{where}: the payload became an element"


def shows_literally(page) -> bool:
    """The payload as text anywhere in the page (hidden text and SVG chart text included)."""
    return page.evaluate("t => document.body.textContent.includes(t)", XSS)


def test_hostile_names_show_as_text_on_every_page(hostile_home):
    dialogs: list[str] = []
    with running_app(hostile_home) as url, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))

        page.goto(f"{url}/users")  # the server's first request, before st.navigation ever ran
        page.get_by_text("Sign in first").wait_for(timeout=60_000)
        settle(page)
        assert (
            page.get_by_text("Add an account").count() == 0 and page.get_by_role("heading", name="Users").count() == 0
        )

        sign_in(page, url, XSS)
        page.get_by_role("button", name="Skip").wait_for(timeout=120_000)  # first start embeds the images
        nav = page.get_by_test_id("stSidebarNav")
        assert nav.get_by_test_id("stSidebarNavLink").count() == len(PAGES), "a page is missing from PAGES"
        visited = []
        for title, shows_a_name in PAGES:
            nav.get_by_text(title, exact=True).click()
            page.wait_for_timeout(1500)  # charts draw, fragments finish
            try:
                settle(page, timeout_ms=20_000)
            except PlaywrightTimeout:  # a page still computing shows what it has; check that
                pass
            no_payload_ran(page, dialogs, title)
            if shows_a_name:
                assert shows_literally(page), f"{title}: the name is not shown as text"
            visited.append(title)
        browser.close()
    assert visited == [title for title, _ in PAGES]
