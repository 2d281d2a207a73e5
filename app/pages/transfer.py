"""Export the current labels (CSV, JSON, COCO-style JSON, Label Studio tasks, ImageFolder) and import labels
(CSV, Label Studio JSON export, COCO-style JSON)."""

from pathlib import Path

import streamlit as st

from app.auth import require
from app.resources import database
from app.safe_text import escape_markdown
from app.user_state import annotator, chosen_project
from services.errors import UserError
from services.transfer.export import (
    export_image_folder,
    label_studio_config,
    labeled_images,
    to_coco,
    to_csv,
    to_json,
    to_label_studio,
)
from services.transfer.imports import import_file
from storage.models import Role

require(Role.ADMIN)  # first: see app/auth.py

st.title("Export / import")
db, project = database(), chosen_project()


def _labeled():
    return labeled_images(db, project)


st.header("Export the current labels")
st.caption("Files are made when you click. Paths are relative to the project's root folder.")
csv_file, json_file, coco_file, studio_file = st.columns(4)
csv_file.download_button(
    "CSV",
    lambda: to_csv(_labeled()),
    file_name=f"{project}-labels.csv",
    mime="text/csv",
    on_click="ignore",
    icon=":material/download:",
)
json_file.download_button(
    "JSON",
    lambda: to_json(_labeled()),
    file_name=f"{project}-labels.json",
    mime="application/json",
    on_click="ignore",
    icon=":material/download:",
)
coco_file.download_button(
    "COCO-style JSON",
    lambda: to_coco(db, project, _labeled()),
    file_name=f"{project}-coco.json",
    mime="application/json",
    on_click="ignore",
    icon=":material/download:",
)
studio_file.download_button(
    "Label Studio tasks",
    lambda: to_label_studio(db, project, _labeled()),
    file_name=f"{project}-label-studio.json",
    mime="application/json",
    on_click="ignore",
    icon=":material/download:",
    help="Labels as pre-annotations; data.image points at /data/local-files/ under the project root "
    "(Label Studio with LOCAL_FILES_DOCUMENT_ROOT=/).",
)
with st.expander("Label Studio labeling config"):
    st.code(label_studio_config(db, project), language="xml")


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


with st.form("image-folder"):
    st.subheader("ImageFolder")
    folder = st.text_input("New or empty folder on this computer", placeholder="/data/exports/banana")
    how = st.radio("Files", ["copies", "hard links", "symbolic links"], horizontal=True)
    if st.form_submit_button("Write one folder per class"):
        if not folder.strip():
            st.error("Enter the folder to write the images to: a new folder, or an empty one.")
        else:
            try:
                written = export_image_folder(
                    db,
                    project,
                    _labeled(),
                    Path(folder.strip()).expanduser(),
                    files={"copies": "copy", "hard links": "hardlink"}.get(how, "symlink"),
                )
            except (UserError, OSError) as error:
                st.error(escape_markdown(str(error)))
            else:
                st.success(escape_markdown(f"Wrote {written} files under {folder}."))

st.header("Import labels")
st.caption(
    "A CSV with a header row and the columns path (relative to the project's root) and labels "
    "(class names separated by ;), a Label Studio JSON export, or a COCO-style JSON file. Each imported "
    "label supersedes the image's current one; a file with a malformed line is refused whole."
)
with st.form("import"):
    upload = st.file_uploader("CSV or JSON file", type=["csv", "json"])
    create = st.checkbox("Create classes that do not exist yet")
    submitted = st.form_submit_button("Import")
    if submitted and upload is None:
        st.error("Choose a CSV or JSON file first.")
    if submitted and upload is not None:
        try:
            report = import_file(
                db, project, upload.getvalue(), file_name=upload.name, create_classes=create, importer=annotator()
            )
        except UserError as error:
            st.error(escape_markdown(str(error)))
        else:
            st.success(f"Imported {_count(report.imported, 'label')}; {report.unchanged} already current.")
            if report.created_classes:
                st.info(escape_markdown(f"New classes: {', '.join(report.created_classes)}"))
            if report.unknown:
                st.warning(
                    f"{_count(len(report.unknown), 'path')} named no image of this project and "
                    f"{'was' if len(report.unknown) == 1 else 'were'} skipped; the first ones:"
                )
                st.dataframe(
                    {"line": [u.line for u in report.unknown[:20]], "path": [u.path for u in report.unknown[:20]]},
                    hide_index=True,
                )
            if report.ambiguous:
                st.warning(
                    f"{len(report.ambiguous)} images uploaded to Label Studio were skipped: Label Studio kept "
                    "only their file name, and several images of this project have that name. Export from a "
                    "Label Studio project whose images come from local-files storage, or import a CSV with "
                    "the images' full paths. The first ones:"
                )
                st.dataframe(
                    {
                        "line": [a.line for a in report.ambiguous[:20]],
                        "path": [a.path for a in report.ambiguous[:20]],
                        "file name": [a.name for a in report.ambiguous[:20]],
                        "images with that name": [a.candidates for a in report.ambiguous[:20]],
                    },
                    hide_index=True,
                )
            if report.bad_names:
                st.warning(
                    f"{_count(len(report.bad_names), 'line')} named a new class whose name breaks a rule and "
                    f"{'was' if len(report.bad_names) == 1 else 'were'} skipped; fix the names in the file and "
                    "import it again. The first ones:"
                )
                st.dataframe(
                    {
                        "line": [b.line for b in report.bad_names[:20]],
                        "path": [b.path for b in report.bad_names[:20]],
                        "class name": [repr(b.name) for b in report.bad_names[:20]],
                        "why": [b.reason for b in report.bad_names[:20]],
                    },
                    hide_index=True,
                )
