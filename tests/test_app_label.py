"""The Label page, run headless: keyboard buttons, undo, new class, suggestions, multi-label toggles."""

import pytest

from app.auth import ACCOUNT_ID, SIGN_IN_TOKEN
from app.label_why import NEIGHBOURS_HIDDEN, SOURCE_TEXT
from services.accounts.accounts import set_disabled, set_password
from services.accounts.remembered_sign_ins import remember
from services.labeling.classes import add_class
from services.labeling.session import LabelingSession
from services.teams.leases import OVERLAP_SOURCE, TeamSettings, save_team_settings
from storage import queries
from storage.models import Role
from tests.app_helpers import open_page, shortcuts, signed_in_app
from tests.labeling_project import CLASSES, class_id, multi_label_engine, true_class

pytestmark = pytest.mark.slow


def shown_path(app) -> str:
    return app.text[0].value


def test_each_class_has_a_number_key_and_the_actions_have_theirs(engine):
    app = open_page()
    keys = shortcuts(app)
    assert [keys[str(n)] for n in range(1, len(CLASSES) + 1)] == list(CLASSES)
    assert (keys["s"], keys["u"]) == ("Skip", "Undo")  # one Undo: Backspace and N are app/keyboard.py's
    assert [b.label for b in app.button].count("Undo") == 1
    assert keys["enter"].startswith("Accept")
    assert app.expander[0].label == "Why this image?"


def test_a_class_key_labels_the_shown_image_at_once_and_undo_brings_it_back(engine):
    app = open_page()
    path = shown_path(app)
    item = engine.pool.item_ids[engine.pool.paths.index(path)]
    app.button(key=f"class-{class_id(engine, true_class(path))}").click().run()

    assert engine.current_label(item).class_ids == (class_id(engine, true_class(path)),)
    assert shown_path(app) != path
    app.button(key="undo").click().run()
    assert engine.current_label(item).class_ids == ()
    assert shown_path(app) == path


def test_new_class_names_are_shown_literally(engine):
    add_class(engine, "*bold* [link](http://x) :red[y]")  # N and a typed name: tests/test_e2e_keyboard.py
    app = open_page()

    assert not app.exception
    new = class_id(engine, "*bold* [link](http://x) :red[y]")
    assert app.button(key=f"class-{new}").label == r"\*bold\* \[link\]\(http\:\/\/x\) \:red\[y\]"


def test_enter_accepts_the_models_top_suggestion(engine):
    app = open_page()
    for _ in range(8):
        path = shown_path(app)
        app.button(key=f"class-{class_id(engine, true_class(path))}").click().run()
    engine.retrain_now()
    assert engine.loop.wait_idle(60)
    app.run()
    path = shown_path(app)
    item = engine.pool.item_ids[engine.pool.paths.index(path)]
    top = engine.suggestions(item)[0][0]
    accept = app.button[[b.proto.shortcut for b in app.button].index("enter")]
    assert accept.label == f"Accept {engine.classes[top].name}" and not accept.disabled
    accept.click().run()
    assert engine.current_label(item).class_ids == (top,)


def test_multi_label_projects_toggle_classes_and_save_them_together(engine):
    restarted = multi_label_engine(engine)  # reads the project again; the app uses it
    app = open_page()
    path = shown_path(app)
    cat, frog = class_id(restarted, "cat"), class_id(restarted, "frog")
    app.button(key=f"class-{cat}").click().run()
    app.button(key=f"class-{frog}").click().run()
    assert app.button(key=f"class-{cat}").proto.type == "primary"
    app.button[[b.proto.shortcut for b in app.button].index("enter")].click().run()

    item = restarted.pool.item_ids[restarted.pool.paths.index(path)]
    assert restarted.multi_label
    assert restarted.current_label(item).class_ids == tuple(sorted((cat, frog)))


def test_an_overlap_ask_says_why_it_is_asked_again(engine):
    save_team_settings(engine.db, engine.project_id, TeamSettings(overlap_share=1.0))
    first = LabelingSession(engine, "eve")
    ask = first.current()
    first.label(ask.item_id, [class_id(engine, true_class(ask.path))])
    first.close()
    app = open_page(name="ann")  # overlap asks come first, and never back to the one who labeled it
    assert shown_path(app) == ask.path
    assert SOURCE_TEXT[OVERLAP_SOURCE] in [markdown.value for markdown in app.expander[0].markdown]
    # No labeled neighbours either: their labels would give the first answer away.
    assert [c.value for c in app.expander[0].caption] == [NEIGHBOURS_HIDDEN]


def test_an_account_disabled_meanwhile_labels_nothing_more_and_is_signed_out(engine):
    app = open_page(name="ann", role=Role.ANNOTATOR)
    path = shown_path(app)
    item = engine.pool.item_ids[engine.pool.paths.index(path)]
    set_disabled(engine.db, name="ann", disabled=True, by=None)  # an admin, elsewhere

    app.button(key=f"class-{class_id(engine, 'cat')}").click().run()

    assert not app.exception
    assert engine.current_label(item) is None
    with engine.db.reading() as session:
        assert queries.latest_annotation(session, int(item)) is None
    assert [w.value for w in app.warning] == ["Sign in first: open the app's start page."]


def signed_in_with_a_password(engine, token: str | None = None):
    """The Label page of a browser session signed in as "ann" with a password: it holds the sign-in's
    token (``token``: one another tab of the same browser holds too, through the shared cookie)."""
    app = signed_in_app(name="ann", role=Role.ANNOTATOR)
    app.session_state[SIGN_IN_TOKEN] = token or remember(engine.db, app.session_state[ACCOUNT_ID])
    app.run()
    assert not app.exception and shown_path(app)
    return app


@pytest.mark.parametrize("elsewhere", ["a new password", "a sign-out in another tab"])
def test_an_open_page_labels_nothing_more_after_its_sign_in_ends_elsewhere(engine, elsewhere):
    app = signed_in_with_a_password(engine)
    path = shown_path(app)
    item = engine.pool.item_ids[engine.pool.paths.index(path)]
    if elsewhere == "a new password":
        set_password(engine.db, name="ann", password="a brand new password", by=None)  # an admin, or ann elsewhere
    else:
        other_tab = signed_in_with_a_password(engine, token=app.session_state[SIGN_IN_TOKEN])
        other_tab.sidebar.button[[b.label for b in other_tab.sidebar.button].index("Sign out")].click().run()

    app.button(key=f"class-{class_id(engine, true_class(path))}").click().run()

    assert not app.exception
    assert engine.current_label(item) is None
    assert [w.value for w in app.warning] == ["Sign in first: open the app's start page."]
    assert SIGN_IN_TOKEN not in app.session_state  # so the browser's cookie is expired too
