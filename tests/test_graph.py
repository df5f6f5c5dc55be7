"""`erftheory.graph`: the torch-free graph algorithms behind `from_torch` (no torch here)."""

from __future__ import annotations

from typing import Any

import pytest

from erftheory.graph import (
    NotSeriesParallelError,
    dominators,
    nearest_common_dominator,
    reachable,
    series_parallel,
)


def _leaf(n: str) -> list[Any]:
    return [n]


def _join(n: str, branches: list[list[Any]]) -> list[Any]:
    return [(n, branches)]


def _fold(edges: dict[str, list[str]], nodes: str, src: str, dst: str) -> list[Any]:
    order = {n: i for i, n in enumerate(nodes)}
    dom = dominators(nodes, lambda n: edges.get(n, []))
    seen: set[str] = set()
    out = series_parallel(
        src,
        dst,
        inputs=lambda n: edges[n],
        dominators=dom,
        order=order,
        leaf=_leaf,
        join=_join,
        visited=seen,
    )
    assert seen == set(nodes) - {src}
    return out


def test_reachable() -> None:
    succ = {"a": ["b", "c"], "b": ["d"], "c": ["d"], "d": []}
    assert reachable(["a"], lambda n: succ[n]) == {"a", "b", "c", "d"}
    assert reachable(["c"], lambda n: succ[n]) == {"c", "d"}
    assert reachable([], lambda n: succ[n]) == set()


def test_dominators_of_a_diamond_and_a_chain() -> None:
    preds = {"b": ["a"], "c": ["a"], "d": ["b", "c"], "e": ["d"]}
    dom = dominators("abcde", lambda n: preds.get(n, []))
    assert dom == {
        "a": {"a"},
        "b": {"a", "b"},
        "c": {"a", "c"},
        "d": {"a", "d"},
        "e": {"a", "d", "e"},
    }
    order = {n: i for i, n in enumerate("abcde")}
    assert nearest_common_dominator(["b", "c"], dom, order) == "a"
    assert nearest_common_dominator(["e"], dom, order) == "e"
    assert nearest_common_dominator(["d", "e"], dom, order) == "d"


def test_a_chain_folds_in_forward_order() -> None:
    assert _fold({"b": ["a"], "c": ["b"], "d": ["c"]}, "abcd", "a", "d") == ["b", "c", "d"]
    assert _fold({"b": ["a"]}, "ab", "a", "b") == ["b"]


def test_a_residual_block() -> None:
    # a -> b -> c, c + a -> d (x + f(x)), then e
    edges = {"b": ["a"], "c": ["b"], "d": ["c", "a"], "e": ["d"]}
    assert _fold(edges, "abcde", "a", "e") == [("d", [["b", "c"], []]), "e"]


def test_nested_blocks_and_an_operand_used_twice() -> None:
    # an inner diamond (b, c joined at d) inside an outer block joined with the input at f
    edges = {
        "b": ["a"],
        "c": ["a"],
        "d": ["b", "c"],
        "e": ["d"],
        "f": ["e", "a"],
        "g": ["f", "f"],  # x + x
    }
    out = _fold(edges, "abcdefg", "a", "g")
    assert out == [("f", [[("d", [["b"], ["c"]]), "e"], []]), ("g", [[], []])]


def test_three_branches() -> None:
    edges = {"b": ["a"], "c": ["a"], "d": ["a"], "e": ["b", "c", "d"]}
    assert _fold(edges, "abcde", "a", "e") == [("e", [["b"], ["c"], ["d"]])]


def test_a_dense_block_is_not_series_parallel() -> None:
    # b feeds two joins (d of b and c, e of d and b) that overlap, as in DenseNet
    edges = {"b": ["a"], "c": ["a"], "d": ["b", "c"], "e": ["d", "b"]}
    with pytest.raises(NotSeriesParallelError) as info:
        _fold(edges, "abcde", "a", "e")
    assert info.value.node == "b"
    assert isinstance(info.value, ValueError)


def test_is_join_overrides_the_input_count() -> None:
    # a one-input "join" (cat of one map) and a node whose inputs list its one input only
    dom = dominators("abc", lambda n: {"b": ["a"], "c": ["b"]}.get(n, []))
    out = series_parallel(
        "a",
        "c",
        inputs={"b": ["a"], "c": ["b"]},
        dominators=dom,
        order={"a": 0, "b": 1, "c": 2},
        leaf=_leaf,
        join=_join,
        is_join=lambda n: n == "c",
    )
    assert out == ["b", ("c", [[]])]


def test_the_source_must_dominate_the_sink() -> None:
    edges: dict[str, list[str]] = {"a": [], "b": ["a"]}
    dom = dominators("ab", lambda n: edges[n])
    with pytest.raises(ValueError, match="does not dominate"):
        series_parallel(
            "x",
            "b",
            inputs=edges,
            dominators=dom,
            order={"a": 0, "b": 1},
            leaf=_leaf,
            join=_join,
        )


def test_the_module_imports_without_torch() -> None:
    import subprocess
    import sys

    code = (
        "import sys; sys.modules['torch'] = None; import erftheory.graph; "
        "print('torch' in sys.modules and sys.modules['torch'] is not None)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
