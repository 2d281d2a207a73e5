"""A project that does not exist is never filled with the sample images unasked (that would also
pin its root to sample_data/): `make run` adds them only to a new project and only when asked
(SAMPLE=1, the default unless BANANA_PROJECT names a project); the app says what to do."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from dataclasses import replace
from pathlib import Path

import pytest

from app import cli
from services.config import load_settings
from services.database import open_database
from services.engine.lifecycle import close_engines, start_engine
from services.projects import get_project, list_projects
from tests.images import write_image

REPO = Path(__file__).resolve().parents[1]


def test_the_app_leaves_a_project_that_does_not_exist_alone_and_says_what_to_do(db, settings):
    startup = start_engine(db, replace(settings, project="new"))
    deadline = time.monotonic() + 600  # the old behaviour ingested and embedded 1,500 images here
    try:
        while startup.phase not in ("ready", "failed") and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        close_engines()
    assert startup.phase == "failed"
    assert "python -m app.cli ingest FOLDER --project new" in startup.error
    assert "BANANA_PROJECT=new make run SAMPLE=1" in startup.error
    assert list_projects(db) == []


def test_ingest_if_new_fills_only_a_project_that_does_not_exist(home, tmp_path, capsys):
    first, second = tmp_path / "first", tmp_path / "second"
    for seed in range(3):
        write_image(first / f"a{seed}.png", seed)
        write_image(second / f"b{seed}.png", 10 + seed)
    assert cli.main(["ingest", str(first), "--project", "new", "--if-new"]) == 0
    assert cli.main(["ingest", str(second), "--project", "new", "--if-new"]) == 0

    assert f"project 'new' (root {first.resolve()}) exists; left as it is" in capsys.readouterr().out
    with open_database(load_settings()) as db:
        project = get_project(db, "new")
        assert Path(project.root_path) == first.resolve()
        assert [p.name for p in list_projects(db)] == ["new"]
    assert cli.main(["ingest", str(second), "--project", "other", "--if-new"]) == 0  # new: filled


def make_run_ingests(**variables: str) -> list[str]:
    """The ingest commands `make run` would run with these variables (a dry run: nothing runs)."""
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    environment = {key: value for key, value in os.environ.items() if key not in ("BANANA_PROJECT", "SAMPLE")}
    arguments = [f"{key}={value}" for key, value in variables.items() if key != "BANANA_PROJECT"]
    if "BANANA_PROJECT" in variables:
        environment["BANANA_PROJECT"] = variables["BANANA_PROJECT"]
    dry_run = subprocess.run(
        ["make", "-n", "run", *arguments], cwd=REPO, env=environment, capture_output=True, text=True, check=True
    )
    return [line.split("-m ", 1)[1] for line in dry_run.stdout.splitlines() if "app.cli ingest" in line]


def test_make_run_asks_for_the_sample_images_only_for_the_default_project_or_when_told():
    assert make_run_ingests() == ["app.cli ingest sample_data/images --if-new"]  # a new checkout opens on them
    assert make_run_ingests(BANANA_PROJECT="mine") == []
    assert make_run_ingests(BANANA_PROJECT="mine", SAMPLE="1") == ["app.cli ingest sample_data/images --if-new"]
    assert make_run_ingests(SAMPLE="0") == []
