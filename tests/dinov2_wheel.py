"""FAIR's original DINOv2 model code, from the ``dinov2`` wheel that ``make setup`` puts in ``.whl/``.

The wheel is never installed (its dependencies are heavy); only its ``dinov2.models`` and
``dinov2.layers`` are imported, which need nothing but torch, straight from the wheel (a zip)
on ``sys.path``. Without the wheel the tests using it are skipped, unless
``BANANA_REQUIRE_DINOV2_WHEEL=1`` (set by CI, whose ``make test`` runs ``make setup`` first),
where a missing wheel fails them.
"""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path

import pytest

WHEEL_FOLDER = Path(__file__).resolve().parents[1] / ".whl"
REQUIRE_WHEEL_VARIABLE = "BANANA_REQUIRE_DINOV2_WHEEL"


@pytest.fixture(scope="session")
def dinov2_vision_transformer():
    """FAIR's ``dinov2.models.vision_transformer`` module, imported from the wheel."""
    wheels = sorted(WHEEL_FOLDER.glob("dinov2-*.whl"))
    if not wheels:
        message = f"FAIR's dinov2 wheel is not in {WHEEL_FOLDER}: `make setup` downloads it once"
        if os.environ.get(REQUIRE_WHEEL_VARIABLE) == "1":
            pytest.fail(f"{message} ({REQUIRE_WHEEL_VARIABLE}=1 requires it)")
        pytest.skip(message)
    wheel = str(wheels[-1])
    sys.path.insert(0, wheel)
    try:  # importing the module loads every dinov2 module it needs; the wheel can leave sys.path after
        return importlib.import_module("dinov2.models.vision_transformer")
    finally:
        sys.path.remove(wheel)
