"""Accounts: roles, Argon2id passwords, the first admin, OIDC mapping, sign-in in the app, the CLI."""

from __future__ import annotations

import io

import pytest
from alembic import command
from alembic.config import Config
from argon2 import PasswordHasher
from sqlalchemy import select, text
from streamlit.testing.v1 import AppTest

from app import cli
from app.auth import ACCOUNT_ID, SIGN_IN_TOKEN, oidc_providers
from app.safe_text import escape_markdown
from services.accounts import accounts
from services.accounts.accounts import (
    WRONG_CREDENTIALS,
    account_for_email,
    authenticate,
    change_role,
    create_account,
    create_first_admin,
    first_admin_needed,
    list_accounts,
    set_disabled,
    set_password,
)
from services.accounts.remembered_sign_ins import account_for_token, remember, session_account
from services.accounts.sign_in_throttle import SignInThrottle
from services.config import load_settings
from services.database import open_database
from services.errors import UserError
from storage import queries
from storage.db import create_engine_for_url
from storage.models import Annotation, Annotator, Role
from storage.schema import MIGRATIONS_DIR, upgrade_to_head
from tests.app_helpers import MAIN, PASSWORD, account_id, signed_in_app
from tests.labeling_project import class_id

OTHER_PASSWORD = "another long secret"


def stored_hash(db, name: str) -> str | None:
    with db.reading() as session:
        return session.scalar(select(Annotator.password_hash).where(Annotator.name == name))


# --- the service --------------------------------------------------------------------------


@pytest.mark.slow
def test_the_first_admin_is_created_once_and_signs_in_with_an_argon2id_hash(backend_db):
    assert first_admin_needed(backend_db)
    admin = create_first_admin(backend_db, name=" root ", password=PASSWORD)

    assert (admin.name, admin.role) == ("root", Role.ADMIN)
    assert not first_admin_needed(backend_db)
    assert stored_hash(backend_db, "root").startswith("$argon2id$") and PASSWORD not in stored_hash(backend_db, "root")
    assert authenticate(backend_db, name="root", password=PASSWORD).id == admin.id
    with pytest.raises(UserError, match="accounts exist already"):
        create_first_admin(backend_db, name="intruder", password=PASSWORD)


@pytest.mark.slow
def test_no_first_admin_is_offered_once_any_account_exists(backend_db):
    create_account(backend_db, name="ann", role="annotator", password=PASSWORD, by=None)
    set_disabled(backend_db, name="ann", disabled=True, by=None)
    assert not first_admin_needed(backend_db)
    with pytest.raises(UserError, match="create-user NAME --role admin"):
        create_first_admin(backend_db, name="intruder", password=PASSWORD)


@pytest.mark.slow
def test_unknown_names_and_wrong_passwords_fail_alike_and_cost_one_verification(backend_db, monkeypatch):
    create_first_admin(backend_db, name="root", password=PASSWORD)
    verified = []

    class CountingHasher:
        def verify(self, hash_, password):
            verified.append(hash_)
            return real.verify(hash_, password)

        def __getattr__(self, name):
            return getattr(real, name)

    real = accounts.HASHER
    monkeypatch.setattr(accounts, "HASHER", CountingHasher())

    messages = []
    for name, password in [("root", "wrong password"), ("nobody", PASSWORD), ("", "")]:
        with pytest.raises(UserError) as error:
            authenticate(backend_db, name=name, password=password)
        messages.append(str(error.value))

    assert messages == [WRONG_CREDENTIALS] * 3
    assert len(verified) == 3 and all(h.startswith("$argon2id$") for h in verified)


@pytest.mark.slow
def test_a_hash_made_with_older_parameters_is_replaced_at_sign_in(backend_db):
    create_first_admin(backend_db, name="root", password=PASSWORD)
    weak = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1).hash(PASSWORD)
    with backend_db.writing() as session:
        session.scalar(select(Annotator).where(Annotator.name == "root")).password_hash = weak

    authenticate(backend_db, name="root", password=PASSWORD)

    renewed = stored_hash(backend_db, "root")
    assert renewed != weak and not accounts.HASHER.check_needs_rehash(renewed)
    assert authenticate(backend_db, name="root", password=PASSWORD).name == "root"


