"""End to end in a real browser: the Label page's keyboard layer (app/keyboard.py).

- N, a name typed at once (with the letters of the S, U, K and N shortcuts) and Enter add the class
  and label the shown image with it: nothing is skipped or undone, and the class is added once.
- With 12 classes, C opens the picker: the 11th and 12th classes label images by keyboard only.
- ? shows the key map; Esc closes it and the keys work again.
- The app asks no host but the server (127.0.0.1) for anything, in any of these sessions.

One app start for the module (it embeds the 30 images on first start). Screenshots go to
test-artifacts/.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from services.config import Settings
from services.database import open_database
from services.labeling.classes import add_label_class
from services.projects import get_project
from storage.items import item_queries
from storage.labels import label_queries
from tests.e2e_app import CHROMIUM, CHROMIUM_ARGS, REPO, add_account, running_app, settle, sign_in
from tests.labeling_project import ingested_sample_project

pytestmark = pytest.mark.e2e

ARTIFACTS = REPO / "test-artifacts"
CLASSES = ("airplane", "cat", "frog", "ship", "truck", "bird", "deer", "dog", "horse", "automobile")  # keys 1-0
NEW_CLASS = "skunk ship"  # s skips, u undoes, k and n are shortcuts elsewhere: all must go into the box
TWELFTH = "zebra"
FIRST_PAGE_MS = 180_000
LOCAL_HOSTS = {"127.0.0.1", "localhost"}

if not CHROMIUM.exists() and os.environ.get("CI") != "true":  # CI installs it, so there it must be found
    pytest.skip("Debian's chromium is not installed (apt-get install -y chromium)", allow_module_level=True)
sync_playwright = pytest.importorskip("playwright.sync_api").sync_playwright


@pytest.fixture(scope="module")
def project_home(tmp_path_factory) -> Path:
    """30 images of 5 of the classes, 10 classes (keys 1-9 and 0), the annotator "ann"."""
    home = ingested_sample_project(tmp_path_factory.mktemp("keyboard"), classes=CLASSES[:5], per_class=6).home
    with open_database(Settings(home=home)) as db:
        project = get_project(db, "default")
        for name in CLASSES[5:]:
            add_label_class(db, project=project, name=name)
    add_account(home, "ann")
    return home


@pytest.fixture(scope="module")
def app_url(project_home: Path) -> Iterator[str]:
    with running_app(project_home) as url:
        yield url


@pytest.fixture
def page(app_url) -> Iterator:
    """A signed-in browser page on the Label page; every host it asks is checked at the end."""
    hosts: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.on("request", lambda request: hosts.append(network_host(request.url)))
        page.hosts = hosts
        sign_in(page, app_url, "ann")
        page.get_by_role("button", name="Skip").wait_for(timeout=FIRST_PAGE_MS)
        settle(page)
        # The keyboard layer's element mounts after the buttons; keys before it would be lost.
        page.wait_for_function("() => window.__bananaKeys && window.__bananaKeys.label", timeout=FIRST_PAGE_MS)
        yield page
        browser.close()


def network_host(url: str) -> str:
    """The host a request goes to; the page's own ``blob:`` and ``data:`` URLs go nowhere."""
    parts = urlsplit(url)
    if parts.scheme in ("blob", "data"):
        return "127.0.0.1"
    return parts.hostname or url


def shown_path(page) -> str:
    return page.locator('[data-testid="stMain"] [data-testid="stText"]').first.inner_text()


def wait_for_answers(page, before: str, labeled: int) -> str:
    """Wait for another image than ``before`` and the caption counting ``labeled`` answers."""
    page.wait_for_function(
        'before => { const e = document.querySelector(\'[data-testid="stMain"] [data-testid="stText"]\');'
        " return e && e.innerText !== before; }",
        arg=before,
        timeout=60_000,
    )
    page.get_by_text(f"{labeled} labeled in this session").wait_for(timeout=60_000)
    settle(page)
    return shown_path(page)


def labels(home: Path) -> tuple[dict[str, list[str]], list[str]]:
    """path -> current class names of every labeled image; the project's class names in order."""
    with open_database(Settings(home=home)) as db:
        project = get_project(db, "default")
        with db.reading() as session:
            classes = label_queries.label_classes(session, project.id)
            paths = dict(item_queries.ok_item_paths(session, project.id))
            current = label_queries.current_labels(session, project.id)
    names = {c.id: c.name for c in classes}
    labeled = {paths[i]: [names[c] for c in label.class_ids] for i, label in current.items() if label.class_ids}
    return labeled, [c.name for c in classes]


