"""The proofs of issue 4: every registered proof passes and rejects its altered variants;
``erftheory verify`` and ``python -m proofs`` run them all."""

from __future__ import annotations

import importlib
import json
import re
import subprocess
import sys
from pathlib import Path

import erftheory.proofs
import pytest
from erftheory.proofs import PROOFS

from erftheory import verify as verify_module
from erftheory.cli import main

ROOT = Path(__file__).resolve().parents[1]
PROOFS_DIR = Path(erftheory.proofs.__file__).resolve().parent


def _module(name: str):
    return importlib.import_module(f"erftheory.proofs.{name}")


VARIANT_CASES = [(name, v) for name in PROOFS for v in _module(name).VARIANTS]


@pytest.mark.parametrize("name", PROOFS)
def test_proof_passes(name: str) -> None:
    _module(name).verify()


@pytest.mark.parametrize(("name", "variant"), VARIANT_CASES)
def test_altered_variant_is_rejected(name: str, variant: str) -> None:
    with pytest.raises(AssertionError):
        _module(name).verify(variant)


@pytest.mark.parametrize("name", PROOFS)
def test_proof_metadata(name: str) -> None:
    mod = _module(name)
    assert mod.NAME == name
    assert mod.STATEMENT.endswith(".") and "\n" not in mod.STATEMENT
    assert mod.LATEX.strip() and mod.VARIANTS, "each proof needs a LaTeX statement and variants"
    with pytest.raises(ValueError, match="variant must be None or one of"):
        mod.verify("no-such-variant")


def test_every_proof_module_is_registered() -> None:
    on_disk = {p.stem for p in PROOFS_DIR.glob("*.py") if not p.stem.startswith("_")}
    assert on_disk == set(PROOFS)
    assert len(PROOFS) == len(set(PROOFS)) >= 11


def test_every_item_of_the_issue_has_a_proof() -> None:
    # The minimum list of issue 4, by the equation or section each item covers.
    for needle in (
        "eq01_05",
        "case_k2",
        "eq06_08",
        "eq09",
        "eq10",
        "eq11",
        "sec24",
        "sec25",
        "sec4_",
        "sec23_erf_ratio",
        "gaussian_limit",
    ):
        assert any(name.startswith(needle) for name in PROOFS), needle


def test_cli_verify_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["verify", "--json"]) == 0
    records = json.loads(capsys.readouterr().out)
    assert [r["name"] for r in records] == list(PROOFS)
    for r in records:
        assert set(r) == {"name", "statement", "passed", "seconds"}
        assert r["passed"] is True
        assert isinstance(r["seconds"], float) and r["seconds"] >= 0
        assert r["statement"] == _module(r["name"]).STATEMENT


def test_cli_verify_reports_a_failure(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in PROOFS:  # keep this test fast: only the altered proof does any work
        monkeypatch.setattr(_module(name), "verify", lambda variant=None: None)

    def broken(variant: str | None = None) -> None:
        raise AssertionError("altered on purpose")

    monkeypatch.setattr(_module("case_k2_binomial"), "verify", broken)
    assert main(["verify"]) == 1
    captured = capsys.readouterr()
    lines = captured.out.strip().splitlines()
    assert len(lines) == len(PROOFS) + 1
    assert re.match(
        r"FAIL\s+\d+\.\d\ds  case_k2_binomial: ", lines[PROOFS.index("case_k2_binomial")]
    )
    assert sum(line.startswith("PASS") for line in lines) == len(PROOFS) - 1
    assert "altered on purpose" in captured.err
    assert verify_module.run_all(json=True) == 1
    records = json.loads(capsys.readouterr().out)
    assert [r["passed"] for r in records].count(False) == 1


def test_cli_verify_bad_argument(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["verify", "--kernel", "1,1"])
    assert exc.value.code == 2
    assert "unrecognized arguments" in capsys.readouterr().err


def test_cli_usage_lists_verify(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "{coefficients,profile,verify,reproduce,measure}" in capsys.readouterr().out


def test_python_m_erftheory_verify(tmp_path: Path) -> None:
    run = subprocess.run(
        [sys.executable, "-m", "erftheory", "verify"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    lines = run.stdout.strip().splitlines()
    assert [line.split()[0] for line in lines[:-1]] == ["PASS"] * len(PROOFS)
    assert lines[-1].startswith(f"{len(PROOFS)}/{len(PROOFS)} proofs passed")


def test_python_m_proofs_from_the_repository_root() -> None:
    run = subprocess.run(
        [sys.executable, "-m", "proofs", "--json"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    records = json.loads(run.stdout)
    assert [r["name"] for r in records] == list(PROOFS) and all(r["passed"] for r in records)


def test_docs_render_every_statement() -> None:
    from erftheory.verify import render_proof_pages

    pages = render_proof_pages()
    committed = {
        p.name: p.read_text(encoding="utf-8") for p in (ROOT / "docs" / "proofs").glob("*.md")
    }
    assert committed == pages, "docs/proofs is stale: run python -m proofs --docs docs/proofs"
    text = "\n".join(pages.values())
    errata_md = (ROOT / "docs" / "errata.md").read_text(encoding="utf-8")
    for name in PROOFS:
        mod = _module(name)
        assert f"$$\n{mod.LATEX}\n$$" in text, f"docs/proofs lacks the statement of {name}"
        assert f"## `{name}`" in pages[f"section-{mod.SECTION.replace('.', '-')}.md"]
        if getattr(mod, "ERRATUM", None):
            assert f"`{name}`" in errata_md, f"docs/errata.md lacks {name}"
