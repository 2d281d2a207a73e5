"""Show text a user typed, or a file name carries, as literal characters.

Streamlit renders Markdown in button, metric, caption and widget labels; Plotly renders a
few HTML tags (links included) in names and labels. Dataframes and ``st.text`` need neither.
"""

import html
import re

# Every ASCII punctuation character may be backslash-escaped in Markdown; escaping all of
# them also defuses Streamlit's own syntax (`:red[...]`, `:material/icon:`, `$math$`).
_PUNCTUATION = re.compile(r"([!-/:-@\[-`{-~])")


def escape_markdown(text: str) -> str:
    """``text`` as literal characters when rendered as Markdown."""
    return _PUNCTUATION.sub(r"\\\1", text).replace("\n", " ")


def escape_plotly(text: str) -> str:
    """``text`` as literal characters in Plotly trace names, axis categories and hover text."""
    return html.escape(text, quote=False)
