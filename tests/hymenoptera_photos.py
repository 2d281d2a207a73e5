"""The shared ant and bee photos (``../shared/datasets/hymenoptera_photos.tar.gz``), unpacked once per session.

Tests using them are skipped where the archive is absent, except in CI (``CI=true``), where
shared/ is always laid beside the checkout and a missing archive fails them.
"""

from __future__ import annotations

import os
import tarfile
from pathlib import Path

import pytest

ARCHIVE = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "hymenoptera_photos.tar.gz"


@pytest.fixture(scope="session")
def hymenoptera_photos(tmp_path_factory):
    """Folder ``hymenoptera_data`` with ``{train,val}/{ants,bees}/*.jpg``: 396 real photos."""
    unpacked = tmp_path_factory.getbasetemp() / "hymenoptera_photos"
    if not unpacked.is_dir():  # this fixture is imported by more than one test module: unpack only once
        if not ARCHIVE.is_file():
            message = f"the shared photo set {ARCHIVE} is not here"
            if os.environ.get("CI") == "true":
                pytest.fail(f"{message}; CI lays shared/ beside the checkout, so it must be")
            pytest.skip(message)
        partial = tmp_path_factory.mktemp("hymenoptera_unpacking")
        with tarfile.open(ARCHIVE) as archive:
            archive.extractall(partial, filter="data")
        partial.rename(unpacked)
    return unpacked / "hymenoptera_data"
