"""The documentation site: navigation, pages, doctest collection and (optionally) the build.

The pages' own examples run as doctests (``--doctest-glob='*.md'`` over ``docs/``);
these tests check what the doctests cannot: that mkdocs.yml and docs/ agree, that the
exercises' solutions inside collapsible admonitions are really collected, and that the
hooks are wired. CI builds the site with ``mkdocs build --strict`` after the tests; the
build test here runs only where the docs extra is installed.
"""

from __future__ import annotations

import doctest
import importlib
import importlib.util
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
CONFIG = ROOT / "mkdocs.yml"

NOT_IN_NAV: set[str] = set()
"""Pages under docs/ deliberately left out of the navigation (none so far)."""

API_MODULES = (
    "erftheory",
    "erftheory.layers",
    "erftheory.network",
    "erftheory.measures",
    "erftheory.gaussian",
    "erftheory.binomial",
    "erftheory.symbolic",
    "erftheory.arch",
    "erftheory.strategies",
    "erftheory.torch",
    "erftheory.torch.build",
    "erftheory.torch.batched",
    "erftheory.torch.init",
    "erftheory.torch.empirical",
    "erftheory.torch.result",
    "erftheory.torch.map_measures",
    "erftheory.torch.exact_gradient",
    "erftheory.torch.channels",
    "erftheory.torch.images",
    "erftheory.torch.measure",
    "erftheory.torch.compare",
    "erftheory.reproduce",
    "erftheory.plotting",
)
"""Modules whose docstrings the API reference must render."""


class _Loader(yaml.SafeLoader):
    """A safe loader that reads mkdocs.yml's custom tags (``!relative``, ``!ENV``) as text."""


def _tagged(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> Any:
    if isinstance(node, yaml.ScalarNode):
        return f"!{suffix} {loader.construct_scalar(node)}".strip()
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node)
    return loader.construct_mapping(node)  # type: ignore[arg-type]


_Loader.add_multi_constructor("!", _tagged)


@pytest.fixture(scope="module")
def config() -> dict[str, Any]:
    return yaml.load(CONFIG.read_text(encoding="utf-8"), Loader=_Loader)


def _nav_pages(nav: Any) -> list[str]:
    """Every page path of a mkdocs ``nav`` tree, in order."""
    if isinstance(nav, str):
        return [nav]
    if isinstance(nav, list):
        return [p for item in nav for p in _nav_pages(item)]
    if isinstance(nav, dict):
        return [p for value in nav.values() for p in _nav_pages(value)]
    raise AssertionError(f"unexpected nav entry {nav!r}")


def test_every_nav_entry_exists(config: dict[str, Any]) -> None:
    pages = _nav_pages(config["nav"])
    missing = [p for p in pages if not p.startswith("http") and not (DOCS / p).is_file()]
    assert not missing, f"nav entries without a page: {missing}"
    assert len(pages) == len(set(pages)), "a page appears twice in the nav"


def test_every_page_is_in_the_nav(config: dict[str, Any]) -> None:
    in_nav = set(_nav_pages(config["nav"]))
    pages = {p.relative_to(DOCS).as_posix() for p in DOCS.rglob("*.md")}
    orphans = sorted(pages - in_nav - NOT_IN_NAV)
    assert not orphans, f"pages not in mkdocs.yml's nav (add them, or to NOT_IN_NAV): {orphans}"


def test_nav_has_the_issue_sections(config: dict[str, Any]) -> None:
    titles = [next(iter(item)) if isinstance(item, dict) else item for item in config["nav"]]
    for title in (
        "Getting started",
        "The theory step by step",
        "Architectures and the layer algebra",
        "Empirical ERFs with torch",
        "Engines and precision",
        "Errata and clarifications",
        "Proofs",
        "Exercises",
        "API reference",
        "Changelog",
        "References",
    ):
        assert title in titles, title


