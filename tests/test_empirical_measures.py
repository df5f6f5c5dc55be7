"""The measures of `EmpiricalERF`: moments, Gaussian fit, radial mass, mass shares, plot.

Every point estimate is checked against an independent route (an exact sampled Gaussian
with known widths and angle; numpy on the normalised map), every standard error against
the ratio-estimator linearisation computed directly from the per-sample maps, and the
standard errors as a whole against the spread of replicated measurements (Monte Carlo,
fixed seeds, within a stated number of standard errors).
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from erftheory import ERFValueError, Network  # noqa: E402
from erftheory.layers import Conv  # noqa: E402
from erftheory.torch.build import to_torch  # noqa: E402
from erftheory.torch.empirical import MAX_FEATURES, EmpiricalERF, empirical_erf  # noqa: E402
from erftheory.torch.map_measures import _layout  # noqa: E402

GRID_TOL = 1e-9  # exact sampled Gaussians: discretisation ~exp(-2 pi^2 sigma^2), tails < e^-30
FLOAT_TOL = 1e-12  # two float64 routes to one number
MC_SIGMAS = 4.0  # Monte Carlo checks hold within this many of their own standard errors
# A standard error that is 0 in exact arithmetic comes out of the quadratic form
# g^T Sigma_f g / N as about sqrt(eps) of the measure's scale (its terms cancel).
ZERO_SE_TOL = 1e-7


def pixel_sums(erf: EmpiricalERF) -> dict:
    """The arguments of `EmpiricalERF.from_sums` for ``erf``'s pixel sums (no features)."""
    names = ("count", "centre", "origin", "shift", "sum", "sum_sq", "total_shift")
    names += ("total_sum", "total_sum_sq", "cross_sum")
    return {
        "nonfinite": 0,
        "statistic": "mean",
        "channel_reduce": "sum",
        **{n: getattr(erf, n) for n in names},
    }


def rotated_gaussian(
    shape: tuple[int, int], centre: tuple[float, float], s1: float, s2: float, angle: float
) -> np.ndarray:
    """exp(-u²/2σ1² - v²/2σ2²), u along the major axis at ``angle`` from the column axis."""
    y, x = np.mgrid[0 : shape[0], 0 : shape[1]].astype(np.float64)
    dx, dy = x - centre[1], y - centre[0]
    u = dx * math.cos(angle) + dy * math.sin(angle)
    v = -dx * math.sin(angle) + dy * math.cos(angle)
    return np.exp(-0.5 * (u * u / (s1 * s1) + v * v / (s2 * s2)))


def analytic_cov(s1: float, s2: float, angle: float) -> np.ndarray:
    """The covariance in (row, column) order."""
    major = np.array([math.sin(angle), math.cos(angle)])
    minor = np.array([math.cos(angle), -math.sin(angle)])
    return s1 * s1 * np.outer(major, major) + s2 * s2 * np.outer(minor, minor)


# --------------------------------------------------------------------------- point values
@pytest.mark.parametrize("method", ["moments", "least_squares"])
def test_gaussian_fit_recovers_an_exact_sampled_gaussian(method: str) -> None:
    s1, s2, angle = 5.0, 2.5, 0.6
    g = rotated_gaussian((91, 87), (44.0, 42.5), s1, s2, angle)
    erf = EmpiricalERF.from_samples(np.stack([g, 2 * g, 3 * g]), origin=(45, 43))
    fit = erf.gaussian(method)
    assert fit.method == method
    np.testing.assert_allclose(fit.centre, (44.0, 42.5), rtol=0, atol=GRID_TOL)
    np.testing.assert_allclose(fit.sigma, (s1, s2), rtol=GRID_TOL)
    assert fit.angle == pytest.approx(angle, abs=GRID_TOL)
    np.testing.assert_allclose(fit.covariance, analytic_cov(s1, s2, angle), atol=GRID_TOL)
    cov = analytic_cov(s1, s2, angle)
    assert fit.sigma_y == pytest.approx(math.sqrt(cov[0, 0]), rel=GRID_TOL)
    assert fit.sigma_x == pytest.approx(math.sqrt(cov[1, 1]), rel=GRID_TOL)
    assert fit.r_squared == pytest.approx(1.0, abs=1e-12)
    # three multiples of one map: no spread, so every standard error is 0 (or NaN)
    if method == "moments":
        assert max(fit.sigma_stderr) < ZERO_SE_TOL * s1
        assert fit.angle_stderr < ZERO_SE_TOL
    else:
        assert all(math.isnan(v) for v in (*fit.sigma_stderr, fit.angle_stderr))


