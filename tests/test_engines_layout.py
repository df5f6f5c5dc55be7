"""The engines subpackage: one table that selects and builds, one protocol, two sources.

`erftheory.engines.ENGINES` is checked as a table (each engine's rule, reason and
builder), the results against the `Result` protocol, `Network.profile` for building its
profile from the transfer polynomial without a `Kernel`, and the old module paths for
standing for the engine modules (reads, writes and a test's ``monkeypatch``).
"""

from __future__ import annotations

from fractions import Fraction

import flint
import numpy as np
import pytest
import sympy

import erftheory
from erftheory import Kernel, Network, profile
from erftheory.engines import (
    ENGINES,
    METHOD_NAMES,
    KernelPower,
    Result,
    TransferPolynomial,
    build,
    run,
    select,
)
from erftheory.layers import AvgPool, Conv, ReLU

_SOURCES = [
    KernelPower(Kernel([1, 2, 1]), 5),
    KernelPower(Kernel(["1/2", "1/3"]), 4),
    KernelPower(Kernel([0.25, 0.5, 0.25]), 6),
    KernelPower(Kernel([1.0, -2.0, 3.0]), 3),
    KernelPower(Kernel([[1.0, 0.0], [0.0, 1.0]]), 3),  # no positive corners: fft
    KernelPower(Kernel([[1, 2], [3, 5]]), 3),
    KernelPower(Kernel([sympy.Symbol("a"), 1]), 3),
]


@pytest.mark.parametrize("source", _SOURCES, ids=lambda s: f"{s.domain}-{s.shape}")
def test_exactly_one_auto_rule_picks_each_source(source) -> None:
    picked = [e.name for e in ENGINES.values() if e.auto(source) is not None]
    assert len(picked) == 1
    assert select(source, "auto") == (picked[0], ENGINES[picked[0]].auto(source))


def test_the_table_is_the_list_of_methods() -> None:
    assert METHOD_NAMES == ("auto", "exact", "fft", "float", "arb", "symbolic")
    from erftheory._engines import ENGINES as OLD
    from erftheory.profile import METHODS

    assert OLD is ENGINES and METHODS == METHOD_NAMES
    for name, engine in ENGINES.items():
        assert engine.name == name and engine.summary and engine.domains
        assert engine.module in ("exact", "fft", "tilted", "arb", "symbolic")


@pytest.mark.parametrize("name", sorted(ENGINES))
def test_every_engine_builds_a_result_of_the_protocol(name) -> None:
    source = KernelPower(Kernel([1, 2, 1]), 4)
    result: Result = ENGINES[name].build(source, 20 if name == "arb" else None)
    assert result.method == name and result.source is source
    assert result.shape == (9,) and result.origin == (4,)
    assert result.moments() == ((0,), ((2,),))  # n Var[X] = 4 * 1/2
    values = result.normalized()
    exact = [Fraction(c, 4**4) for c in (1, 8, 28, 56, 70, 56, 28, 8, 1)]
    assert np.allclose(values, [float(x) for x in exact], rtol=1e-12, atol=1e-15)
    assert result.check_index((3,), "coefficient") == (3,)
    assert result.coefficient((4,)) == pytest.approx(70, rel=1e-12)
    if name == "arb":
        assert result.ball((4,)).contains(flint.arb(70) / 256)
    else:
        with pytest.raises(erftheory.ERFValueError, match="needs method='arb'"):
            result.balls()


def test_run_selects_checks_dps_and_builds() -> None:
    r = run(KernelPower(Kernel([1, 1, 1]), 10), "arb")
    assert (r.method, r.dps, r.reason) == ("arb", 30, "requested")
    with pytest.raises(erftheory.ERFValueError, match="only used by method='arb'"):
        run(KernelPower(Kernel([1, 1, 1]), 10), "exact", dps=10)
    with pytest.raises(erftheory.ERFValueError, match="method must be one of"):
        build(KernelPower(Kernel([1, 1, 1]), 10), "auto")
    exact = run(KernelPower(Kernel([0.5, 0.25]), 3), "exact")  # floats read exactly
    assert exact.source.domain == "rational" and exact.total() == Fraction(27, 64)


def test_transfer_polynomial_reads_the_terms_in_integer_form() -> None:
    ctx = flint.fmpq_mpoly_ctx.get(("x", "y"), "lex")
    rep = ctx.from_dict({(0, 0): flint.fmpq(1, 2), (1, 2): 3, (2, 1): flint.fmpq(1, 3)})
    t = TransferPolynomial(rep, (3, 3))
    assert t.integer_form() == ([3, 0, 0, 0, 0, 18, 0, 2, 0], 6)
    assert t.domain == "rational" and t.origin == (1, 1) and t.total == Fraction(23, 6)
    k = t.kernel  # built only when asked for
    assert k.anchors == (1, 1) and k.flat == t.flat
    assert t.moments() == KernelPower(k, 1).moments()


_NETWORKS = [
    Network([Conv(Kernel([1, 1, 1])), AvgPool(2, stride=2), Conv(3)]),
    Network([Conv((3, 3)), ReLU()] * 3),
    Network([Conv(Kernel([[1, 2], [3, 6]]))] * 2),  # separable
    Network([Conv(Kernel(["1/2", 1, "1/3"])), Conv(3, dilation=2)]),
]


@pytest.mark.parametrize("net", _NETWORKS, ids=repr)
@pytest.mark.parametrize("kind", ["gradient", "expected_square"])
def test_network_profile_builds_no_kernel(net, kind, monkeypatch) -> None:
    """The transfer polynomial goes to the engine as it is: no `Kernel` of it is built,
    yet everything equals the profile of that `Kernel` taken once."""
    kernel = net.transfer(kind)
    reference = profile(kernel, 1)

    def refused(self):
        raise AssertionError("the network's profile built a Kernel of its transfer polynomial")

    monkeypatch.setattr(TransferPolynomial, "kernel", property(refused))
    p = net.profile(kind)
    assert p.coefficients == reference.coefficients
    assert p.engine_reason == reference.engine_reason and p.method == reference.method
    assert (p.mean, p.variance, p.total) == (reference.mean, reference.variance, reference.total)
    assert p.normalized().tolist() == reference.normalized().tolist()
    summary = p.summary()
    head = ["network", "kind", "jump", "offset"]
    assert list(summary)[:4] == head and summary["kind"] == kind
    rest = {k: v for k, v in reference.summary().items() if k not in ("kernel", "anchor", "layers")}
    assert {k: v for k, v in summary.items() if k not in head} == rest
    monkeypatch.undo()
    assert p.kernel == kernel  # the public attribute still answers, built on demand


def test_old_module_paths_stand_for_the_engine_modules(monkeypatch) -> None:
    import erftheory._arb as old_arb
    import erftheory._exact as old_exact
    import erftheory._fft as old_fft
    import erftheory._float as old_float
    from erftheory._exact import uniform_half  # noqa: F401 - the old from-import works
    from erftheory.engines import arb, exact, fft, tilted

    for old, new in ((old_exact, exact), (old_float, tilted), (old_fft, fft), (old_arb, arb)):
        assert old.__file__ != new.__file__
        assert all(getattr(old, n) is getattr(new, n) for n in new.__all__)
    monkeypatch.setattr(old_exact, "SUPPORT_WORK", 2)
    assert exact.SUPPORT_WORK == 2 and exact.in_power_support([1, 0, 1, 1], 5, 1)
    monkeypatch.undo()
    assert exact.SUPPORT_WORK == 1_000_000 and not exact.in_power_support([1, 0, 1, 1], 5, 1)
    assert old_exact.flint is flint  # restored, not deleted, by the undo
