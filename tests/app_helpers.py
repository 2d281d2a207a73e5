"""Running the app's pages headless with AppTest."""

from __future__ import annotations

from pathlib import Path

from streamlit.testing.v1 import AppTest

MAIN = str(Path(__file__).resolve().parents[1] / "app" / "main.py")


def open_page(page: str | None = None) -> AppTest:
    """Run the app on ``page`` (``pages/<name>.py``; the Label page when None).

    Start the project's engine first (the ``engine`` fixture does), or the page shows its start.
    """
    app = AppTest.from_file(MAIN, default_timeout=60)
    if page is not None:
        app.switch_page(page)
    app.run()
    assert not app.exception, app.exception
    return app


def shortcuts(app: AppTest) -> dict[str, str]:
    """Keyboard shortcut (as Streamlit stores it: lower case) -> button label, for every button that has one."""
    return {button.proto.shortcut: button.label for button in app.button if button.proto.shortcut}