def test_api_reference_covers_the_modules() -> None:
    rendered = set()
    for page in (DOCS / "api").glob("*.md"):
        rendered |= set(re.findall(r"^::: ([\w.]+)", page.read_text(encoding="utf-8"), re.M))
    missing = [m for m in API_MODULES if m not in rendered]
    assert not missing, f"modules without an API section: {missing}"
    for ident in rendered:  # every identifier names a real module or object
        module, _, attr = ident.rpartition(".")
        if importlib.util.find_spec(ident.split(".")[0]) is None:  # pragma: no cover
            continue
        if "torch" in ident.split(".") and importlib.util.find_spec("torch") is None:
            continue  # pragma: no cover
        try:
            importlib.import_module(ident)
        except ImportError:
            assert hasattr(importlib.import_module(module), attr), ident


def test_changelog_page_includes_the_changelog() -> None:
    text = (DOCS / "changelog.md").read_text(encoding="utf-8")
    assert '--8<-- "CHANGELOG.md"' in text
    assert (ROOT / "CHANGELOG.md").is_file()


def test_hooks_are_registered_and_the_figure_script_exists(config: dict[str, Any]) -> None:
    assert config["hooks"] == ["docs/hooks.py"]
    script = DOCS / "figures.py"
    assert script.is_file(), "docs/figures.py draws the figures the theory pages show"
    assert re.search(r"^def main\(", script.read_text(encoding="utf-8"), re.M)
    plugins = [p for p in config["plugins"] if isinstance(p, dict) and "mkdocstrings" in p]
    handler = plugins[0]["mkdocstrings"]["handlers"]["python"]["options"]
    assert "docs/hooks.py:example_sections" in handler["extensions"]
    assert handler["docstring_style"] == "google"
    arithmatex = next(
        e["pymdownx.arithmatex"]
        for e in config["markdown_extensions"]
        if isinstance(e, dict) and "pymdownx.arithmatex" in e
    )
    assert arithmatex == {"generic": True}
    assert any("mathjax@3" in js for js in config["extra_javascript"])


def test_markdown_doctests_are_collected() -> None:
    """pytest collects docs/**/*.md for doctests (pyproject's addopts and testpaths)."""
    options = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    pytest_options = options["tool"]["pytest"]["ini_options"]
    assert "--doctest-glob='*.md'" in pytest_options["addopts"]
    assert "docs" in pytest_options["testpaths"]


def _solutions(text: str) -> list[str]:
    """The bodies of the ``??? success "Solution"`` admonitions (their indented lines)."""
    bodies = []
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("??? success"):
            body = []
            for nxt in lines[i + 1 :]:
                if nxt.strip() and not nxt.startswith("    "):
                    break
                body.append(nxt)
            bodies.append("\n".join(body))
    return bodies


def test_exercise_solutions_are_collected_as_doctests() -> None:
    text = (DOCS / "exercises.md").read_text(encoding="utf-8")
    prompts = [line for line in text.splitlines() if line.lstrip().startswith(">>> ")]
    examples = doctest.DocTestParser().get_examples(text)
    assert len(examples) == len(prompts), "some >>> lines are not doctest examples"
    solutions = _solutions(text)
    assert len(solutions) >= 7
    indented = [e for e in examples if e.indent == 4]
    assert sum(s.count(">>> ") for s in solutions) == len(indented) > 0
    for body in solutions:  # every solution is checked by code
        assert doctest.DocTestParser().get_examples(body), body[:80]


def _exercises(text: str) -> list[tuple[str, str]]:
    """(heading, body) of every ``## N. ...`` exercise of exercises.md."""
    parts = re.split(r"^(## \d+\. .*)$", text, flags=re.M)
    return list(zip(parts[1::2], parts[2::2], strict=True))


