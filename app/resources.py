"""Objects the Streamlit pages share across reruns and sessions."""

import streamlit as st

from services.config import Settings, load_settings
from services.database import Database, open_database


@st.cache_resource
def settings() -> Settings:
    """Settings read once per server process."""
    return load_settings()


@st.cache_resource
def database() -> Database:
    """The database, opened (and migrated) once per server process."""
    return open_database(settings())
