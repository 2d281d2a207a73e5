"""The Label page's "why this image" panel: the rule and score parts behind an ask, and its
nearest labeled neighbours."""

from __future__ import annotations

import streamlit as st

from app.safe_text import escape_markdown
from services.engine.project_engine import Ask, ProjectEngine
from services.labeling.session import THUMBNAIL_SIDE
from services.teams.leases import OVERLAP_SOURCE, is_overlap

NEIGHBOURS = 5
NEIGHBOURS_HIDDEN = "The nearest labeled images are hidden for a second opinion: their labels would hint at the answer."

SOURCE_TEXT = {
    "default": "The model is unsure about this image, and it sits at a middle distance from the labeled images: "
    "not a near-copy of one (those teach little) and not an outlier.",
    "discovery": "It is unlike the labeled images, so it may show a class that has few or no labels yet.",
    "cold_start": "Nothing is labeled yet: it is the most typical image of one cluster of the collection.",
    "audit": "Chosen uniformly at random, as about 1 ask in 20 is, so that its answer measures the model's "
    "accuracy without bias.",
    "margin": "The model is least sure about it (smallest gap between its two best classes).",
    "entropy": "The model is least sure about it (highest entropy).",
    "least_confidence": "The model is least sure about it (lowest top probability).",
    "band_only": "It sits at a middle distance from the labeled images.",
    "typicality": "It is the most typical image of a cluster with few labels.",
    "random": "Chosen at random.",
    "triage": 'Queued from the Triage report of a new batch ("Label these next"): a near-failure (the model '
    "almost gets it wrong), a novel image or a near-copy. Queued images are asked before the strategy's "
    "own picks.",
    OVERLAP_SOURCE: "A second opinion: another annotator has labeled this image, and it is asked again, without "
    "their answer or the model's guess, to measure how often annotators agree. Label what you "
    "see; if the two labels differ, a reviewer settles it.",
}

PART_TEXT = {
    "score": "combined score (what ranked it)",
    "uncertainty": "model uncertainty (1 = unsure)",
    "band": "fit to the mid-range similarity band (1 = centre)",
    "novelty": "novelty (1 = unlike anything labeled)",
    "typicality": "typicality (density of its neighbourhood)",
    "nearest_similarity": "similarity to the nearest labeled image",
    "class_similarity": "similarity to the nearest labeled image of the predicted class",
    "triage_margin": "the model's margin in the triage report (top probability minus runner-up)",
}


def why_panel(engine: ProjectEngine, ask: Ask) -> None:
    with st.expander("Why this image?", expanded=True):
        st.markdown(SOURCE_TEXT.get(ask.source, f"Chosen by the {escape_markdown(ask.source)} rule."))
        rows = [{"part": PART_TEXT.get(name, name), "value": f"{value:.3f}"} for name, value in ask.score_parts.items()]
        if ask.band is not None:
            rows.append(
                {"part": "band centre / half-width (cosine)", "value": f"{ask.band[0]:.3f} / {ask.band[1]:.3f}"}
            )
        if rows:
            st.dataframe(rows, hide_index=True, width="stretch")
        if is_overlap(ask):  # their labels would all but give the first annotator's answer away
            st.caption(NEIGHBOURS_HIDDEN)
        else:
            _neighbours(engine, ask)


def _neighbours(engine: ProjectEngine, ask: Ask) -> None:
    neighbours = engine.neighbours(ask.item_id, NEIGHBOURS)
    if not neighbours:
        st.caption("No labeled images yet to compare with.")
        return
    st.caption("Nearest labeled images")
    for column, (item_id, class_ids, similarity) in zip(st.columns(NEIGHBOURS), neighbours):
        names = ", ".join(engine.classes[c].name for c in class_ids)
        with column:
            st.image(engine.pool.images.get(item_id, engine.pool.paths[engine.pool.row_of[item_id]], THUMBNAIL_SIDE))
            st.caption(f"{escape_markdown(names)} · {similarity:.2f}")
