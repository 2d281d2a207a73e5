"""The Streamlit Files page (what each project holds), run headless with AppTest."""

import subprocess
import sys
from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from services.config import load_settings
from services.database import open_database
from services.ingest.ingest import ingest
from tests.app_helpers import signed_in_app
from tests.images import write_image

pytestmark = pytest.mark.slow

REPO_ROOT = Path(__file__).resolve().parents[1]


def files_page() -> AppTest:
    return signed_in_app(timeout=30).switch_page("pages/overview.py").run()


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("BANANA_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("BANANA_CONFIG", raising=False)
    monkeypatch.delenv("BANANA_DATABASE_URL", raising=False)
    st.cache_resource.clear()  # the app caches settings and database per process
    yield tmp_path / "home"
    st.cache_resource.clear()


def test_overview_shows_the_projects_counts(home, tmp_path):
    write_image(tmp_path / "images" / "a.png", 1)
    write_image(tmp_path / "images" / "b.png", 2)
    (tmp_path / "images" / "<img src=x onerror=alert(1)>.jpg").write_bytes(b"bad")
    settings = load_settings()
    with open_database(settings) as db:
        ingest(db, settings, source=tmp_path / "images", project="default")

    app = files_page()

    assert not app.exception
    assert {metric.label: metric.value for metric in app.metric} == {
        "Images": "2",
        "Rejected files": "1",
        "Duplicate files": "0",
    }
    assert app.selectbox[0].value == "default"


def test_overview_without_projects_says_how_to_add_images(home):
    app = files_page()

    assert not app.exception
    assert "app.cli ingest" in app.code[0].value
    assert not app.metric


def test_a_spawned_worker_that_re_imports_the_app_script_runs_no_page():
    # multiprocessing's spawn re-runs __main__'s file as __mp_main__ in each worker; while
    # Streamlit runs app/main.py as __main__, that is this script, with no session behind it.
    code = "import runpy; runpy.run_path('app/main.py', run_name='__mp_main__'); print('clean')"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO_ROOT, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().endswith("clean")
