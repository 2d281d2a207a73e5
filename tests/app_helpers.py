"""Running the app's pages headless with AppTest, signed in as an account."""

from __future__ import annotations

from pathlib import Path

from streamlit.testing.v1 import AppTest

from app.auth import ACCOUNT_ID
from services.accounts.accounts import create_account, list_accounts
from services.config import load_settings
from services.database import open_database
from storage.models import Role

MAIN = str(Path(__file__).resolve().parents[1] / "app" / "main.py")
PASSWORD = "correct horse battery"


def account_id(name: str, role: Role) -> int:
    """The id of account ``name`` in the app's database (BANANA_HOME), created with ``role`` and
    :data:`PASSWORD` if new."""
    with open_database(load_settings()) as db:
        known = {account.name: account for account in list_accounts(db)}
        if name in known and known[name].has_password:
            return known[name].id
        return create_account(db, name=name, role=role, password=PASSWORD, by=None).id


def signed_in_app(*, name: str = "ann", role: Role = Role.ADMIN, timeout: float = 60) -> AppTest:
    """An AppTest of the app whose browser session is signed in as ``name`` (not run yet)."""
    app = AppTest.from_file(MAIN, default_timeout=timeout)
    app.session_state[ACCOUNT_ID] = account_id(name, role)
    return app


def open_page(page: str | None = None, *, name: str = "ann", role: Role = Role.ADMIN) -> AppTest:
    """Run the app on ``page`` (``pages/<name>.py``; the Label page when None), signed in as ``name``.

    Start the project's engine first (the ``engine`` fixture does), or the page shows its start.
    """
    app = signed_in_app(name=name, role=role)
    if page is not None:
        app.switch_page(page)
    app.run()
    assert not app.exception, app.exception
    return app


def shortcuts(app: AppTest) -> dict[str, str]:
    """Keyboard shortcut (as Streamlit stores it: lower case) -> button label, for every button that has one."""
    return {button.proto.shortcut: button.label for button in app.button if button.proto.shortcut}
