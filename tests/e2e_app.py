"""Helpers for end-to-end tests in a real browser: start the app on a BANANA_HOME, sign in.

Needs Debian's chromium at /usr/bin/chromium and the playwright package; playwright's own
browser download is never used.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from services.accounts.accounts import create_account
from services.config import Settings
from services.database import open_database
from storage.models import Role

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PASSWORD = "correct horse battery"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def running_app(home: Path) -> Iterator[str]:
    """Start ``streamlit run app/main.py`` on ``home``; yield its URL; stop it at the end."""
    port = free_port()
    env = {key: value for key, value in os.environ.items() if not key.startswith("BANANA_")}
    env["BANANA_HOME"] = str(home)
    log_path = home / "streamlit.log"
    with open(log_path, "w") as log:
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "streamlit",
                "run",
                "app/main.py",
                "--server.port",
                str(port),
                "--server.headless",
                "true",
                "--browser.gatherUsageStats",
                "false",
                "--server.fileWatcherType",
                "none",
            ],
            cwd=REPO,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            url = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 90
            while True:
                try:
                    if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).read() == b"ok":
                        break
                except OSError:
                    pass
                assert server.poll() is None and time.monotonic() < deadline, log_path.read_text()
                time.sleep(0.3)
            yield url
        finally:
            server.terminate()
            try:
                server.wait(30)
            except subprocess.TimeoutExpired:  # a page's work still running in a thread
                server.kill()
                server.wait(30)


def add_account(home: Path, name: str, role: Role = Role.ANNOTATOR, password: str = PASSWORD) -> None:
    """Create an account in the database of ``home`` (as the command line would)."""
    with open_database(Settings(home=home)) as db:
        create_account(db, name=name, role=role, password=password, by=None)


def settle(page, timeout_ms: int = 60_000) -> None:
    """Wait until the app has finished its current run: no running indicator and no element left
    stale by a run still in progress (the indicator shows only after a delay, so a loaded machine
    can be mid-run without it, and a key pressed then may reach a button of the previous run)."""
    page.wait_for_function(
        '() => !document.querySelector(\'[data-testid="stStatusWidget"], [data-stale="true"]\')', timeout=timeout_ms
    )
    page.wait_for_timeout(150)


def sign_in(page, url: str, name: str, password: str = PASSWORD) -> None:
    """Open the app and sign in through its form; returns once the sidebar names the account."""
    page.goto(url)
    button = page.get_by_role("button", name="Sign in", exact=True)
    button.wait_for(timeout=60_000)
    form = page.locator('[data-testid="stForm"]').filter(has=button)
    form.get_by_label("Name", exact=True).fill(name)
    form.get_by_label("Password", exact=True).fill(password)
    button.click()
    page.get_by_role("button", name="Sign out").wait_for(timeout=60_000)
