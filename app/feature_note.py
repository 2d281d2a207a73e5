"""What the pages say about the project's image features: which backbone, and a warning when
the features, not the labels, are what limits the model."""

from __future__ import annotations

import streamlit as st

from app.safe_text import escape_markdown
from services.engine.project_engine import ProjectEngine
from services.features.feature_warning import feature_warning
from services.features.project_backbone import backbone_training, project_backbone


def show_feature_warning(engine: ProjectEngine) -> None:
    warning = feature_warning(engine)
    if warning is not None:
        st.warning(escape_markdown(warning.text), icon=":material/image_search:")


def backbone_caption(engine: ProjectEngine) -> None:
    choice = project_backbone(engine.db, engine.settings, engine.project_name)
    st.caption(
        f"Image features: **{escape_markdown(choice.name)}**, {escape_markdown(backbone_training(choice.name))}. "
        f"Why this one: {escape_markdown(choice.reason)}."
    )