def test_gaussian_angle_convention_and_quadrants() -> None:
    for angle in (-1.2, -0.3, 0.0, 0.45, 1.5):
        g = rotated_gaussian((97, 97), (48.0, 48.0), 6.0, 2.0, angle)
        fit = EmpiricalERF.from_samples(g[None]).gaussian()
        assert fit.angle == pytest.approx(angle, abs=GRID_TOL)
    # a map elongated along the rows (axis 0) is at pi/2
    g = rotated_gaussian((97, 97), (48.0, 48.0), 6.0, 2.0, math.pi / 2)
    fit = EmpiricalERF.from_samples(g[None]).gaussian()
    assert abs(fit.angle) == pytest.approx(math.pi / 2, abs=GRID_TOL)
    assert fit.sigma_y == pytest.approx(6.0, rel=GRID_TOL)


def test_gaussian_in_one_dimension() -> None:
    x = np.arange(61) - 28.0
    erf = EmpiricalERF.from_samples(np.exp(-0.5 * (x / 3.0) ** 2)[None])
    fit = erf.gaussian()
    assert fit.sigma[0] == pytest.approx(3.0, rel=GRID_TOL)
    assert fit.centre[0] == pytest.approx(28.0, abs=GRID_TOL) and fit.angle == 0.0


def test_moments_match_numpy_on_the_normalised_map() -> None:
    rng = np.random.default_rng(1)
    maps = rng.gamma(2.0, 1.0, size=(12, 17, 23))
    erf = EmpiricalERF.from_samples(maps, origin=(4, 19))
    p = maps.mean(0) / maps.mean(0).sum()
    y, x = np.mgrid[0:17, 0:23]
    coords = np.stack([y.ravel(), x.ravel()])
    mean = coords @ p.ravel()
    cov = np.cov(coords, aweights=p.ravel(), bias=True)
    mom = erf.moments()
    np.testing.assert_allclose(mom.mean, mean, rtol=FLOAT_TOL)
    np.testing.assert_allclose(mom.covariance, cov, rtol=FLOAT_TOL)
    assert mom.variance == pytest.approx(tuple(np.diag(cov)), rel=FLOAT_TOL)
    assert mom.count == 12


def test_radial_mass_matches_a_numpy_disc() -> None:
    rng = np.random.default_rng(2)
    maps = rng.gamma(1.5, 1.0, size=(9, 20, 31))
    origin = (7, 20)
    erf = EmpiricalERF.from_samples(maps, origin=origin)
    p = maps.mean(0) / maps.mean(0).sum()
    y, x = np.mgrid[0:20, 0:31]
    dist = np.hypot(y - origin[0], x - origin[1])
    radii = [0, 1, 2, 5, 10, 20, 200]
    curve = erf.radial_mass(radii)
    expected = [p[dist <= r].sum() for r in radii]
    np.testing.assert_allclose(curve.mass, expected, rtol=FLOAT_TOL)
    assert curve.radius.tolist() == radii and curve.mass[-1] == pytest.approx(1.0)
    full = erf.radial_mass()
    assert full.radius.tolist() == list(range(len(full.radius)))
    assert full.mass[-1] == pytest.approx(1.0) and (np.diff(full.mass) >= 0).all()
    # at a radius whose square is a sum of two squares the boundary pixels count
    assert full.mass[5] == pytest.approx(p[dist <= 5.0].sum(), rel=FLOAT_TOL)


def test_radial_mass_agrees_with_openerf_about_the_middle_pixel() -> None:
    from erftheory.torch.models import import_timm

    try:
        import_timm()  # OpenERF imports timm, which imports torchvision
    except ImportError:
        pytest.skip("OpenERF needs timm")
    metrics = pytest.importorskip("openerf.metrics")
    rng = np.random.default_rng(3)
    m = rng.gamma(1.5, 1.0, size=(33, 40))
    erf = EmpiricalERF.from_samples(m[None], origin=(16, 20))  # OpenERF's (h // 2, w // 2)
    radii = (5, 10, 20, 30)
    theirs = metrics.compute_erf_metrics(m, radii=radii)["radial_cumulative_mass"]
    ours = erf.radial_mass(radii).mass
    np.testing.assert_allclose(ours, [theirs[str(r)] for r in radii], rtol=FLOAT_TOL)


