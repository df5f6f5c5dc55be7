"""MkDocs hooks of the documentation site (registered under ``hooks:`` in mkdocs.yml).

- `on_startup` remembers the command (``build``, ``gh-deploy`` or ``serve``).
- `on_config` checks that the figure script ``docs/figures.py`` exists.
- `on_pre_build` runs it: ``main(out_dir)`` writes every figure of the pages into
  ``docs/figures/`` (generated, git-ignored) before MkDocs collects the files, so a
  plain ``mkdocs build`` always ships figures drawn by the current code.
- `example_sections` is a Griffe extension (listed under the mkdocstrings options in
  mkdocs.yml) that adapts the package's docstrings to Griffe's Google parser without
  editing them: an ``Example:`` section is read as ``Examples:``, so that its ``>>>``
  lines render as Python console code, not as Markdown block quotes, and an
  ``a, b: text`` entry of ``Args:`` becomes one entry per name.

Under ``mkdocs serve`` the figures are drawn for the first build and again only when
``docs/figures.py`` changes: rebuilding them on every build would make the file watcher
see new figures and rebuild forever.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import re
import sys
import time
from pathlib import Path
from typing import Any

log = logging.getLogger("mkdocs.hooks.erftheory")

FIGURE_SCRIPT = "figures.py"
"""The figure script, relative to ``docs_dir``."""

FIGURE_DIR = "figures"
"""Where it writes, relative to ``docs_dir``."""

_state: dict[str, Any] = {"command": "build", "drawn": None}


def _script(config: Any) -> Path:
    return Path(config["docs_dir"]) / FIGURE_SCRIPT


def _load(path: Path) -> Any:
    """Import the figure script by its file path (``docs/`` is not a package)."""
    name = "erftheory_docs_figures"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return module


def on_startup(command: str, dirty: bool) -> None:
    """Remember whether this is ``build`` or ``serve``."""
    _state["command"] = command


def on_config(config: Any) -> Any:
    """Fail early, with a clear message, when the figure script is missing."""
    from mkdocs.exceptions import PluginError

    script = _script(config)
    if not script.is_file():
        raise PluginError(f"the figure script {script} is missing; the pages need its figures")
    return config


def on_pre_build(config: Any) -> None:
    """Draw every figure of the docs into ``docs/figures/`` with ``figures.main``."""
    from mkdocs.exceptions import PluginError

    script = _script(config)
    stamp = script.stat().st_mtime_ns
    if _state["command"] == "serve" and _state["drawn"] == stamp:
        return
    os.environ.setdefault("MPLBACKEND", "Agg")
    out = Path(config["docs_dir"]) / FIGURE_DIR
    start = time.perf_counter()
    module = _load(script)  # an error in the script propagates with its traceback
    main = getattr(module, "main", None)
    if not callable(main):
        raise PluginError(f"{script} has no main(out_dir) function")
    main(out)
    _state["drawn"] = stamp
    log.info("figures drawn into %s in %.1f s", out, time.perf_counter() - start)


_EXAMPLE_HEADING = re.compile(r"^([ \t]*)Example:[ \t]*$", re.MULTILINE)
_ARGS_HEADING = re.compile(r"^(\s*)(?:Args|Arguments|Params|Parameters):\s*$")
_SHARED_ITEM = re.compile(r"^(\s*)(\w+(?:\s*,\s*\w+)+)(\s*\([^)]*\))?:(.*)$")


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def split_shared_params(text: str) -> str:
    r"""Split Google-style entries that document several parameters at once.

    ``a, b: text`` in an ``Args:`` section becomes ``a: text`` and ``b: text`` (Griffe's
    Google parser reads one name per entry and warns about ``"a, b"``).

    Example:
        >>> print(split_shared_params("Args:\n    x: one.\n    a, b: shared,\n        two."))
        Args:
            x: one.
            a: shared,
                two.
            b: shared,
                two.
    """
    lines = text.split("\n")
    out: list[str] = []
    section: int | None = None  # indentation of the current Args heading
    item: int | None = None  # indentation of its entries
    i = 0
    while i < len(lines):
        line = lines[i]
        heading = _ARGS_HEADING.match(line)
        if heading:
            section, item = _indent(line), None
            out.append(line)
            i += 1
            continue
        if section is not None and line.strip() and _indent(line) <= section:
            section = None
        shared = _SHARED_ITEM.match(line) if section is not None else None
        if section is not None and line.strip() and item is None:
            item = _indent(line)
        if shared and _indent(line) == item:
            j = i + 1
            while j < len(lines) and (not lines[j].strip() or _indent(lines[j]) > _indent(line)):
                j += 1
            while j > i + 1 and not lines[j - 1].strip():
                j -= 1
            pad, names, kind, desc = shared.groups()
            for name in (n.strip() for n in names.split(",")):
                out.append(f"{pad}{name}{kind or ''}:{desc}")
                out.extend(lines[i + 1 : j])
            i = j
            continue
        out.append(line)
        i += 1
    return "\n".join(out)


def example_sections() -> Any:
    """The Griffe extension that adapts the package's docstrings to Griffe's Google parser.

    - An ``Example:`` section is read as ``Examples:``: Griffe's Google parser reads only
      ``Examples:`` as a section of doctest blocks and renders ``Example:`` as an
      admonition of plain Markdown, where ``>>>`` lines become block quotes.
    - ``a, b: text`` in ``Args:`` is split into one entry per name
      (`split_shared_params`).

    Griffe is imported here, not at the top, so that this file imports without the docs
    extra (pytest collects ``docs/`` for doctests).

    Returns:
        A ``griffe.Extension`` instance.
    """
    import griffe

    class ExampleSections(griffe.Extension):
        def on_instance(self, *, obj: Any, **kwargs: Any) -> None:
            docstring = getattr(obj, "docstring", None)
            if docstring is None:
                return
            value = _EXAMPLE_HEADING.sub(r"\1Examples:", docstring.value)
            docstring.value = split_shared_params(value)

    return ExampleSections()
