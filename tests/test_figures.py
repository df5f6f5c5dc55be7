"""docs/figures.py draws every figure the theory pages embed, as valid PNG files."""

from __future__ import annotations

import importlib.util
import re
import struct
from pathlib import Path

import pytest

pytest.importorskip("matplotlib")

ROOT = Path(__file__).resolve().parents[1]
FIGURES_PY = ROOT / "docs" / "figures.py"
THEORY = ROOT / "docs" / "theory"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
IMAGE = re.compile(r"!\[[^\]]*\]\(\.\./figures/([^)\s]+\.png)\)")
SNIPPET = re.compile(r'--8<-- "docs/figures\.py:(\w+)"')


def _load_figures():
    spec = importlib.util.spec_from_file_location("erftheory_docs_figures", FIGURES_PY)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def drawn(tmp_path_factory):
    """Run ``main`` once into a fresh folder; return (module, paths, folder)."""
    figures = _load_figures()
    out = tmp_path_factory.mktemp("figures")
    return figures, figures.main(out), out


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE, f"{path.name} is not a PNG"
    assert data[12:16] == b"IHDR", f"{path.name} has no IHDR chunk"
    assert data.rstrip(b"\x00").endswith(b"IEND\xaeB`\x82"), f"{path.name} is truncated"
    return struct.unpack(">II", data[16:24])


def test_main_draws_one_png_per_figure(drawn):
    figures, paths, out = drawn
    assert len(paths) == len(figures.FIGURES)
    assert sorted(p.name for p in paths) == sorted(p.name for p in out.iterdir())
    for make, path in zip(figures.FIGURES, paths, strict=True):
        assert path.parent == out
        assert path.name == f"{make.__name__}.png"


def test_figures_are_valid_pngs_of_reasonable_size(drawn):
    _, paths, _ = drawn
    for path in paths:
        width, height = _png_size(path)
        assert 400 <= width <= 4000 and 250 <= height <= 3000, (path.name, width, height)
        assert 10_000 < path.stat().st_size < 3_000_000, path.name


def test_every_embedded_figure_is_drawn(drawn):
    _, paths, _ = drawn
    made = {p.name for p in paths}
    pages = sorted(THEORY.glob("*.md"))
    assert pages, "docs/theory/ has no pages"
    embedded = {name for page in pages for name in IMAGE.findall(page.read_text("utf-8"))}
    assert embedded, "the theory pages embed no figure"
    assert embedded <= made, f"embedded but not drawn by main(): {sorted(embedded - made)}"
    assert made <= embedded, f"drawn but embedded nowhere: {sorted(made - embedded)}"


def test_every_included_snippet_section_exists():
    source = FIGURES_PY.read_text("utf-8")
    included = {s for page in THEORY.glob("*.md") for s in SNIPPET.findall(page.read_text())}
    assert {"helpers", "sec21", "sec22", "sec23", "sec24", "sec25"} <= included
    for name in included:
        assert source.count(f"# --8<-- [start:{name}]") == 1, name
        assert source.count(f"# --8<-- [end:{name}]") == 1, name
        assert source.index(f"[start:{name}]") < source.index(f"[end:{name}]"), name


def test_every_figure_function_is_shown_on_a_page():
    figures = _load_figures()
    source = FIGURES_PY.read_text("utf-8")
    sections = dict(re.findall(r"# --8<-- \[start:(\w+)\]\n(.*?)# --8<-- \[end:\1\]", source, re.S))
    for make in figures.FIGURES:
        assert any(f"def {make.__name__}(" in body for body in sections.values()), make


def test_command_line(tmp_path, capsys):
    figures = _load_figures()
    calls = []
    figures.FIGURES = (lambda out: calls.append(out) or out / "x.png",)
    assert figures.cli(["--out", str(tmp_path / "sub")]) == 0
    assert calls == [tmp_path / "sub"] and (tmp_path / "sub").is_dir()
    assert str(tmp_path / "sub" / "x.png") in capsys.readouterr().out