def test_every_exercise_has_a_one_line_hint_then_a_tested_solution() -> None:
    text = (DOCS / "exercises.md").read_text(encoding="utf-8")
    exercises = _exercises(text)
    assert len(exercises) >= 15
    numbers = [int(re.match(r"## (\d+)\.", h).group(1)) for h, _ in exercises]  # type: ignore[union-attr]
    assert numbers == list(range(1, len(numbers) + 1)), numbers
    for heading, body in exercises:
        lines = body.splitlines()
        solution = [i for i, line in enumerate(lines) if line.startswith("??? success")]
        assert len(solution) == 1, heading
        before = [line for line in lines[: solution[0]] if line.strip()]
        assert before and before[-1].startswith("*Hint.* "), (
            f"{heading}: no hint before the solution"
        )
        hint_at = lines.index(before[-1])
        assert not lines[hint_at - 1].strip(), f"{heading}: the hint must be a one-line paragraph"
        assert sum(line.startswith("*Hint.*") for line in lines) == 1, heading
        assert doctest.DocTestParser().get_examples(body), f"{heading}: solution without doctest"


_PROSE_PAGES = (
    "theory/*.md",
    "architectures.md",
    "errata.md",
    "exercises.md",
    "getting-started.md",
)


def _prose(text: str) -> str:
    """The text outside code blocks, inline code and math."""
    text = re.sub(r"```.*?```", "", text, flags=re.S)
    text = re.sub(r"\$\$.*?\$\$", "", text, flags=re.S)
    text = re.sub(r"\$[^$]*\$", "", text)
    return re.sub(r"`[^`]*`", "", text)


def test_paper_citations_link_the_references_page() -> None:
    """ "[7]" is the paper's numbering: every such citation links the references table."""
    cited = re.compile(r"(?<![\[(])\[(\d+(?:, \d+)*)\](?!\()")
    for pattern in _PROSE_PAGES:
        for page in DOCS.glob(pattern):
            prose = _prose(page.read_text(encoding="utf-8"))
            bare = [m.group(0) for m in cited.finditer(prose)]
            assert not bare, f"{page.name}: citations without a link to the references: {bare}"
            for target in re.findall(r"\[\[\d+(?:, \d+)*\]\]\(([^)]*)\)", prose):
                assert target.endswith("references.md#the-papers-reference-numbers"), target


def test_the_pages_use_the_notation_table() -> None:
    pages = [*DOCS.glob("theory/sec*.md"), DOCS / "architectures.md", DOCS / "errata.md"]
    pages += [DOCS / "exercises.md", DOCS / "theory" / "primers.md"]
    for page in pages:
        assert "notation.md" in page.read_text(encoding="utf-8"), f"{page.name} lacks the link"
    notation = (DOCS / "notation.md").read_text(encoding="utf-8")
    assert r"$J_l = s_1 s_2 \cdots s_l$, $J_0 = 1$" in notation
    everywhere = "\n".join(p.read_text(encoding="utf-8") for p in DOCS.rglob("*.md"))
    assert r"\prod_{i<l} s_i" not in everywhere, "one stride convention: J_l = s_1 ... s_l"
    assert r"\sum_l J_l^2" not in everywhere, "the variance uses J_(l-1), the strides below"


def test_doctests_do_not_depend_on_a_source_checkout() -> None:
    """Pages must run against an installed package: no paths into the repository."""
    for page in DOCS.rglob("*.md"):
        for example in doctest.DocTestParser().get_examples(page.read_text(encoding="utf-8")):
            assert "__file__" not in example.source, (page.name, example.source)
            assert "docs/examples" not in example.source, (page.name, example.source)


