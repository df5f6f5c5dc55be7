"""Old module paths that stand for a module that moved: reads and writes go through.

``erftheory._exact`` is `erftheory.engines.exact` under its old name: ``from
erftheory._exact import uniform_half`` works, and so does setting one of its attributes
(``erftheory._float.SPECTRUM_TOLERANCE = 0.0``, a test's ``monkeypatch.setattr`` and its
undo), which changes the engine's module itself rather than a copy. Every name of the
module is a property of the alias's class (what ``monkeypatch`` needs to restore a value
rather than delete it); names added later go through ``__getattr__`` and ``__setattr__``.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import Any

__all__ = ["alias"]


class _Alias(types.ModuleType):
    """A module whose public and private names are those of its ``__alias__`` module."""

    def __getattr__(self, name: str) -> Any:
        target = self.__dict__.get("__alias__")
        if target is None or name.startswith("__"):
            raise AttributeError(f"module {self.__name__!r} has no attribute {name!r}")
        return getattr(target, name)

    def __setattr__(self, name: str, value: Any) -> None:
        if name.startswith("__"):
            super().__setattr__(name, value)
        else:
            setattr(self.__dict__["__alias__"], name, value)

    def __delattr__(self, name: str) -> None:
        if name.startswith("__"):
            super().__delattr__(name)
        else:
            delattr(self.__dict__["__alias__"], name)

    def __dir__(self) -> list[str]:
        return sorted(set(super().__dir__()) | set(dir(self.__dict__["__alias__"])))


def _forward(name: str) -> property:
    def get(self: types.ModuleType) -> Any:
        return getattr(self.__dict__["__alias__"], name)

    def set_(self: types.ModuleType, value: Any) -> None:
        setattr(self.__dict__["__alias__"], name, value)

    def delete(self: types.ModuleType) -> None:
        delattr(self.__dict__["__alias__"], name)

    return property(get, set_, delete)


def alias(name: str, target: str) -> None:
    """Make the module ``name`` (being imported) stand for the module ``target``."""
    module = sys.modules[name]
    real = importlib.import_module(target)
    names = {n: _forward(n) for n in vars(real) if not n.startswith("__")}
    module.__dict__["__alias__"] = real
    module.__class__ = type("_Alias", (_Alias,), {"__module__": __name__, **names})
