"""The rules for a class name: the one check every path that creates or renames a class goes
through (adding on the Label or Classes page, renaming, and imports from the CLI or the Export /
import page).

A name is stored in Unicode NFC form without surrounding white space, and it

- has 1 to :data:`MAX_LENGTH` characters (the ``label_class.name`` column's length);
- is one line of visible text: no control characters (tab, newline, NUL, ...), no line or
  paragraph separators, no invisible text-direction controls (U+202A-U+202E, U+2066-U+2069,
  U+200E, U+200F, U+061C, which can make a name read as another) or other invisible formatting
  characters (zero-width space, soft hyphen, ...; the zero-width joiners of some scripts and
  emoji are allowed);
- has no ``;``, which separates class names in CSV files;
- differs from the project's other classes by more than upper and lower case or Unicode form
  (``Cat`` and ``cat`` would be one folder on most file systems, and one class to a person).

``/`` and ``\\`` are allowed: an ImageFolder export encodes them (see
:func:`core.transfer.class_folder.safe_names`). Databases from before these rules may hold names that
break them; those keep working (exports encode them), only new names are checked.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable

from services.errors import UserError

MAX_LENGTH = 200
SEPARATOR = ";"  # between the class names of an image in CSV files (services.transfer.export)
_JOINERS = frozenset("\u200c\u200d")  # zero-width (non-)joiners: part of some scripts and emoji
_DIRECTION_CONTROLS = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def normalized(name: str) -> str:
    """``name`` as it is stored: NFC, without surrounding white space."""
    return unicodedata.normalize("NFC", name).strip()


def checked_class_name(name: str) -> str:
    """The name to store for ``name`` (see :func:`normalized`).

    Raises
    ------
    UserError
        Naming the name, the rule it breaks and the fix, when it breaks one of the rules above
        (all but uniqueness: see :func:`case_twin`).
    """
    problem = name_problem(normalized(name))
    if problem is not None:
        raise UserError(problem)
    return normalized(name)


def name_problem(name: str) -> str | None:
    """What is wrong with ``name`` (already :func:`normalized`) and how to fix it, or None."""
    if not name:
        return "class name is empty; type a name"
    shown = repr(name) if len(name) <= 40 else repr(name[:40]) + "…"
    if len(name) > MAX_LENGTH:
        return (
            f"class name {shown} is {len(name)} characters long; a class name has at most {MAX_LENGTH} "
            "characters: use a shorter one"
        )
    for char in name:
        code = f"U+{ord(char):04X}"
        if char in _DIRECTION_CONTROLS:
            return (
                f"class name {shown} contains {code}, an invisible text-direction control that can make a "
                "name read as another; remove it"
            )
        category = unicodedata.category(char)
        if category in ("Zl", "Zp"):
            return f"class name {shown} contains a line or paragraph separator ({code}); make it one line"
        if category in ("Cc", "Cs"):
            return f"class name {shown} contains a control character ({code}); remove it (a name is one line of text)"
        if category == "Cf" and char not in _JOINERS:
            return (
                f"class name {shown} contains {code}, an invisible formatting character that makes the name "
                "look like another; remove it"
            )
    if SEPARATOR in name:
        return (
            f"class name {shown} contains {SEPARATOR!r}, which separates class names in CSV files; use another "
            "character, such as ',' or '-'"
        )
    return None


def case_twin(name: str, others: Iterable[str]) -> str | None:
    """The first of ``others`` that is ``name`` but for upper and lower case or Unicode form
    (itself included), or None: a project's class names must all differ by more than that."""
    key = _key(name)
    return next((other for other in others if _key(other) == key), None)


def _key(name: str) -> str:
    return unicodedata.normalize("NFC", unicodedata.normalize("NFC", name).casefold())