def replknet_side(data: np.ndarray, share: float) -> int:
    """RepLKNet's analyze_erf.get_rectangle without its log transform (>= instead of >)."""
    h, w = data.shape
    total = data.sum()
    for i in range(0, h // 2 + 1):
        if data[h // 2 - i : h // 2 + 1 + i, w // 2 - i : w // 2 + 1 + i].sum() / total >= share:
            return 2 * i + 1
    raise AssertionError("no square holds the share")


def test_mass_shares_follow_the_replknet_square_rule() -> None:
    g = rotated_gaussian((61, 61), (30.0, 30.0), 7.0, 4.0, 0.3)
    erf = EmpiricalERF.from_samples(g[None], origin=(30, 30))
    shares = erf.mass_shares()
    assert [s.share for s in shares] == [0.2, 0.3, 0.5, 0.99]
    for s in shares:
        assert s.side == replknet_side(g, s.share)
        assert s.pixels == s.side**2 and s.area_ratio == pytest.approx(s.side**2 / 61**2)
        assert s.side - 2 < s.width <= s.side  # the interpolated side lies in the last step
    # widths grow with the share
    assert all(a.width < b.width for a, b in itertools.pairwise(shares))


def test_mass_share_width_by_hand() -> None:
    # masses 1, 2, 1 (total 4) about the middle: Q(0) = 1/2, Q(1) = 1; half-widths 1/2, 3/2
    erf = EmpiricalERF.from_samples(np.array([[1.0, 2.0, 1.0]]) * np.ones((2, 1)))
    (quarter, three_q, whole) = erf.mass_shares((0.25, 0.75, 1.0))
    assert quarter.side == 1 and quarter.width == pytest.approx(0.5)  # 2 * (0 + 1/2 * 1/2)
    assert three_q.side == 3 and three_q.width == pytest.approx(2.0)  # 2 * (1/2 + 1/2)
    assert whole.side == 3 and whole.width == pytest.approx(3.0)
    # a square clipped by the map's border counts its pixels inside the map
    edge = EmpiricalERF.from_samples(np.ones((1, 4, 4)), origin=(0, 0))
    (s,) = edge.mass_shares((0.5,))
    assert s.side == 5 and s.pixels == 9 and s.area_ratio == pytest.approx(9 / 16)


# --------------------------------------------------------------------------- standard errors
def linearised_stderr(residuals: np.ndarray, totals: np.ndarray) -> float:
    """The ratio estimator's delta-method standard error from its per-sample residuals."""
    n = residuals.shape[0]
    return float(residuals.std(ddof=1) / (math.sqrt(n) * totals.mean()))


def test_stderrs_equal_the_linearisation_of_the_per_sample_maps() -> None:
    rng = np.random.default_rng(4)
    n = 40
    base = rotated_gaussian((25, 29), (12.0, 14.0), 4.0, 2.0, 0.5)
    maps = base[None] * rng.gamma(3.0, 1.0, size=(n, 1, 1)) + rng.gamma(0.5, 0.05, (n, 25, 29))
    origin = (12, 14)
    erf = EmpiricalERF.from_samples(maps, origin=origin)
    y, x = np.mgrid[0:25, 0:29].astype(np.float64)
    coords = (y, x)
    totals = maps.sum(axis=(1, 2))
    mom = erf.moments()
    for i in range(2):
        res = (maps * (coords[i] - mom.mean[i])).sum(axis=(1, 2))
        assert mom.mean_stderr[i] == pytest.approx(linearised_stderr(res, totals), rel=1e-9)
        for j in range(2):
            infl = (coords[i] - mom.mean[i]) * (coords[j] - mom.mean[j]) - mom.covariance[i, j]
            res = (maps * infl).sum(axis=(1, 2))
            assert mom.covariance_stderr[i, j] == pytest.approx(
                linearised_stderr(res, totals), rel=1e-9
            )
    dist = np.hypot(y - origin[0], x - origin[1])
    curve = erf.radial_mass([1, 3, 6])
    for r, mass, se in zip((1, 3, 6), curve.mass, curve.stderr, strict=True):
        res = maps[:, dist <= r].sum(1) - mass * totals
        assert se == pytest.approx(linearised_stderr(res, totals), rel=1e-9)
    # the moment Gaussian's axis widths are sqrt(C_ii): se = se(C_ii) / (2 sqrt(C_ii))
    fit = erf.gaussian()
    for i in range(2):
        expected = mom.covariance_stderr[i, i] / (2 * math.sqrt(mom.covariance[i, i]))
        assert fit.sigma_axis_stderr[i] == pytest.approx(expected, rel=1e-9)
    assert fit.centre_stderr == pytest.approx(mom.mean_stderr, rel=1e-12)


def test_stderrs_are_calibrated_against_replicated_measurements() -> None:
    """Reported standard errors against the spread of 300 independent replicates."""
    rng = np.random.default_rng(5)
    reps, n = 300, 30
    names = ("mean_y", "var_x", "sigma_1", "sigma_2", "angle", "mass_r5", "width_50")
    est: dict[str, list[float]] = {k: [] for k in names}
    se: dict[str, list[float]] = {k: [] for k in names}
    for _ in range(reps):
        dy, dx = rng.normal(0, 1.0, (2, n))
        s1 = rng.uniform(4.0, 5.0, n)
        amp = rng.gamma(4.0, 0.25, n)
        maps = np.empty((n, 41, 41))
        for k in range(n):
            maps[k] = amp[k] * rotated_gaussian((41, 41), (20 + dy[k], 20 + dx[k]), s1[k], 2.5, 0.5)
        erf = EmpiricalERF.from_samples(maps, origin=(20, 20))
        mom, fit = erf.moments(), erf.gaussian()
        mass = erf.radial_mass([5])
        (half,) = erf.mass_shares((0.5,))
        values = (
            (mom.mean[0], mom.mean_stderr[0]),
            (mom.covariance[1, 1], mom.covariance_stderr[1, 1]),
            (fit.sigma[0], fit.sigma_stderr[0]),
            (fit.sigma[1], fit.sigma_stderr[1]),
            (fit.angle, fit.angle_stderr),
            (mass.mass[0], mass.stderr[0]),
            (half.width, half.width_stderr),
        )
        for k, (v, s) in zip(names, values, strict=True):
            est[k].append(v)
            se[k].append(s)
    # the sample SD of R replicates has relative standard error about 1 / sqrt(2 R)
    band = MC_SIGMAS / math.sqrt(2 * reps)
    for k in names:
        spread = float(np.std(est[k], ddof=1))
        reported = float(np.sqrt(np.mean(np.square(se[k]))))
        assert abs(math.log(reported / spread)) < band, (k, reported, spread)


def test_no_spread_means_zero_stderr_and_one_sample_means_nan() -> None:
    net = Network([Conv(3), Conv(3)])
    erf = empirical_erf(to_torch(net), (1, 15), statistic="mean", batch_size=4)
    mom = erf.moments()
    assert mom.mean == pytest.approx((7.0,)) and mom.mean_stderr == (0.0,)
    assert mom.covariance[0, 0] == pytest.approx(4 / 3)  # two uniform 3-taps: 2 * 2/3
    single = EmpiricalERF.from_samples(np.ones((1, 5)))
    assert math.isnan(single.moments().mean_stderr[0])
    assert math.isnan(single.radial_mass().stderr[0])


def test_measured_erfs_carry_features_and_merge_keeps_them() -> None:
    rng = np.random.default_rng(6)
    maps = rng.gamma(2.0, 1.0, size=(20, 11, 13))
    whole = EmpiricalERF.from_samples(maps)
    parts = EmpiricalERF.from_samples(maps[:7]).merge(EmpiricalERF.from_samples(maps[7:]))
    a, b = whole.moments(), parts.moments()
    np.testing.assert_allclose(a.mean_stderr, b.mean_stderr, rtol=1e-10)
    np.testing.assert_allclose(a.covariance_stderr, b.covariance_stderr, rtol=1e-10)
    np.testing.assert_allclose(
        whole.radial_mass().stderr, parts.radial_mass().stderr, rtol=1e-9, atol=ZERO_SE_TOL
    )
    # without features (from_sums of the pixel sums only) the point values stay, errors NaN
    bare = EmpiricalERF.from_sums(**pixel_sums(whole))
    assert bare.moments().mean == pytest.approx(a.mean, rel=1e-12)
    assert all(math.isnan(v) for v in bare.moments().mean_stderr)
    assert bare.merge(whole).feature_sum is None
    with pytest.raises(ERFValueError, match="have length"):
        EmpiricalERF.from_sums(
            **pixel_sums(whole),
            feature_shift=np.zeros(3),
            feature_sum=np.zeros(3),
            feature_cross=np.zeros((3, 3)),
        )


def test_maps_with_too_many_rings_keep_moments_only() -> None:
    n = 2 * MAX_FEATURES
    assert not _layout((n,), (n // 2,)).rings
    rng = np.random.default_rng(7)
    erf = EmpiricalERF.from_samples(rng.gamma(2.0, 1.0, size=(5, n)))
    assert erf.feature_sum is not None and erf.feature_sum.shape == (3,)  # T, X, XX
    assert not math.isnan(erf.moments().mean_stderr[0])
    curve = erf.radial_mass([10])
    assert math.isnan(curve.stderr[0]) and 0 < curve.mass[0] < 1


def test_from_samples_counts_nonfinite_samples() -> None:
    maps = np.ones((4, 5))
    maps[1, 2] = np.nan
    maps[3, 0] = np.inf
    erf = EmpiricalERF.from_samples(maps)
    assert erf.count == 2 and erf.nonfinite == 2
    assert erf.map.tolist() == [1.0] * 5


def test_measure_errors() -> None:
    signed = EmpiricalERF.from_samples(np.array([[1.0, -2.0, 0.5]]))
    for call in (signed.moments, signed.gaussian, signed.radial_mass, signed.mass_shares):
        with pytest.raises(ERFValueError, match="positive sum"):
            call()
    ok = EmpiricalERF.from_samples(np.ones((2, 3, 3)))
    with pytest.raises(ERFValueError, match=r"shares must be numbers in \(0, 1\]"):
        ok.mass_shares((0.0,))
    with pytest.raises(ERFValueError, match="non-negative ints"):
        ok.radial_mass([1.5])
    with pytest.raises(ERFValueError, match="'moments' or 'least_squares'"):
        ok.gaussian("lsq")  # type: ignore[arg-type]
    with pytest.raises(ERFValueError, match="1-D and 2-D"):
        EmpiricalERF.from_samples(np.ones((2, 3, 3, 3))).gaussian()
    with pytest.raises(ERFValueError, match="not a pixel"):
        EmpiricalERF.from_samples(np.ones((2, 3)), origin=(3,))
    with pytest.raises(ERFValueError, match=r"\(N, \*spatial\)"):
        EmpiricalERF.from_samples(np.ones(3))


# --------------------------------------------------------------------------- plot
def test_plot_shows_the_normalised_map_the_origin_and_the_ellipses() -> None:
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    g = rotated_gaussian((31, 35), (15.0, 17.0), 5.0, 2.0, 0.4)
    erf = EmpiricalERF.from_samples(np.stack([g, 1.1 * g]), origin=(15, 17))
    ax = erf.plot()
    (img,) = ax.get_images()
    np.testing.assert_allclose(np.asarray(img.get_array()), g / g.sum(), rtol=1e-12)
    assert len(ax.patches) == 2  # the 1 sigma and 2 sigma ellipses
    assert ax.patches[0].width == pytest.approx(2 * erf.gaussian().sigma[0], rel=1e-12)
    plt.close(ax.figure)
    ax = erf.plot(log=True, gaussian=False, title="log")
    assert ax.get_title() == "log" and not ax.patches
    plt.close(ax.figure)
    line = EmpiricalERF.from_samples(np.array([[0.0, 1.0, 2.0, 1.0], [0.0, 1.5, 2.0, 0.5]]))
    ax = line.plot()
    np.testing.assert_allclose(ax.lines[0].get_ydata(), line.map / line.map.sum())
    plt.close(ax.figure)


def test_from_samples_reads_a_read_only_array_without_warning() -> None:
    import warnings

    maps = np.array([[0.0, 1.0, 0.0], [0.0, 3.0, 2.0]])
    maps.setflags(write=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        erf = EmpiricalERF.from_samples(maps)
    assert erf.map.tolist() == [0.0, 2.0, 1.0]
