"""FAIR's original DINOv2 model code, from the ``dinov2`` wheel that ``make setup`` puts in ``.whl/``.

The wheel is never installed (its dependencies are heavy); only its ``dinov2.models`` and
``dinov2.layers`` are imported, which need nothing but torch, straight from the wheel (a zip,
which Python's zip importer reads without touching ``sys.path``). Without the wheel the tests using it are skipped, unless
``BANANA_REQUIRE_DINOV2_WHEEL=1`` (set by CI, whose ``make test`` runs ``make setup`` first),
where a missing wheel fails them.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
import zipimport
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
    # The package comes from the zip; its submodules follow through the package's __path__.
    spec = zipimport.zipimporter(str(wheels[-1])).find_spec("dinov2")
    package = importlib.util.module_from_spec(spec)
    sys.modules["dinov2"] = package
    spec.loader.exec_module(package)
    return importlib.import_module("dinov2.models.vision_transformer")