@pytest.mark.slow
def test_names_recorded_before_accounts_sign_in_once_an_admin_sets_a_password(backend_db):
    with backend_db.writing() as session:
        legacy_id = queries.get_or_add_annotator(session, "old hand").id
    create_first_admin(backend_db, name="root", password=PASSWORD)
    legacy = next(a for a in list_accounts(backend_db) if a.name == "old hand")
    assert (legacy.role, legacy.has_password, legacy.disabled) == (Role.ANNOTATOR, False, False)
    with pytest.raises(UserError, match=WRONG_CREDENTIALS):
        authenticate(backend_db, name="old hand", password="")

    set_password(backend_db, name="old hand", password=OTHER_PASSWORD, by="root")

    assert authenticate(backend_db, name="old hand", password=OTHER_PASSWORD).id == legacy_id


@pytest.mark.slow
def test_creating_an_account_with_a_recorded_name_keeps_its_row_and_labels(backend_db):
    with backend_db.writing() as session:
        legacy_id = queries.get_or_add_annotator(session, "old hand").id

    account = create_account(backend_db, name="old hand", role="reviewer", password=OTHER_PASSWORD, by=None)

    assert (account.id, account.role) == (legacy_id, Role.REVIEWER)
    with pytest.raises(UserError, match="exists already"):
        create_account(backend_db, name="old hand", role="annotator", password=PASSWORD, by=None)


@pytest.mark.slow
def test_only_an_admin_manages_accounts(backend_db):
    create_first_admin(backend_db, name="root", password=PASSWORD)
    create_account(backend_db, name="rev", role=Role.REVIEWER, password=PASSWORD, by="root")
    create_account(backend_db, name="ann", role=Role.ANNOTATOR, password=PASSWORD, by="root")

    for actor in ("rev", "ann", "nobody"):
        with pytest.raises(UserError, match="only an admin manages accounts"):
            create_account(backend_db, name="new", role="admin", password=PASSWORD, by=actor)
        with pytest.raises(UserError, match="only an admin"):
            change_role(backend_db, name="ann", role="admin", by=actor)
        with pytest.raises(UserError, match="only an admin"):
            set_password(backend_db, name="root", password=OTHER_PASSWORD, by=actor)
    set_password(backend_db, name="ann", password=OTHER_PASSWORD, by="ann")  # one's own password
    assert authenticate(backend_db, name="ann", password=OTHER_PASSWORD).role is Role.ANNOTATOR
    assert authenticate(backend_db, name="root", password=PASSWORD).role is Role.ADMIN


@pytest.mark.slow
def test_roles_form_a_ladder(backend_db):
    create_first_admin(backend_db, name="root", password=PASSWORD)
    for name, role in [("rev", "reviewer"), ("ann", "annotator")]:
        create_account(backend_db, name=name, role=role, password=PASSWORD, by="root")
    can = {a.name: [a.can(r) for r in (Role.ANNOTATOR, Role.REVIEWER, Role.ADMIN)] for a in list_accounts(backend_db)}
    assert can == {"root": [True, True, True], "rev": [True, True, False], "ann": [True, False, False]}


@pytest.mark.slow
def test_the_last_enabled_admin_cannot_be_demoted_or_disabled(backend_db):
    create_first_admin(backend_db, name="root", password=PASSWORD)
    with pytest.raises(UserError, match="only enabled admin"):
        change_role(backend_db, name="root", role="annotator", by="root")
    with pytest.raises(UserError, match="only enabled admin"):
        set_disabled(backend_db, name="root", disabled=True, by="root")

    create_account(backend_db, name="second", role="admin", password=PASSWORD, by="root")
    set_disabled(backend_db, name="root", disabled=True, by="second")

    with pytest.raises(UserError, match="disabled"):
        authenticate(backend_db, name="root", password=PASSWORD)
    with pytest.raises(UserError, match="not an admin"):
        create_account(backend_db, name="x", role="annotator", password=PASSWORD, by="root")
    set_disabled(backend_db, name="root", disabled=False, by="second")
    assert authenticate(backend_db, name="root", password=PASSWORD).role is Role.ADMIN


@pytest.mark.parametrize(
    "arguments, message",
    [
        (dict(name="a", role="boss", password=PASSWORD), "unknown role 'boss'; use one of: admin, reviewer, annotator"),
        (dict(name="a", role="annotator", password="short"), "too short"),
        (dict(name="  ", role="annotator", password=PASSWORD), "name is empty"),
        (dict(name="a", role="annotator"), "a password, or the email"),
        (dict(name="a", role="annotator", email="not-an-address"), "not an email address"),
    ],
)
@pytest.mark.slow
def test_bad_account_input_is_a_clear_error(db, arguments, message):
    with pytest.raises(UserError, match=message):
        create_account(db, by=None, **arguments)
    assert list_accounts(db) == []


