"""Read a JSON file of records and the line each record starts on, for errors that name the line.

The text is parsed once with :func:`json.loads` (a syntax error names its line), then the
arrays of interest are walked with :meth:`json.JSONDecoder.raw_decode` to find where each
element begins. Text nested deeper than :data:`MAX_DEPTH` is refused before it is parsed (the
parser recurses once per level).
"""

from __future__ import annotations

import bisect
import json
import re
from itertools import accumulate
from typing import Any

from services.errors import UserError

_DECODER = json.JSONDecoder()
_WHITESPACE = re.compile(r"[ \t\n\r]*")
MAX_DEPTH = 100  # a Label Studio export nests about 8 levels, a COCO file 3
_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"')
_BRACKET = re.compile(_STRING.pattern + r"|[\[\]{}]")
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")


def load(text: str, file_name: str) -> Any:
    """The parsed JSON; a syntax error, or nesting deeper than :data:`MAX_DEPTH`, becomes a
    UserError naming the file, line and column."""
    too_deep = _too_deep_at(text)
    if too_deep is not None:
        lines = Lines(text)
        raise UserError(
            f"{file_name}, line {lines.of(too_deep)}: the JSON nests deeper than {MAX_DEPTH} levels there; "
            "a Label Studio export or a COCO file nests only a few, so check that this is the right "
            "file, or export it again"
        )
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise UserError(
            f"{file_name}, line {error.lineno}, column {error.colno}: not valid JSON ({error.msg}); "
            "fix the file there or export it again"
        ) from None


def _too_deep_at(text: str) -> int | None:
    """The offset of the bracket that opens level :data:`MAX_DEPTH` + 1, or None."""
    brackets = _NOT_BRACKET.sub("", _STRING.sub("", text))  # one pass in C for text of any depth
    if max(accumulate(1 if bracket in "[{" else -1 for bracket in brackets), default=0) <= MAX_DEPTH:
        return None
    depth = 0
    for match in _BRACKET.finditer(text):
        token = match.group()
        depth += 1 if token in ("[", "{") else -1 if token in ("]", "}") else 0
        if depth > MAX_DEPTH:
            return match.start()
    return None


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
        member = _members(text, start).get(key)
        if member is None:
            return []
        start = member
    if text[start] != "[":
        return []
    lines = Lines(text)
    return [lines.of(offset) for offset in _elements(text, start)]


def _skip(text: str, pos: int) -> int:
    match = _WHITESPACE.match(text, pos)
    if match is None:  # cannot happen: the pattern matches the empty string at any offset
        raise ValueError(f"no whitespace match at offset {pos}")
    return match.end()


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
