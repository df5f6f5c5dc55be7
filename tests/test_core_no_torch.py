"""The torch-free modules (compare, initializations, paper, graph) work with torch blocked."""

from __future__ import annotations

import subprocess
import sys
import textwrap


def _run(code: str) -> str:
    # A finder that refuses torch (``sys.modules["torch"] = None`` would break scipy,
    # which looks torch up in sys.modules); at the end torch must not have been loaded.
    prelude = (
        "import sys\n"
        "class _Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] == 'torch':\n"
        "            raise ImportError('torch is blocked')\n"
        "sys.meta_path.insert(0, _Block())\n"
    )
    check = "\nassert 'torch' not in sys.modules\n"
    out = subprocess.run(
        [sys.executable, "-c", prelude + textwrap.dedent(code) + check],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_compare_without_torch() -> None:
    out = _run(
        """
        import numpy as np
        from erftheory import Network
        from erftheory.compare import compare, total_variation
        from erftheory.layers import Conv
        print(total_variation(np.array([1.0, 1.0, 0.0]), np.array([0.0, 2.0, 2.0])))
        theory = Network([Conv(3)] * 2).profile()
        exact = theory.normalized()
        c = compare(theory, (exact, np.full(exact.shape, 0.01)))
        print(c.consistent, c.tv_distance)
        """
    )
    assert out.splitlines() == ["0.5", "True 0.0"]


def test_initializations_without_torch() -> None:
    out = _run(
        """
        from erftheory import Network
        from erftheory.initializations import (
            centre_low_variances, he_variances, variance_network, xavier_variances)
        from erftheory.layers import Conv
        print(he_variances((3, 3)).flat[0], xavier_variances(3).flat[0])
        print([str(v) for v in centre_low_variances((3, 3)).flat])
        net = variance_network(Network([Conv(3, stride=2), Conv(3)]))
        print([str(c) for c in net.profile("expected_square").coefficients])
        """
    )
    assert out.splitlines() == [
        "2/9 1/3",
        "['4/15', '1/5', '4/15', '1/5', '2/15', '1/5', '4/15', '1/5', '4/15']",
        "['4/9', '4/9', '8/9', '4/9', '8/9', '4/9', '4/9']",
    ]


def test_paper_network_without_torch() -> None:
    out = _run(
        """
        from erftheory.paper import REPLACED, REPLACED_DILATIONS, paper_network
        print(REPLACED, REPLACED_DILATIONS)
        print(paper_network(3, activation="relu"))
        sub = paper_network(15, stride_layers=REPLACED)
        dil = paper_network(15, dilations=dict(zip(REPLACED, REPLACED_DILATIONS)))
        print(sub.receptive_field.size, sub.receptive_field.jump, dil.receptive_field.size)
        """
    )
    # stride 2 at layers 3, 7, 11: 4 layers on grid 1, 4 on 2, 4 on 4, 3 on 8
    rf = 1 + 2 * (4 + 4 * 2 + 4 * 4 + 3 * 8)
    assert out.splitlines() == [
        "(3, 7, 11) (2, 4, 8)",
        "Network([Conv(3), ReLU(), Conv(3), ReLU(), Conv(3)])",
        f"({rf}, {rf}) (8, 8) (53, 53)",
    ]


def test_graph_without_torch() -> None:
    out = _run(
        """
        from erftheory.graph import dominators, reachable
        print(sorted(reachable([2], lambda n: [n - 1] if n else [])))
        print(sorted(dominators("ab", lambda n: ["a"] if n == "b" else [])["b"]))
        """
    )
    assert out.splitlines() == ["[0, 1, 2]", "['a', 'b']"]


def test_the_old_torch_paths_are_the_same_objects() -> None:
    import pytest

    pytest.importorskip("torch")
    from importlib import import_module

    new = {m: import_module(f"erftheory.{m}") for m in ("compare", "initializations", "paper")}
    # erftheory.torch.compare is also the name of the function, so look modules up by name
    old = {m: import_module(f"erftheory.torch.{m}") for m in ("compare", "init", "batched")}
    assert old["compare"].compare is new["compare"].compare
    assert old["compare"].total_variation is new["compare"].total_variation
    assert old["init"].he_variances is new["initializations"].he_variances
    assert old["init"].variance_network is new["initializations"].variance_network
    assert old["batched"].paper_network is new["paper"].paper_network
    assert import_module("erftheory.torch").paper_network is new["paper"].paper_network