@pytest.mark.slow
def test_oidc_emails_map_to_accounts_an_admin_created(backend_db):
    create_first_admin(backend_db, name="root", password=PASSWORD)
    create_account(backend_db, name="sso", role="reviewer", email="Ada@Example.org", by="root")

    assert account_for_email(backend_db, " ada@example.ORG").name == "sso"
    with pytest.raises(UserError, match="no account has the email eve@example.org; ask an admin"):
        account_for_email(backend_db, "eve@example.org")
    with pytest.raises(UserError, match="reported no email"):
        account_for_email(backend_db, None)
    with pytest.raises(UserError, match="already belongs to account 'sso'"):
        create_account(backend_db, name="twin", role="annotator", email="ada@example.org", by="root")
    set_disabled(backend_db, name="sso", disabled=True, by="root")
    with pytest.raises(UserError, match="disabled"):
        account_for_email(backend_db, "ada@example.org")


def test_oidc_providers_are_read_from_streamlits_auth_secrets():
    base = {"redirect_uri": "http://localhost:8501/oauth2callback", "cookie_secret": "s"}
    assert oidc_providers({}) == []
    assert oidc_providers({"other": {"client_id": "x"}}) == []
    assert oidc_providers({"auth": dict(base, client_id="c", client_secret="s", server_metadata_url="u")}) == [None]
    assert oidc_providers({"auth": dict(base, google={"client_id": "g"}, okta={"client_id": "o"})}) == [
        "google",
        "okta",
    ]


def test_migration_keeps_existing_annotators_as_annotators_without_a_password(tmp_path):
    engine = create_engine_for_url(f"sqlite:///{tmp_path / 'old.db'}")
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "0002")
        connection.execute(text("INSERT INTO annotator (name, created_at) VALUES ('old hand', '2026-01-01 00:00:00')"))
    upgrade_to_head(engine)
    with engine.connect() as connection:
        row = connection.execute(text("SELECT role, password_hash, email, disabled_at FROM annotator")).one()
    engine.dispose()
    assert tuple(row) == ("annotator", None, None, None)


# --- the app ------------------------------------------------------------------------------


def fresh_app() -> AppTest:
    return AppTest.from_file(MAIN, default_timeout=60)


def same_session(app: AppTest) -> AppTest:
    """A new run of app/main.py in ``app``'s signed-in session.

    After signing in, a real browser's rerun goes through app/main.py's navigation; AppTest keeps
    running the sign-in page's file, so the test continues in a fresh AppTest.
    """
    again = AppTest.from_file(MAIN, default_timeout=60)
    again.session_state[ACCOUNT_ID] = app.session_state[ACCOUNT_ID]
    return again.run()


def title(app: AppTest) -> str:
    return app.title[0].value if app.title else ""


def asks_to_sign_in(app: AppTest) -> bool:
    """The sign-in page, or (AppTest reruns the last page's file directly) that page's refusal."""
    return title(app) == "Sign in to banana" or any("Sign in first" in w.value for w in app.warning)


@pytest.mark.slow
def test_a_visitor_sees_only_the_sign_in_and_can_create_the_first_admin(engine):
    app = fresh_app().run()
    assert title(app) == "Sign in to banana" and not app.sidebar.button
    with pytest.raises(ValueError):
        app.switch_page("pages/label.py")  # the navigation holds the sign-in page only

    app.text_input[[t.label for t in app.text_input].index("Admin name")].input("root")
    app.text_input[[t.label for t in app.text_input].index("Password")].input(PASSWORD)
    app.text_input[[t.label for t in app.text_input].index("Password again")].input(PASSWORD)
    app.button[[b.label for b in app.button].index("Create the admin account")].click().run()

    assert not app.exception and not app.error
    assert "**root** (admin)" in same_session(app).sidebar.caption[0].value
    with open_database(load_settings()) as db:
        assert authenticate(db, name="root", password=PASSWORD).role is Role.ADMIN


@pytest.mark.slow
def test_signing_in_records_labels_under_the_accounts_name_and_signing_out_ends_it(engine):
    with open_database(load_settings()) as db:
        create_account(db, name="zoe", role="annotator", password=PASSWORD, by=None)
    app = fresh_app().run()
    fields = {t.label: t for t in app.text_input if t.form_id == "sign-in"}
    fields["Name"].input("zoe")
    fields["Password"].input("not her password")
    app.button[[b.label for b in app.button].index("Sign in")].click().run()
    assert ACCOUNT_ID not in app.session_state and "wrong name or password" in app.error[0].value

    fields = {t.label: t for t in app.text_input if t.form_id == "sign-in"}
    fields["Name"].input("zoe")
    fields["Password"].input(PASSWORD)
    app.button[[b.label for b in app.button].index("Sign in")].click().run()
    app = same_session(app)
    assert not app.exception and "**zoe** (annotator)" in app.sidebar.caption[0].value
    path = app.text[0].value
    app.button(key=f"class-{class_id(engine, path.split('/')[0])}").click().run()
    with engine.db.reading() as session:
        names = (
            session.execute(select(Annotator.name).join(Annotation, Annotation.annotator_id == Annotator.id))
            .scalars()
            .all()
        )
    assert names == ["zoe"]

    app = same_session(app)  # the class key reran only the Label page's fragment, without the sidebar
    app.sidebar.button[[b.label for b in app.sidebar.button].index("Sign out")].click().run()
    assert asks_to_sign_in(app) and ACCOUNT_ID not in app.session_state and "account" not in app.session_state
    assert not [b for b in app.button if b.key and b.key.startswith("class-")]