def test_n_then_a_typed_name_and_enter_add_the_class_and_label_the_image(page, project_home):
    before, _ = labels(project_home)
    path = shown_path(page)
    page.keyboard.press("n")  # at once: no wait for the box, no click into it
    page.keyboard.type(NEW_CLASS)
    page.keyboard.press("Enter")
    path_after = wait_for_answers(page, path, 1)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "keyboard-new-class.png"))
    assert path_after != path
    after, classes = labels(project_home)
    assert classes.count(NEW_CLASS) == 1 and len(classes) == len(CLASSES) + 1
    assert after == {**before, path: [NEW_CLASS]}  # that image, that class; nothing undone
    assert page.get_by_text("1 labeled in this session").count() == 1  # nothing skipped or undone since
    assert set(page.hosts) <= LOCAL_HOSTS, set(page.hosts)


def pick_with_keys(page, typed: str, arrows: list[str]) -> None:
    """C, ``typed`` into the filter, the ``arrows``, Enter."""
    page.keyboard.press("c")
    page.keyboard.type(typed)
    for arrow in arrows:
        page.keyboard.press(arrow)
    page.keyboard.press("Enter")


def test_the_eleventh_and_twelfth_classes_are_chosen_from_the_picker_by_keyboard(page, project_home):
    _, classes = labels(project_home)
    if len(classes) < 12:  # the test above adds the 11th; this one runs on its own too
        with open_database(Settings(home=project_home)) as db:
            for name in (NEW_CLASS, TWELFTH)[len(classes) - 10 :]:
                add_label_class(db, project=get_project(db, "default"), name=name)
        for _ in range(30):  # the app reads the classes again at most every few seconds
            page.reload()  # the sign-in cookie keeps the session signed in
            page.get_by_role("button", name="Skip").wait_for(timeout=FIRST_PAGE_MS)
            settle(page)
            if page.get_by_text("2 more classes").count():
                break
            page.wait_for_timeout(2000)
        _, classes = labels(project_home)
    eleventh, twelfth = classes[10], classes[11]
    start, _ = labels(project_home)
    counted = int(page.get_by_text(" labeled in this session").inner_text().split()[0])

    first = shown_path(page)
    pick_with_keys(page, eleventh[:3], [])  # the filter leaves the one class
    second = wait_for_answers(page, first, counted + 1)
    page.keyboard.press("c")
    page.get_by_role("listbox", name="Classes").wait_for()
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "keyboard-picker.png"))
    page.keyboard.press("Escape")
    # Every class holds an "a": down to the twelfth with the arrows (and back up once, and down).
    with_a = [name for name in classes if "a" in name.lower()]
    steps = with_a.index(twelfth)
    pick_with_keys(page, "a", ["ArrowDown"] * (steps + 1) + ["ArrowUp"])
    wait_for_answers(page, second, counted + 2)

    after, _ = labels(project_home)
    assert after == {**start, first: [eleventh], second: [twelfth]}
    assert set(page.hosts) <= LOCAL_HOSTS, set(page.hosts)


def test_question_mark_shows_the_key_map_and_escape_gives_the_keys_back(page, project_home):
    page.keyboard.press("?")
    key_map = page.get_by_role("dialog", name="Keys")
    key_map.wait_for()
    assert key_map.get_by_text("Undo your last label").is_visible()
    assert key_map.get_by_text("Choose any class from a list", exact=False).is_visible()
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "keyboard-key-map.png"))
    path = shown_path(page)
    page.keyboard.press("1")  # swallowed while the key map shows
    page.keyboard.press("Escape")
    key_map.wait_for(state="hidden")
    counted = int(page.get_by_text(" labeled in this session").inner_text().split()[0])
    assert shown_path(page) == path
    page.keyboard.press("1")
    wait_for_answers(page, path, counted + 1)
    assert set(page.hosts) <= LOCAL_HOSTS, set(page.hosts)


def test_a_labeling_session_asks_no_other_host(page, project_home):
    """Keys, the picker, the key map, another page and back: every request goes to the server."""
    path = shown_path(page)
    counted = int(page.get_by_text(" labeled in this session").inner_text().split()[0])
    page.keyboard.press("2")
    path = wait_for_answers(page, path, counted + 1)
    page.keyboard.press("s")
    path = wait_for_answers(page, path, counted + 1)
    page.keyboard.press("u")
    wait_for_answers(page, path, counted)
    page.keyboard.press("?")
    page.keyboard.press("Escape")
    page.get_by_test_id("stSidebarNav").get_by_text("Dashboard").click()
    page.get_by_text("Labels per class").wait_for(timeout=60_000)
    settle(page)
    page.get_by_test_id("stSidebarNav").get_by_text("Label", exact=True).click()
    page.get_by_role("button", name="Skip").wait_for(timeout=60_000)
    settle(page)
    page.wait_for_timeout(1000)
    assert len(page.hosts) > 10
    assert set(page.hosts) <= LOCAL_HOSTS, sorted(set(page.hosts))