def test_the_example_files_match_the_networks_of_the_pages() -> None:
    from erftheory import Conv, Network
    from erftheory.arch import load_arch, parse_arch

    examples = DOCS / "examples"
    dense = [Conv(3)] * 15
    subsample = ([Conv(3)] * 3 + [Conv(3, stride=2)]) * 3 + [Conv(3)] * 3
    dilated = [Conv(3)] * 3 + [Conv(3, dilation=2)] + [Conv(3)] * 3 + [Conv(3, dilation=4)]
    dilated += [Conv(3)] * 3 + [Conv(3, dilation=8)] + [Conv(3)] * 3
    for name, layers in (("dense", dense), ("subsample", subsample), ("dilated", dilated)):
        from_file = load_arch(examples / f"paper_sec31_{name}.json").profile()
        inline = Network(layers, ndim=2).profile()
        assert from_file.coefficients == inline.coefficients, name

    def stage(convs: int) -> list[Any]:
        conv = {"conv": {"size": 3, "padding": 1}}
        return [
            {"repeat": {"times": convs, "layers": [conv, "relu"]}},
            {"maxpool": {"size": 2, "stride": 2}},
        ]

    vgg = parse_arch({"ndim": 2, "layers": stage(2) + stage(2) + stage(3) + stage(3) + stage(3)})
    from_file = load_arch(examples / "vgg16.json")
    assert from_file.receptive_field == vgg.receptive_field
    assert [r.rf_size for r in from_file.table()] == [r.rf_size for r in vgg.table()]


def test_split_shared_params() -> None:
    """The Griffe extension's rewrite of ``a, b: text`` entries (docs/hooks.py)."""
    spec = importlib.util.spec_from_file_location("erftheory_docs_hooks", DOCS / "hooks.py")
    assert spec is not None and spec.loader is not None
    hooks = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hooks)
    text = "Args:\n    kind: k.\n    method, dps: as for\n        profile.\n\nText after."
    assert hooks.split_shared_params(text) == (
        "Args:\n    kind: k.\n    method: as for\n        profile.\n"
        "    dps: as for\n        profile.\n\nText after."
    )
    assert hooks.split_shared_params("Returns:\n    a, b: c.") == "Returns:\n    a, b: c."
    assert hooks._EXAMPLE_HEADING.sub(r"\1Examples:", "x\n\n    Example:\n") == (
        "x\n\n    Examples:\n"
    )


_DOCS_TOOLS = ("mkdocs", "material", "mkdocstrings", "mkdocstrings_handlers.python")


def _have_docs_tools() -> bool:
    try:
        return all(importlib.util.find_spec(name) is not None for name in _DOCS_TOOLS)
    except ModuleNotFoundError:
        return False


@pytest.mark.skipif(not _have_docs_tools(), reason="needs the docs extra (mkdocs)")
def test_site_builds_strictly(tmp_path: Path) -> None:
    """``mkdocs build --strict`` (warnings are errors), as CI runs it; about 20 s."""
    run = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert run.returncode == 0, run.stderr[-4000:]
    for page in ("index.html", "torch/index.html", "exercises/index.html", "api/index.html"):
        assert (tmp_path / "site" / page).is_file(), page
    assert (tmp_path / "site" / "figures").is_dir()
    for html in (tmp_path / "site").rglob("index.html"):  # math left unrendered: stray $
        stray = _stray_dollars(html.read_text(encoding="utf-8"))
        assert not stray, f"{html.relative_to(tmp_path)}: math not rendered near {stray!r}"


def _stray_dollars(html: str) -> str:
    """Text around the first ``$`` outside math, code and scripts of a built page, or ''."""
    text = re.sub(r'<(span|div) class="arithmatex">.*?</\1>', "", html, flags=re.S)
    for tag in ("pre", "code", "script", "style"):
        text = re.sub(rf"<{tag}\b.*?</{tag}>", "", text, flags=re.S)
    at = text.find("$")
    return "" if at < 0 else text[max(0, at - 60) : at + 60]


def test_stray_dollar_detector() -> None:
    assert _stray_dollars('<p>a <span class="arithmatex">\\(x\\)</span> b</p>') == ""
    assert _stray_dollars("<p>$$x<ul><li>+ y$$</li></ul></p>")
    assert _stray_dollars("<pre><code>$ pip</code></pre>") == ""
