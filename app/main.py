"""Streamlit entry point: ``streamlit run app/main.py``."""

import sys
from pathlib import Path

# `streamlit run` puts app/ on sys.path, not the repository root that holds services/.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import streamlit as st  # noqa: E402

st.set_page_config(page_title="banana", layout="wide")
navigation = st.navigation(
    [st.Page(Path(__file__).parent / "pages" / "overview.py", title="Overview", default=True)]
)
navigation.run()
