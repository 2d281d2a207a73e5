"""core/ is pure: numpy in, numpy out. It never reaches for the UI, the database or the services."""

import ast
from pathlib import Path

import pytest

CORE = Path(__file__).resolve().parents[1] / "core"
FORBIDDEN = ("streamlit", "sqlalchemy", "alembic", "storage", "app", "services")


def forbidden_imports(source: str) -> list[str]:
    """Return the forbidden modules a Python source imports, at any depth of the code."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        found += [name for name in names if name.split(".")[0] in FORBIDDEN]
    return found


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("import numpy as np\nfrom numpy.linalg import norm", []),
        ("import streamlit as st", ["streamlit"]),
        ("def f():\n    from storage.models import Item", ["storage.models"]),
        ("import os, sqlalchemy.orm", ["sqlalchemy.orm"]),
        ("from services import config", ["services"]),
        ("from app.cli import main", ["app.cli"]),
        ("import application", []),
    ],
)
def test_checker_flags_exactly_the_forbidden_imports(source, expected):
    assert forbidden_imports(source) == expected


def test_core_imports_nothing_forbidden():
    files = sorted(CORE.rglob("*.py"))
    assert files, "core/ has no Python files to check"
    offenders = {
        str(path.relative_to(CORE.parent)): bad
        for path in files
        if (bad := forbidden_imports(path.read_text(encoding="utf-8")))
    }
    assert offenders == {}
