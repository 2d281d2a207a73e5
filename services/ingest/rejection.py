"""Why a file was not ingested, and what the user can do about it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Rejection:
    """A reason a file cannot become an item, and the fix.

    Parameters
    ----------
    reason : str
        What is wrong, e.g. ``file is empty (0 bytes)``.
    fix : str
        What the user can do, e.g. ``re-copy the file from its source``.
    """

    reason: str
    fix: str

    def message(self, path: str) -> str:
        """Return the error text stored on the item: file, reason and fix."""
        return f"{path}: {self.reason}. Fix: {self.fix}."
