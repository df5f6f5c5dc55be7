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

__all__ = ["load_proofs", "main", "render_proof_pages", "run_all", "write_proof_pages"]

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
        usage="python -m proofs [-h] [--json] [--docs DIR]",
        description="Run every proof of the paper's equations and claims.",
    )
    parser.add_argument("--json", action="store_true", help="print a JSON list")
    parser.add_argument(
        "--docs", metavar="DIR", help="write the proof pages (one per section) into DIR instead"
    )
    args = parser.parse_args(argv)
    if args.docs:
        for path in write_proof_pages(args.docs, package=package):
            print(path)
        return 0
    return run_all(json=args.json, package=package)


SECTION_TITLES = {
    "2.1": "the simplest case: all-ones kernels",
    "2.2": "random weights",
    "2.3": "non-uniform kernels and the Gaussian limit",
    "2.4": "nonlinear activations",
    "2.5": "dropout, subsampling, dilation and skip connections",
    "4": "reducing the Gaussian damage",
}
"""Titles of the paper's sections that have proofs, for the docs pages."""

_INDEX_HEAD = """# Proofs, section by section

Every equation and claim of the paper has a proof module in `proofs/` (installed as
`erftheory.proofs`). Each `verify()` derives the statement symbolically with sympy (for
general $n$ and $k$ where the statement is general), then spot-checks it against the exact
engine; each module also lists deliberately altered statements (`VARIANTS`) that its
`verify(variant)` rejects. Run them all with `erftheory verify` or `python -m proofs`;
the test suite (`tests/test_proofs.py`) runs every proof and every altered variant.
Corrections to the paper are collected on the [errata page](../errata.md).

These pages are generated from the proof modules by `python -m proofs --docs docs/proofs`;
a test fails when they are out of date.

"""


def _section_file(section: str) -> str:
    return "section-" + section.replace(".", "-") + ".md"


def render_proof_pages(package: str = _DEFAULT_PACKAGE) -> dict[str, str]:
    """Render one Markdown page per paper section, plus an index, from the proof modules.

    Each proof contributes its statement in words, in LaTeX, its module docstring (the
    proof outline) and its rejected variants.

    Returns:
        File name → page text (``index.md``, ``section-2-1.md``, ...).
    """
    modules = load_proofs(package)
    sections: dict[str, list[ModuleType]] = {}
    for module in modules:
        sections.setdefault(module.SECTION, []).append(module)
    pages: dict[str, str] = {}
    index = [_INDEX_HEAD]
    for section, members in sections.items():
        title = f"Section {section} — {SECTION_TITLES.get(section, '')}".rstrip(" —")
        fname = _section_file(section)
        index.append(f"- [{title}]({fname}): " + ", ".join(f"`{m.NAME}`" for m in members))
        body = [f"# {title}\n"]
        for m in members:
            variants = "; ".join(f"`{k}` ({v})" for k, v in m.VARIANTS.items())
            doc = (m.__doc__ or "").strip()
            body.append(
                f"## `{m.NAME}`\n\n{m.STATEMENT}\n\n$$\n{m.LATEX}\n$$\n\n"
                f"**Proof outline.**\n\n{doc}\n\n**Altered variants rejected:** {variants}.\n"
            )
        pages[fname] = "\n".join(body)
    pages["index.md"] = "\n".join(index) + "\n"
    return pages


def write_proof_pages(directory: str, package: str = _DEFAULT_PACKAGE) -> list[str]:
    """Write `render_proof_pages` into ``directory``; return the paths written."""
    from pathlib import Path

    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in render_proof_pages(package).items():
        (out / name).write_text(text, encoding="utf-8")
        written.append(str(out / name))
    return written
