"""End to end in a real browser: a password sign-in survives a reload and a new tab, and
signing out ends it for good (the remembered token is revoked, the cookie expired).

Needs Debian's chromium at /usr/bin/chromium and the playwright package.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from app.auth import SIGN_IN_COOKIE
from services.accounts.remembered_sign_ins import account_for_token
from services.config import Settings
from services.database import open_database
from tests.e2e_app import CHROMIUM, CHROMIUM_ARGS, add_account, running_app, settle, sign_in
from tests.labeling_project import ingested_sample_project

pytestmark = pytest.mark.e2e

if not CHROMIUM.exists() and os.environ.get("CI") != "true":  # CI installs it, so there it must be found
    pytest.skip("Debian's chromium is not installed (apt-get install -y chromium)", allow_module_level=True)
sync_playwright = pytest.importorskip("playwright.sync_api").sync_playwright


@pytest.fixture
def project_home(tmp_path: Path) -> Path:
    home = ingested_sample_project(tmp_path, classes=("cat", "frog"), per_class=2).home
    add_account(home, "ann")
    return home


def sign_in_cookie(context) -> str | None:
    return next((cookie["value"] for cookie in context.cookies() if cookie["name"] == SIGN_IN_COOKIE), None)


def test_a_sign_in_survives_a_reload_and_a_new_tab_until_sign_out(project_home):
    with running_app(project_home) as url, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        page = context.new_page()
        sign_in(page, url, "ann")
        page.wait_for_function(f"() => document.cookie.includes('{SIGN_IN_COOKIE}=')", timeout=60_000)
        token = sign_in_cookie(context)
        with open_database(Settings(home=project_home)) as db:
            assert account_for_token(db, token).name == "ann"

        page.reload()
        page.get_by_role("button", name="Sign out").wait_for(timeout=60_000)  # still signed in
        other_tab = context.new_page()
        other_tab.goto(url)
        other_tab.get_by_role("button", name="Sign out").wait_for(timeout=60_000)
        other_tab.close()

        settle(page)
        page.get_by_role("button", name="Sign out").click()
        page.get_by_role("button", name="Sign in", exact=True).wait_for(timeout=60_000)
        with open_database(Settings(home=project_home)) as db:
            assert account_for_token(db, token) is None  # revoked: a copied cookie signs nobody in
        page.reload()
        page.get_by_role("button", name="Sign in", exact=True).wait_for(timeout=60_000)
        page.wait_for_function(f"() => !document.cookie.includes('{SIGN_IN_COOKIE}=')", timeout=60_000)
        assert page.get_by_role("button", name="Sign out").count() == 0
        browser.close()
