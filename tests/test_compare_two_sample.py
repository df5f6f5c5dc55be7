"""`compare` of two measured maps, each with its own standard error (the two-sample mode)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from erftheory import ERFValueError
from erftheory.compare import compare

torch = pytest.importorskip("torch")

from erftheory import Network  # noqa: E402
from erftheory.layers import Conv, ReLU  # noqa: E402
from erftheory.torch.build import to_torch  # noqa: E402
from erftheory.torch.empirical import EmpiricalERF, empirical_erf  # noqa: E402

MC_SIGMAS = 3.0  # Monte Carlo rates hold within this many binomial standard errors


def test_two_sample_z_uses_both_variances() -> None:
    rng = np.random.default_rng(0)
    a = EmpiricalERF.from_samples(rng.gamma(2.0, 1.0, size=(30, 9)))
    b = EmpiricalERF.from_samples(rng.gamma(2.0, 1.0, size=(50, 9)))
    result = compare(a, b)
    pa, sa = a.normalized()
    pb, sb = b.normalized()
    np.testing.assert_allclose(result.z, (pb - pa) / np.sqrt(sa**2 + sb**2), rtol=1e-12)
    assert result.two_sample and result.tested == 9 and result.start == (0,)
    np.testing.assert_allclose(result.theory_stderr, sa, rtol=1e-15)
    # Šidák over 9 pixels at 0.99, Student's t with min(30, 50) - 1 degrees of freedom
    per = 1 - 0.99 ** (1 / 9)
    assert result.critical_z == pytest.approx(stats.t.isf(per / 2, df=29), rel=1e-12)
    assert "two-sample" in str(result) and "measured / reference" in str(result)
    # a (map, stderr) pair is a measurement of unknown count: the normal quantile
    pair = compare((a.map, a.stderr), b)
    assert pair.two_sample
    assert pair.critical_z == pytest.approx(stats.norm.isf(per / 2), rel=1e-12)
    raw = compare(a, b, normalize=False)
    np.testing.assert_allclose(raw.z, (b.map - a.map) / np.hypot(a.stderr, b.stderr), rtol=1e-12)


def test_two_sample_false_rejection_rate_is_at_most_alpha() -> None:
    """Pairs of measurements of one distribution: the two-sample test rejects at most
    alpha of them (up to Monte Carlo error); taking one map as exact theory does not."""
    rng = np.random.default_rng(1)
    pairs, n, confidence = 200, 40, 0.9
    base = np.exp(-0.5 * ((np.arange(15) - 7.0) / 3.0) ** 2)
    two = one = 0
    for _ in range(pairs):
        a = EmpiricalERF.from_samples(base * rng.gamma(5.0, 0.2, size=(n, 15)))
        b = EmpiricalERF.from_samples(base * rng.gamma(5.0, 0.2, size=(n, 15)))
        two += not compare(a, b, confidence=confidence).consistent
        one += not compare(a.map, b, confidence=confidence).consistent
    alpha = 1 - confidence
    limit = alpha + MC_SIGMAS * math.sqrt(alpha * (1 - alpha) / pairs)
    assert two / pairs <= limit
    # the noise of the 'theory' ignored: z-scores too large by about sqrt(2)
    assert one / pairs > 3 * alpha


def small_random_model(seed: int, width: int) -> torch.nn.Module:
    net = Network([Conv(width), ReLU(), Conv(3)])
    return to_torch(net, weights="random", generator=torch.Generator().manual_seed(seed))


def test_two_measurements_of_one_model_are_consistent_and_of_two_models_not() -> None:
    model = small_random_model(3, 3)
    kwargs = {"statistic": "mean_square", "batch_size": 400}
    first = empirical_erf(model, (1, 21), seed=10, **kwargs)
    again = empirical_erf(model, (1, 21), seed=11, **kwargs)
    result = compare(first, again)
    assert result.two_sample and result.consistent, str(result)
    other = empirical_erf(small_random_model(4, 7), (1, 21), seed=12, **kwargs)
    differs = compare(first, other)
    assert not differs.consistent and differs.failing > 0


def test_two_sample_errors() -> None:
    rng = np.random.default_rng(2)
    a = EmpiricalERF.from_samples(rng.gamma(2.0, 1.0, size=(5, 7)))
    b = EmpiricalERF.from_samples(rng.gamma(2.0, 1.0, size=(5, 8)))
    with pytest.raises(ERFValueError, match="one shape"):
        compare(a, b)
    with pytest.raises(ERFValueError, match="start= places a theory grid"):
        compare(a, a, start=1)
    single = EmpiricalERF.from_samples(np.ones((1, 7)))
    with pytest.raises(ERFValueError, match="theory standard error has NaNs"):
        compare(single, a)
    with pytest.raises(ERFValueError, match="stderr= is only for an array"):
        compare(a, a, stderr=np.ones(7))
