"""Read a JSON file of records and the line each record starts on, for errors that name the line.

The text is parsed once with :func:`json.loads` (a syntax error names its line), then the
arrays of interest are walked with :meth:`json.JSONDecoder.raw_decode` to find where each
element begins.
"""

from __future__ import annotations

import bisect
import json
import re
from typing import Any

from services.errors import UserError

_DECODER = json.JSONDecoder()
_WHITESPACE = re.compile(r"[ \t\n\r]*")


def load(text: str, file_name: str) -> Any:
    """The parsed JSON; a syntax error becomes a UserError naming the file, line and column."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise UserError(f"{file_name}, line {error.lineno}, column {error.colno}: not valid JSON ({error.msg}); "
                        "fix the file there or export it again") from None


class Lines:
    """Line numbers (1-based) of offsets into one text."""

    def __init__(self, text: str) -> None:
        self._newlines = [match.start() for match in re.finditer("\n", text)]

    def of(self, offset: int) -> int:
        return bisect.bisect_left(self._newlines, offset) + 1


def array_lines(text: str, key: str | None = None) -> list[int]:
    """Lines where the elements of the top-level array (``key`` None) or of the top-level
    object's member ``key`` start. ``text`` must be valid JSON (see :func:`load`)."""
    start = _skip(text, 0)
    if key is not None:
        start = _members(text, start).get(key)
        if start is None:
            return []
    if text[start] != "[":
        return []
    lines = Lines(text)
    return [lines.of(offset) for offset in _elements(text, start)]


def _skip(text: str, pos: int) -> int:
    return _WHITESPACE.match(text, pos).end()


def _elements(text: str, pos: int) -> list[int]:
    """Offsets of the elements of the array that opens at ``text[pos]``."""
    offsets: list[int] = []
    pos = _skip(text, pos + 1)
    while text[pos] != "]":
        offsets.append(pos)
        _, pos = _DECODER.raw_decode(text, pos)
        pos = _skip(text, pos)
        if text[pos] == ",":
            pos = _skip(text, pos + 1)
    return offsets


def _members(text: str, pos: int) -> dict[str, int]:
    """Offsets of the member values of the object that opens at ``text[pos]`` (the last of a repeated key)."""
    if text[pos] != "{":
        return {}
    offsets: dict[str, int] = {}
    pos = _skip(text, pos + 1)
    while text[pos] != "}":
        key, pos = _DECODER.raw_decode(text, pos)
        pos = _skip(text, _skip(text, pos) + 1)  # past the colon
        offsets[key] = pos
        _, pos = _DECODER.raw_decode(text, pos)
        pos = _skip(text, pos)
        if text[pos] == ",":
            pos = _skip(text, pos + 1)
    return offsets
