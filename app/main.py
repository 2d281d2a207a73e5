"""Streamlit entry point: ``streamlit run app/main.py``. Routes to the pages and holds the sidebar.

A visitor who is not signed in sees only the sign-in page; a signed-in account sees the
pages its role allows (roles form a ladder: see services/accounts/accounts.py).
"""

from pathlib import Path

import streamlit as st

from app.auth import current_account, sign_in_cookie_script, sign_out
from app.keyboard import focus_keeper
from app.own_password import own_password_form
from app.resources import database, settings
from app.safe_text import escape_markdown
from services.projects import list_projects
from storage.models import Role

PAGES = Path(__file__).parent / "pages"

# (page, the lowest role that sees it); the first page is the default.
PAGES_BY_ROLE = [
    (st.Page(PAGES / "label.py", title="Label", icon=":material/label:", default=True), Role.ANNOTATOR),
    (st.Page(PAGES / "dashboard.py", title="Dashboard", icon=":material/monitoring:"), Role.ANNOTATOR),
    (st.Page(PAGES / "grid.py", title="Grid", icon=":material/grid_view:"), Role.ANNOTATOR),
    (st.Page(PAGES / "explore.py", title="Explore", icon=":material/scatter_plot:"), Role.ANNOTATOR),
    (st.Page(PAGES / "classes.py", title="Classes and settings", icon=":material/tune:"), Role.ADMIN),
    (st.Page(PAGES / "transfer.py", title="Export / import", icon=":material/import_export:"), Role.ADMIN),
    (st.Page(PAGES / "overview.py", title="Files", icon=":material/folder:"), Role.ANNOTATOR),
    (st.Page(PAGES / "users.py", title="Users", icon=":material/group:"), Role.ADMIN),
    (st.Page(PAGES / "label_issues.py", title="Label issues", icon=":material/rule:"), Role.REVIEWER),
    (st.Page(PAGES / "review.py", title="Review", icon=":material/rate_review:"), Role.REVIEWER),
    (st.Page(PAGES / "triage.py", title="Triage", icon=":material/move_to_inbox:"), Role.ADMIN),
    (st.Page(PAGES / "slices.py", title="Failure slices", icon=":material/troubleshoot:"), Role.ADMIN),
]


def main() -> None:
    """One run of the app for one browser session."""
    # An emoji favicon is drawn in the browser; a ":material/...:" page icon would be fetched from
    # fonts.gstatic.com (every page's icon becomes the favicon unless this one is set).
    st.set_page_config(page_title="banana", page_icon="🍌", layout="wide")
    account = current_account()
    cookie_script = sign_in_cookie_script()
    if cookie_script is not None:
        st.html(cookie_script, unsafe_allow_javascript=True)
    if account is None:
        st.navigation(
            [st.Page(PAGES / "sign_in.py", title="Sign in", icon=":material/login:")], position="hidden"
        ).run()
        return

    # Pages left out of the navigation cannot be opened, not even by their URL.
    navigation = st.navigation([page for page, lowest in PAGES_BY_ROLE if account.can(lowest)])
    with st.sidebar:
        names = [project.name for project in list_projects(database())]
        if len(names) > 1:
            st.selectbox(
                "Project",
                names,
                index=names.index(settings().project) if settings().project in names else 0,
                key="project",
            )
        st.caption(
            f"Signed in as **{escape_markdown(account.name)}** ({account.role.value}); "
            "your labels are recorded under this name."
        )
        own_password_form(account)
        st.button("Sign out", on_click=sign_out, icon=":material/logout:")
        focus_keeper()
    navigation.run()


# A process pool started while Streamlit runs this script as __main__ (ingest checks files in
# spawned workers) re-imports it in each worker as __mp_main__: no page may run there.
if __name__ == "__main__":
    main()