@pytest.mark.slow
def test_an_annotator_is_not_offered_admin_pages_and_they_refuse_it(engine):
    app = signed_in_app(name="ann", role=Role.ANNOTATOR).run()  # the Label page, through app/main.py
    app.switch_page("pages/grid.py")  # a page of the annotator's navigation
    with pytest.raises(ValueError):
        app.switch_page("pages/users.py")
    with pytest.raises(ValueError):
        app.switch_page("pages/classes.py")

    # Streamlit runs app/pages/ files by URL without app/main.py until st.navigation has run once
    # in the process; AppTest's switch_page before a first run does the same.
    direct = signed_in_app(name="ann", role=Role.ANNOTATOR).switch_page("pages/users.py").run()
    assert "for accounts with the admin role" in direct.error[0].value and not direct.title
    visitor = fresh_app().switch_page("pages/users.py").run()
    assert "Sign in first" in visitor.warning[0].value and not visitor.dataframe


@pytest.mark.slow
def test_an_admin_is_offered_every_page(engine):
    app = signed_in_app(name="root", role=Role.ADMIN).run()
    for page in ("users", "classes", "transfer", "grid", "explore", "dashboard", "overview"):
        app.switch_page(f"pages/{page}.py")


@pytest.mark.slow
def test_a_disabled_account_is_signed_out_at_its_next_click(engine):
    app = signed_in_app(name="ann", role=Role.ANNOTATOR).run()
    with open_database(load_settings()) as db:
        create_account(db, name="root", role="admin", password=PASSWORD, by=None)
        set_disabled(db, name="ann", disabled=True, by="root")
    app.run()
    assert asks_to_sign_in(app) and ACCOUNT_ID not in app.session_state
    assert not [b for b in app.button if b.key and b.key.startswith("class-")]


@pytest.mark.slow
def test_the_users_page_adds_an_account_that_can_sign_in(engine):
    app = signed_in_app(name="root", role=Role.ADMIN).switch_page("pages/users.py").run()
    form = {t.label: t for t in app.text_input}
    form["Name"].input("newbie")
    form["Password"].input(OTHER_PASSWORD)
    app.selectbox[[s.label for s in app.selectbox].index("Role")].select("reviewer")
    app.button[[b.label for b in app.button].index("Add the account")].click().run()

    assert not app.exception and not app.error
    assert "newbie" in app.dataframe[0].value["name"].tolist()
    with open_database(load_settings()) as db:
        assert authenticate(db, name="newbie", password=OTHER_PASSWORD).role is Role.REVIEWER


@pytest.mark.slow
def test_an_oidc_identity_signs_in_as_the_account_with_its_email(engine):
    with open_database(load_settings()) as db:
        create_account(db, name="sso", role="reviewer", email="ada@example.org", by=None)
    app = fresh_app()
    app.user = {"is_logged_in": True, "email": "ada@example.org"}
    app.run()
    assert not app.exception and "**sso** (reviewer)" in app.sidebar.caption[0].value

    stranger = fresh_app()
    stranger.user = {"is_logged_in": True, "email": "eve@example.org"}
    stranger.run()
    assert (
        title(stranger) == "Sign in to banana"
        and escape_markdown("no account has the email eve@example.org") in stranger.error[0].value
    )


@pytest.mark.slow
@pytest.mark.parametrize("installed", [True, False])
def test_the_sign_in_page_offers_the_providers_of_the_auth_secrets(engine, monkeypatch, installed):
    monkeypatch.setattr("app.auth.oidc_library_installed", lambda: installed)
    app = fresh_app()
    app.secrets = {
        "auth": {
            "redirect_uri": "http://localhost:8501/oauth2callback",
            "cookie_secret": "x",
            "google": {"client_id": "g", "client_secret": "s", "server_metadata_url": "u"},
        }
    }
    app.run()
    assert ("Sign in with google" in [b.label for b in app.button]) is installed
    assert any("pip install Authlib" in e.value for e in app.error) is not installed
    assert "Sign in with google" not in [b.label for b in fresh_app().run().button]


