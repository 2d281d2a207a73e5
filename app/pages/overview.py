"""Files page: what each project holds, and the files ingest rejected."""

import streamlit as st

from app.auth import require
from app.resources import database, settings
from services.projects import list_projects, project_counts, rejected_files
from storage.models import Role

require(Role.ANNOTATOR)  # first: see app/auth.py

st.title("Files")
st.write("What has been ingested into each project, and the files that were rejected with the reason.")

db = database()
projects = list_projects(db)
if not projects:
    st.info("No project yet. Add images from a terminal:")
    st.code("python -m app.cli ingest sample_data/images", language="bash")
    st.stop()

names = [project.name for project in projects]
default_name = settings().project
chosen = st.selectbox("Project", names, index=names.index(default_name) if default_name in names else 0)
project = projects[names.index(chosen)]
st.text(f"Root folder: {project.root_path}")

counts = project_counts(db, project)
images, rejected, duplicates = st.columns(3)
images.metric("Images", counts.ok)
rejected.metric("Rejected files", counts.error)
duplicates.metric("Duplicate files", counts.duplicate_files)

if counts.error:
    st.subheader("Rejected files")
    # A dataframe shows file names as plain text, never as markup.
    st.dataframe([{"path": item.path, "error": item.error} for item in rejected_files(db, project)], width="stretch")
