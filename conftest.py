"""Root pytest configuration: skip collecting torch-only modules where torch is missing."""

from __future__ import annotations

import importlib.util

collect_ignore_glob: list[str] = []
if importlib.util.find_spec("torch") is None:
    collect_ignore_glob += ["erftheory/torch/*", "erftheory/trace.py", "erftheory/reproduce.py"]
