"""Run the proofs of ``erftheory.proofs``: the engine of ``erftheory verify``.

Each proof module states one equation or claim of the paper and checks it symbolically
and numerically in ``verify()``; a proof passes when ``verify()`` returns and fails when
it raises. The proofs are imported lazily (``erftheory.proofs`` imports this package,
never the other way round at import time).
"""

from __future__ import annotations

import argparse
import importlib
import json as _json
import sys
import time
import traceback
from types import ModuleType
from typing import Any, TextIO

__all__ = ["load_proofs", "main", "run_all"]

_DEFAULT_PACKAGE = "erftheory.proofs"


def load_proofs(package: str = _DEFAULT_PACKAGE) -> list[ModuleType]:
    """Import every proof module registered in ``package.PROOFS``, in order.

    Falls back to a top-level ``proofs`` package (a source checkout run from its root)
    when ``erftheory.proofs`` is not installed.
    """
    try:
        pkg = importlib.import_module(package)
    except ImportError:
        if package != _DEFAULT_PACKAGE:
            raise
        package = "proofs"
        pkg = importlib.import_module(package)
    return [importlib.import_module(f"{package}.{name}") for name in pkg.PROOFS]


def run_one(module: ModuleType) -> dict[str, Any]:
    """Run one proof; return its record (``name``, ``statement``, ``passed``, ``seconds``)."""
    start = time.perf_counter()
    error = None
    try:
        module.verify()
        passed = True
    except Exception as exc:  # a failing or crashing proof is reported, not raised
        passed = False
        error = "".join(traceback.format_exception_only(type(exc), exc)).strip()
    record: dict[str, Any] = {
        "name": module.NAME,
        "statement": module.STATEMENT,
        "passed": passed,
        "seconds": round(time.perf_counter() - start, 3),
    }
    if error is not None:
        record["_error"] = error
    return record


def run_all(
    json: bool = False, package: str = _DEFAULT_PACKAGE, stream: TextIO | None = None
) -> int:
    """Run every proof and print one line each (or a JSON list); return the exit status.

    Args:
        json: print a JSON list of objects with keys ``name``, ``statement``,
            ``passed`` and ``seconds`` instead of text lines.
        package: the package holding the proofs (``erftheory.proofs`` or ``proofs``).
        stream: where to print (default: standard output). Failure messages go to
            standard error.

    Returns:
        0 when every proof passes, 1 otherwise.
    """
    out = sys.stdout if stream is None else stream
    records = []
    for module in load_proofs(package):
        record = run_one(module)
        error = record.pop("_error", None)
        records.append(record)
        if error is not None:
            sys.stderr.write(f"{record['name']}: {error}\n")
        if not json:
            verdict = "PASS" if record["passed"] else "FAIL"
            out.write(
                f"{verdict}  {record['seconds']:6.2f}s  {record['name']}: {record['statement']}\n"
            )
            out.flush()
    if json:
        out.write(_json.dumps(records) + "\n")
    else:
        passed = sum(r["passed"] for r in records)
        total = sum(r["seconds"] for r in records)
        out.write(f"{passed}/{len(records)} proofs passed in {total:.1f}s\n")
    return 0 if all(r["passed"] for r in records) else 1


def main(argv: list[str] | None = None, package: str = _DEFAULT_PACKAGE) -> int:
    """``python -m proofs [--json]``: run every proof; exit 1 if any fails."""
    parser = argparse.ArgumentParser(
        prog="python -m proofs",
        usage="python -m proofs [-h] [--json]",
        description="Run every proof of the paper's equations and claims.",
    )
    parser.add_argument("--json", action="store_true", help="print a JSON list")
    args = parser.parse_args(argv)
    return run_all(json=args.json, package=package)
