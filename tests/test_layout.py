"""The package's one-way layout (docs/design.md): no import cycle, heavy imports in their places.

Static checks on the source (no import is run), plus one subprocess that imports the core.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "erftheory"

# Where each optional heavy dependency may be imported (module paths relative to the package).
ALLOWED = {
    "torch": ("torch/",),
    "torchvision": ("torch/",),
    "timm": ("torch/",),
    "matplotlib": ("plotting.py", "torch/"),
    "sklearn": ("torch/",),
}


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE.parent).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def _is_type_checking(node: ast.If) -> bool:
    t = node.test
    return (isinstance(t, ast.Name) and t.id == "TYPE_CHECKING") or (
        isinstance(t, ast.Attribute) and t.attr == "TYPE_CHECKING"
    )


def _top_level_imports(module: str, path: Path, known: set[str]) -> set[str]:
    """erftheory modules that ``module`` imports when it is imported (not lazily)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()

    def visit(body: list[ast.stmt]) -> None:
        for node in body:
            if isinstance(node, ast.If) and not _is_type_checking(node):
                visit(node.body)
                visit(node.orelse)
            elif isinstance(node, ast.Try):
                visit(node.body)
            elif isinstance(node, ast.Import):
                found.update(a.name for a in node.names if a.name.startswith("erftheory"))
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")
                    base = base[: len(base) - node.level + 1]
                    target = ".".join(base + ([node.module] if node.module else []))
                else:
                    target = node.module or ""
                if not target.startswith("erftheory"):
                    continue
                for a in node.names:
                    sub = f"{target}.{a.name}"
                    found.add(sub if sub in known else target)

    visit(tree.body)
    # Importing a.b.c imports its packages a.b and a too, which are not cycles of a.b.c.
    return {m for m in found if m in known and m != module and not module.startswith(m + ".")}


def _graph() -> dict[str, set[str]]:
    mods = _modules()
    known = set(mods)
    return {m: _top_level_imports(m, p, known) for m, p in mods.items()}


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def dfs(m: str) -> list[str] | None:
        state[m] = 1
        stack.append(m)
        for n in sorted(graph[m]):
            if state.get(n) == 1:
                return [*stack[stack.index(n) :], n]
            if n not in state and (c := dfs(n)):
                return c
        stack.pop()
        state[m] = 2
        return None

    for m in sorted(graph):
        if m not in state and (c := dfs(m)):
            return c
    return None


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycle_in_the_package() -> None:
    cycle = _cycle(_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


@pytest.mark.parametrize("dependency", sorted(ALLOWED))
def test_heavy_dependencies_only_where_allowed(dependency: str) -> None:
    bad = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).as_posix()
        if rel.startswith(ALLOWED[dependency]):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level:
                names = [node.module or ""]
            if any(n == dependency or n.startswith(dependency + ".") for n in names):
                bad.append(f"{rel}:{node.lineno}")
    assert not bad, f"{dependency} imported outside {ALLOWED[dependency]}: {bad}"


def test_import_erftheory_imports_no_heavy_dependency() -> None:
    code = (
        "import sys, erftheory, erftheory.cli, erftheory.arch, erftheory.network; "
        "print(sorted(m for m in ('torch', 'matplotlib', 'sklearn', 'scipy.special') "
        "if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"
