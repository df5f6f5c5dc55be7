"""Root pytest configuration: the core-only run (no torch, no matplotlib) skips with reasons.

Without torch, the torch-only modules are not collected (their doctests import torch).
In Markdown doctests (README, docs pages) a fenced code block that uses a missing optional
dependency is dropped, and the rest of the page still runs; a page whose first example
needs it (its set-up) is skipped whole, with the reason. Test modules skip themselves
with ``pytest.importorskip``.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

_OPTIONAL = {name: importlib.util.find_spec(name) is not None for name in ("torch", "matplotlib")}
_MISSING = sorted(name for name, found in _OPTIONAL.items() if not found)

collect_ignore_glob: list[str] = []
if not _OPTIONAL["torch"]:
    # erftheory/trace.py and reproduce.py: the old paths, shims of erftheory/torch/ modules
    collect_ignore_glob += ["erftheory/torch/*", "erftheory/trace.py", "erftheory/reproduce.py"]


def _fenced_blocks(lines: list[str]) -> list[tuple[int, int]]:
    """0-based ``(first, last)`` line ranges of the fenced code blocks of a Markdown file."""
    blocks, start = [], None
    for i, line in enumerate(lines):
        if line.lstrip().startswith("```"):
            if start is None:
                start = i
            else:
                blocks.append((start, i))
                start = None
    return blocks


def _uses(source: str, module: str) -> bool:
    return re.search(rf"\b{module}\b", source) is not None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not _MISSING:
        return
    from _pytest.doctest import DoctestItem

    for item in items:
        if not isinstance(item, DoctestItem) or item.dtest is None:
            continue
        path = Path(str(item.fspath))
        if path.suffix != ".md":
            continue
        lines = path.read_text(encoding="utf-8").splitlines()
        blocks = _fenced_blocks(lines)
        examples = item.dtest.examples
        dropped: set[tuple[int, int]] = set()
        needs: set[str] = set()
        for ex in examples:
            if "importorskip" in ex.source:  # it skips the page itself, with its reason
                continue
            for module in _MISSING:
                if _uses(ex.source, module):
                    block = next((b for b in blocks if b[0] <= ex.lineno <= b[1]), None)
                    dropped.add(block or (ex.lineno, ex.lineno))
                    needs.add(module)
        if not dropped:
            continue
        kept = [ex for ex in examples if not any(a <= ex.lineno <= b for a, b in dropped)]
        # A page whose first example (its set-up) needs the module is about that module.
        item.dtest.examples = kept if examples[0] in kept else []
        if not item.dtest.examples:
            item.add_marker(
                pytest.mark.skip(reason=f"every example needs {', '.join(sorted(needs))}")
            )
