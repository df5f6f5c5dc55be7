"""Graph algorithms of `erftheory.torch.trace.from_torch`, on plain node ids (no torch).

A traced model is a DAG from one input to one end node. These functions see it only
through hashable node ids and callables giving a node's predecessors:

- `reachable`: every node reached by repeatedly following a step (ancestors, descendants);
- `dominators`: for every node, the nodes every path from a root to it goes through;
- `nearest_common_dominator`: the last node every path to all of some nodes goes through;
- `series_parallel`: the decomposition of the graph between two nodes into chains and
  blocks, each block joining the branches that leave the nearest common dominator of
  its operands; a graph that is not series-parallel raises `NotSeriesParallelError`;
- `compact_dag`: a DAG of chains (the nodes of `erftheory.layers.Graph`) with every
  run of single-input nodes merged into one chain.

Example:
    >>> # a -> b -> d, a -> c -> d (d joins b and c), d -> e
    >>> inputs = {"b": ["a"], "c": ["a"], "d": ["b", "c"], "e": ["d"]}
    >>> order = {n: i for i, n in enumerate("abcde")}
    >>> dom = dominators("abcde", lambda n: inputs.get(n, []))
    >>> sorted(dom["e"])
    ['a', 'd', 'e']
    >>> series_parallel(
    ...     "a", "e", inputs=inputs, dominators=dom, order=order,
    ...     leaf=lambda n: [n], join=lambda n, branches: [(n, branches)])
    [('d', [['b'], ['c']]), 'e']
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

__all__ = [
    "NotSeriesParallelError",
    "compact_dag",
    "dominators",
    "nearest_common_dominator",
    "reachable",
    "series_parallel",
]

N = TypeVar("N", bound=Hashable)
T = TypeVar("T")


class NotSeriesParallelError(ValueError):
    """A node reached twice by `series_parallel`: it feeds blocks joined in different places.

    Attributes:
        node: the node.
    """

    def __init__(self, node: Any) -> None:
        super().__init__(f"the graph is not series-parallel at node {node!r}")
        self.node = node


def reachable(start: Iterable[N], step: Callable[[N], Iterable[N]]) -> set[N]:
    """Every node reached from ``start`` (included) by repeatedly following ``step``.

    Example:
        >>> sorted(reachable([3], lambda n: [n - 1] if n > 0 else []))
        [0, 1, 2, 3]
    """
    seen: set[N] = set()
    stack = list(start)
    while stack:
        n = stack.pop()
        if n in seen:
            continue
        seen.add(n)
        stack.extend(step(n))
    return seen


def dominators(nodes: Iterable[N], predecessors: Callable[[N], Sequence[N]]) -> dict[N, set[N]]:
    """The dominators of every node (itself included), ``nodes`` in topological order.

    A node without predecessors is a root (its own only dominator); every other node is
    dominated by itself and by the nodes that dominate all its predecessors.
    ``predecessors`` must only give nodes of ``nodes`` that come earlier.

    Example:
        >>> preds = {"b": ["a"], "c": ["a", "b"]}
        >>> {n: sorted(d) for n, d in dominators("abc", lambda n: preds.get(n, [])).items()}
        {'a': ['a'], 'b': ['a', 'b'], 'c': ['a', 'c']}
    """
    dom: dict[N, set[N]] = {}
    for n in nodes:
        preds = list(predecessors(n))
        if not preds:
            dom[n] = {n}
            continue
        common = set.intersection(*(dom[p] for p in preds))
        dom[n] = common | {n}
    return dom


def nearest_common_dominator(
    nodes: Iterable[N], dominators: Mapping[N, set[N]], order: Mapping[N, int]
) -> N:
    """The latest (in ``order``) node that dominates every one of ``nodes``.

    Example:
        >>> dom = {"a": {"a"}, "b": {"a", "b"}, "c": {"a", "b", "c"}, "d": {"a", "b", "d"}}
        >>> nearest_common_dominator(["c", "d"], dom, {n: i for i, n in enumerate("abcd")})
        'b'
    """
    common = set.intersection(*(dominators[u] for u in nodes))
    return max(common, key=lambda n: order[n])


def series_parallel(
    source: N,
    sink: N,
    *,
    inputs: Mapping[N, Sequence[N]] | Callable[[N], Sequence[N]],
    dominators: Mapping[N, set[N]],
    order: Mapping[N, int],
    leaf: Callable[[N], list[T]],
    join: Callable[[N, list[list[T]]], list[T]],
    is_join: Callable[[N], bool] | None = None,
    visited: set[N] | None = None,
) -> list[T]:
    """Fold the graph from ``source`` (excluded) to ``sink`` (included) into a list.

    Walking back from ``sink``: a node with one input contributes ``leaf(node)`` and the
    walk goes on at its input; a node with several inputs (a join) contributes
    ``join(node, branches)``, where branch $i$ is the fold from the inputs' nearest
    common dominator (the fork) to input $i$, and the walk goes on at the fork. The
    parts are concatenated in forward order. ``source`` must dominate ``sink``.

    Args:
        source, sink: the ends.
        inputs: each node's inputs (a mapping or a function), in argument order.
        dominators: as `dominators` gives them.
        order: a topological index of every node.
        leaf, join: the contributions of a one-input node and of a join.
        is_join: which nodes are joins (default: those with several inputs); the walk
            goes on at the one input of any other node.
        visited: a set that receives every node placed (each exactly once).

    Raises:
        NotSeriesParallelError: a node is reached twice (it feeds branches that are
            joined in different places, as in DenseNet); its ``node`` names it.
        ValueError: ``source`` does not dominate ``sink``.
    """
    get = inputs if callable(inputs) else inputs.__getitem__
    done: set[N] = set() if visited is None else visited

    def chain(src: N, dst: N) -> list[T]:
        parts: list[list[T]] = []
        cur = dst
        while cur != src:
            if cur in done:
                raise NotSeriesParallelError(cur)
            done.add(cur)
            operands = list(get(cur))
            if not operands:
                raise ValueError(f"internal error: {src!r} does not dominate {dst!r}")
            if (len(operands) > 1) if is_join is None else is_join(cur):
                fork = nearest_common_dominator(operands, dominators, order)
                parts.append(join(cur, [chain(fork, u) for u in operands]))
                cur = fork
            else:
                parts.append(leaf(cur))
                (cur,) = operands
        return [x for part in reversed(parts) for x in part]

    return chain(source, sink)


def compact_dag(
    chains: Sequence[Sequence[T]], inputs: Sequence[Sequence[int]]
) -> tuple[list[list[T]], list[list[int]]]:
    """Merge runs of single-input nodes of a DAG of chains into one chain each.

    Node $k = 1, \\dots, N$ applies ``chains[k - 1]`` to the sum of the nodes
    ``inputs[k - 1]`` (node 0 is the input; the output is node $N$). A node with an
    empty chain and one input (other than the output) is that input; a node whose one
    input has no other reader is appended to that input's chain (node 0 excepted). The
    result computes the same output, its nodes in topological order.

    Example:
        >>> # 0 -> a -> b, 0 -> c; d = b + c, then e
        >>> compact_dag([["a"], ["b"], ["c"], [], ["e"]], [[0], [1], [0], [2, 3], [4]])
        ([['a', 'b'], ['c'], ['e']], [[0], [0], [1, 2]])
    """
    n = len(chains)
    rep = list(range(n + 1))  # identity nodes stand for their input
    for k in range(1, n + 1):
        if k < n and not chains[k - 1] and len(inputs[k - 1]) == 1:
            rep[k] = rep[inputs[k - 1][0]]
    kept = [k for k in range(1, n + 1) if rep[k] == k]
    ins = {k: [rep[j] for j in inputs[k - 1]] for k in kept}
    uses = {k: 0 for k in range(n + 1)}
    for k in kept:
        for j in ins[k]:
            uses[j] += 1
    group: dict[int, int] = {0: 0}
    out_chains: list[list[T]] = []
    out_inputs: list[list[int]] = []
    for k in kept:
        srcs = ins[k]
        if len(srcs) == 1 and srcs[0] != 0 and uses[srcs[0]] == 1:
            g = group[srcs[0]]
            out_chains[g - 1].extend(chains[k - 1])
        else:
            out_chains.append(list(chains[k - 1]))
            out_inputs.append([group[j] for j in srcs])
            g = len(out_chains)
        group[k] = g
    return out_chains, out_inputs