# --- the command line ---------------------------------------------------------------------


@pytest.mark.slow
def test_create_user_and_set_password_from_the_command_line(home, monkeypatch, capsys):
    monkeypatch.setattr("sys.stdin", io.StringIO(PASSWORD + "\n"))
    assert cli.main(["create-user", "root", "--role", "admin", "--password-stdin"]) == 0
    monkeypatch.setattr("sys.stdin", io.StringIO(PASSWORD + "\n"))
    assert cli.main(["create-user", "root", "--password-stdin"]) == 1
    assert "exists already" in capsys.readouterr().err
    monkeypatch.setattr("getpass.getpass", lambda prompt="": OTHER_PASSWORD)
    assert cli.main(["set-password", "root"]) == 0
    assert cli.main(["create-user", "sso", "--email", "sso@example.org", "--no-password"]) == 0

    with open_database(load_settings()) as db:
        assert authenticate(db, name="root", password=OTHER_PASSWORD).role is Role.ADMIN
        assert account_for_email(db, "sso@example.org").role is Role.ANNOTATOR
        assert not first_admin_needed(db)
    with pytest.raises(SystemExit) as usage:
        cli.main(["create-user", "x", "--role", "boss"])
    assert usage.value.code == 2


def own_password_script() -> None:
    from app.auth import current_account
    from app.own_password import own_password_form

    own_password_form(current_account())


@pytest.mark.slow
def test_an_account_changes_its_own_password(engine):
    # The form alone: AppTest reruns a page's file without app/main.py's sidebar (see asks_to_sign_in).
    app = AppTest.from_function(own_password_script, default_timeout=30)
    app.session_state[ACCOUNT_ID] = account_id("ann", Role.ANNOTATOR)
    with open_database(load_settings()) as db:
        old_sign_in = app.session_state[SIGN_IN_TOKEN] = remember(db, app.session_state[ACCOUNT_ID])
        other_browser = remember(db, app.session_state[ACCOUNT_ID])
    app.run()
    assert [t.label for t in signed_in_app(name="ann").run().sidebar.text_input] == [t.label for t in app.text_input]
    fields = {t.label: t for t in app.text_input}
    fields["Current password"].input("not the password")
    fields["New password"].input(OTHER_PASSWORD)
    fields["New password again"].input(OTHER_PASSWORD)
    app.button[[b.label for b in app.button].index("Change the password")].click().run()
    assert WRONG_CREDENTIALS in app.error[0].value

    fields = {t.label: t for t in app.text_input}
    fields["Current password"].input(PASSWORD)
    fields["New password"].input(OTHER_PASSWORD)
    fields["New password again"].input(OTHER_PASSWORD)
    app.button[[b.label for b in app.button].index("Change the password")].click().run()
    assert not app.exception and app.success
    with open_database(load_settings()) as db:
        assert authenticate(db, name="ann", password=OTHER_PASSWORD).name == "ann"
        # This session stays signed in with a new token; other browsers are signed out.
        assert session_account(db, app.session_state[ACCOUNT_ID], app.session_state[SIGN_IN_TOKEN]).name == "ann"
        assert account_for_token(db, old_sign_in) is None and account_for_token(db, other_browser) is None
        with pytest.raises(UserError, match=WRONG_CREDENTIALS):
            authenticate(db, name="ann", password=PASSWORD)


@pytest.mark.slow
def test_a_name_with_too_many_failed_sign_ins_waits_known_or_not(db):
    now = [0.0]
    throttle = SignInThrottle(limit=3, window_s=60, clock=lambda: now[0])
    create_account(db, name="ann", role="annotator", password=PASSWORD, by=None)
    for name in ("ann", "nobody"):
        for _ in range(3):
            with pytest.raises(UserError, match=WRONG_CREDENTIALS):
                authenticate(db, name=name, password="guess", throttle=throttle)
        with pytest.raises(UserError, match="too many failed sign-ins"):
            authenticate(db, name=f" {name.upper()} ", password=PASSWORD, throttle=throttle)
    now[0] = 61.0
    assert authenticate(db, name="ann", password=PASSWORD, throttle=throttle).name == "ann"
    with pytest.raises(UserError, match=WRONG_CREDENTIALS):  # a success clears the count
        authenticate(db, name="ann", password="guess", throttle=throttle)
    assert authenticate(db, name="ann", password=PASSWORD, throttle=throttle).name == "ann"
