"""Every subpackage of erftheory ships in a plain (non-editable) install."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_every_subpackage_is_listed_in_pyproject() -> None:
    listed = set(
        tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    )
    found = {
        ".".join(p.parent.relative_to(ROOT).parts)
        for p in (ROOT / "erftheory").rglob("__init__.py")
        if "__pycache__" not in p.parts
    }
    assert found, "no package found"
    assert found <= listed, (
        f"subpackages missing from pyproject's packages: {sorted(found - listed)}"
    )
