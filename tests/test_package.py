"""Packaging: the public API, lazy optional imports, py.typed."""

from __future__ import annotations

import importlib.resources
import subprocess
import sys

import erftheory


def test_public_names_import():
    for name in erftheory.__all__:
        assert getattr(erftheory, name) is not None, name


def test_errors_refine_builtins_and_live_in_the_package():
    assert issubclass(erftheory.ERFValueError, ValueError)
    assert issubclass(erftheory.ERFTypeError, TypeError)
    assert issubclass(erftheory.SizeLimitError, ValueError)
    assert erftheory.ERFValueError.__module__ == "erftheory"


def test_core_import_does_not_pull_torch_or_matplotlib():
    code = (
        "import sys, erftheory\n"
        "erftheory.profile(erftheory.Kernel([1, 1, 1]), layers=5).summary()\n"
        "bad = [m for m in ('torch', 'matplotlib') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_py_typed_ships():
    assert importlib.resources.files("erftheory").joinpath("py.typed").is_file()
