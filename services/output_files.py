"""Files banana writes for people and other tools (label exports, reports, embedding tables): each
whole or not at all, with an error naming the file and the fix when it cannot be written (a full
disk), and CSV cells that no spreadsheet runs as formulas."""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from services.errors import UserError

# A cell starting so is a formula to a spreadsheet: written with a ' in front (OWASP's advice), as is
# one that starts with a ' followed by one of these or another ', so that reading drops exactly that '.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(text: str) -> str:
    """``text`` as a CSV cell that no spreadsheet runs as a formula: a ``'`` in front of a cell
    starting with one of :data:`FORMULA_STARTS`, or with a ``'`` and one of those or another ``'``."""
    quoted = text[:1] == "'" and text[1:2] in (*FORMULA_STARTS, "'")
    return "'" + text if text[:1] in FORMULA_STARTS or quoted else text


def csv_value(cell: str) -> str:
    """The text of a cell :func:`csv_cell` wrote (a cell written otherwise is its own text,
    unless it starts with ``'`` and a formula start: then it is that formula as text)."""
    return cell[1:] if cell[:1] == "'" and cell[1:2] in (*FORMULA_STARTS, "'") else cell


@contextmanager
def replaced_atomically(out: Path) -> Iterator[Path]:
    """A temporary path beside ``out`` to write to; it replaces ``out`` when the block ends.

    On an error in the block (a full disk) ``out`` is as it was and no temporary file is left;
    an OSError becomes a UserError naming ``out`` and the fix (:func:`write_failed`), so the
    block should only write.
    """
    out = Path(out)
    temporary = out.with_name(f".{out.name}.tmp")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        yield temporary
        os.replace(temporary, out)
    except BaseException as error:
        temporary.unlink(missing_ok=True)
        if not isinstance(error, OSError):
            raise
        raise UserError(write_failed(out, error)) from None


def write_atomically(out: Path, text: str) -> None:
    """Write ``text`` to ``out`` (UTF-8, line ends as given) whole or not at all: see :func:`replaced_atomically`."""
    with replaced_atomically(out) as temporary:
        temporary.write_text(text, encoding="utf-8", newline="")


def out_of_room(error: OSError) -> bool:
    """Whether ``error`` says the disk, the quota or the file system's largest file size is reached."""
    return error.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


def write_failed(path: Path, error: OSError) -> str:
    """A message for an output that could not be written, naming ``path`` and what to do; nothing
    of the output is left behind by then."""
    reason = error.strerror or str(error)
    if out_of_room(error):
        return (
            f"could not write {path}: {reason}. Nothing was written; free space on that disk, or write to a "
            "folder on another disk, and run it again"
        )
    return (
        f"could not write {path}: {reason}. Nothing was written; check that the folder exists and can be "
        "written to, or choose another, and run it again"
    )
