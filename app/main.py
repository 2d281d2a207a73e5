"""Streamlit entry point: ``streamlit run app/main.py``. Routes to the pages and holds the sidebar."""

import sys
from pathlib import Path

# `streamlit run` puts app/ on sys.path, not the repository root that holds services/.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import streamlit as st  # noqa: E402

from app.resources import database, settings  # noqa: E402
from app.user_state import default_annotator  # noqa: E402
from services.projects import list_projects  # noqa: E402

PAGES = Path(__file__).parent / "pages"

st.set_page_config(page_title="banana", layout="wide")
navigation = st.navigation([
    st.Page(PAGES / "label.py", title="Label", icon=":material/label:", default=True),
    st.Page(PAGES / "dashboard.py", title="Dashboard", icon=":material/monitoring:"),
    st.Page(PAGES / "grid.py", title="Grid", icon=":material/grid_view:"),
    st.Page(PAGES / "explore.py", title="Explore", icon=":material/scatter_plot:"),
    st.Page(PAGES / "classes.py", title="Classes and settings", icon=":material/tune:"),
    st.Page(PAGES / "transfer.py", title="Export / import", icon=":material/import_export:"),
    st.Page(PAGES / "overview.py", title="Files", icon=":material/folder:"),
])
with st.sidebar:
    names = [project.name for project in list_projects(database())]
    if len(names) > 1:
        st.selectbox("Project", names, index=names.index(settings().project) if settings().project in names else 0,
                     key="project")
    st.text_input("Your name", value=default_annotator(), key="annotator", max_chars=200,
                  help="Recorded with every label you give.")
navigation.run()
