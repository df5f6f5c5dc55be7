"""Measured ERFs (`erftheory.torch.empirical`) against the exact theory (`compare`).

1. Fixed linear networks: the signed mean gradient equals `Network.profile()` exactly
   (float64, 1e-12 of the peak), in 1-D and 2-D, with strides, dilation and residuals.
2. Random zero-mean weights: the mean squared gradient over many networks matches
   ``kind="expected_square"`` by `compare`'s test at 99 %, and wrong theories fail it.
3. ReLU networks: the total variation distance to the independence prediction is
   reported (printed), not bounded by a guessed tolerance.
4. Bookkeeping: statistics and standard errors on hand-checkable models, NaN samples,
   batch norm in train mode, merge and `torch.distributed` all-reduce, CUDA, errors.

Many random networks are sampled at once with ``to_torch(..., copies=G)``: one model
holds $G$ independent networks as channel groups, and with ``channel_reduce="sum_after"``
and ``statistic="mean_square"`` one sample is $\\sum_g g_g^2$, whose mean is $G$ times
the expected square of one network.
"""

from __future__ import annotations

import math
import pickle
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from torch import nn  # noqa: E402

import erftheory  # noqa: E402
from erftheory import (  # noqa: E402
    ERFTypeError,
    ERFValueError,
    Kernel,
    Network,
    SizeLimitError,
    profile,
)
from erftheory.layers import AvgPool, Conv, ReLU, Residual  # noqa: E402
from erftheory.torch.build import to_torch  # noqa: E402
from erftheory.torch.compare import Comparison, compare, total_variation  # noqa: E402
from erftheory.torch.empirical import EmpiricalERF, empirical_erf  # noqa: E402

F64 = torch.float64
REL = 1e-12


def _axes(x: Any, nd: int) -> tuple[int, ...]:
    return (x,) if nd == 1 else tuple(x)


def exact_map(net: Network, n: Any, kind: str = "gradient") -> np.ndarray:
    """The exact ERF of the centre output unit, placed on an input of size ``n``."""
    nd = net.ndim
    values = np.vectorize(float, otypes=[float])(np.array(net.transfer(kind).weights, object))
    rf = net.receptive_field
    c = _axes(net.centre_output(n), nd)
    start = [
        o + j * ci for o, j, ci in zip(_axes(rf.offset, nd), _axes(rf.jump, nd), c, strict=True)
    ]
    out = np.zeros(_axes(n, nd))
    out[tuple(slice(s, s + t) for s, t in zip(start, values.shape, strict=True))] = values
    return out


def random_factory(net: Network, copies: int = 1):
    def factory(run: int, gen: torch.Generator) -> nn.Module:
        return to_torch(net, weights="random", generator=gen, copies=copies)

    return factory


# --------------------------------------------------------------------------- 1. exact
FIXED_NETS = {
    "1d-stride-dilation-residual": Network(
        [
            Conv(Kernel([1, 2, 1])),
            Conv(3, stride=2),
            Conv(Kernel([1, -1, 2]), dilation=2),
            Residual(Conv(3), Conv(Kernel([2, 1]))),
            AvgPool(2, stride=2),
            Conv(Kernel([3, -1, 1])),
        ]
    ),
    "2d-stride-dilation-residual": Network(
        [
            Conv(Kernel([[1, 2, 1], [0, 1, -1], [2, 0, 1]])),
            Conv((3, 3), stride=(2, 1)),
            Residual(Conv((3, 3), dilation=(1, 2)), shortcut=[Conv(Kernel([[2]]))]),
            AvgPool((2, 2), stride=2),
            Conv(Kernel([[1, -1], [1, 3]])),
        ]
    ),
}


@pytest.mark.parametrize("name", sorted(FIXED_NETS))
@pytest.mark.parametrize("extra", [0, 3])
def test_fixed_linear_network_is_exact(name: str, extra: int) -> None:
    net = FIXED_NETS[name]
    n = tuple(m + extra for m in _axes(net.min_input_size(), net.ndim))
    size = n[0] if net.ndim == 1 else n
    erf = empirical_erf(to_torch(net), (1, *n), statistic="mean", batch_size=3, runs=2)
    expected = exact_map(net, size)
    peak = np.abs(expected).max()
    assert isinstance(erf, EmpiricalERF)
    assert erf.shape == n and erf.count == 6 and erf.nonfinite == 0
    assert erf.centre == _axes(net.centre_output(size), net.ndim)
    np.testing.assert_allclose(erf.map, expected, rtol=0, atol=REL * peak)
    # The gradient does not depend on the input: every sample is the same.
    assert float(np.abs(erf.stderr).max()) <= REL * peak
    # compare() places the NetworkProfile on the RF of the measured unit by itself.
    result = compare(net.profile(), erf, normalize=False)
    assert result.consistent and result.failing == 0
    assert result.tv_distance <= REL
    # origin: the RF's centre pixel.
    rf = net.receptive_field
    origin = tuple(
        o + j * c + (s - 1) // 2
        for o, j, c, s in zip(
            _axes(rf.offset, net.ndim),
            _axes(rf.jump, net.ndim),
            erf.centre,
            _axes(rf.size, net.ndim),
            strict=True,
        )
    )
    assert erf.origin == origin


def test_statistics_of_a_signed_gradient() -> None:
    net = Network([Conv(Kernel([1, -2, 3])), Conv(Kernel([2, 0, -1]))])
    g = exact_map(net, 9)
    model = to_torch(net)
    expected = {"mean": g, "mean_square": g * g, "mean_abs": np.abs(g), "relu": np.maximum(g, 0)}
    for stat, want in expected.items():
        erf = empirical_erf(model, (1, 9), statistic=stat, batch_size=2)
        assert erf.statistic == stat
        np.testing.assert_allclose(erf.map, want, rtol=0, atol=1e-12 * np.abs(want).max())


def test_channels_sum_and_sum_after() -> None:
    # 3 channels, every pair gets kernel/3, and the unit gradient seeds all 3 output
    # channels: every input channel's gradient is the 1-channel ERF g, so the
    # channel-summed gradient is 3 g.
    net = Network([Conv(Kernel([1, -2, 3])), Conv(3)])
    model = to_torch(net, channels=3)
    g = exact_map(net, 9)
    summed = empirical_erf(model, (3, 9), statistic="mean_square", batch_size=2)
    after = empirical_erf(
        model, (3, 9), statistic="mean_square", batch_size=2, channel_reduce="sum_after"
    )
    np.testing.assert_allclose(summed.map, 9 * g * g, atol=1e-11 * (g * g).max())
    np.testing.assert_allclose(after.map, 3 * g * g, atol=1e-11 * (g * g).max())
    assert after.channel_reduce == "sum_after"


def test_mean_and_stderr_by_hand() -> None:
    # y = x**2 elementwise: the gradient of the centre output is 2 x at the centre only.
    class Square(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x * x

    x = torch.tensor([0.5, -1.0, 2.0, 1.5, -0.25], dtype=F64).reshape(5, 1, 1) * torch.ones(
        5, 1, 7, dtype=F64
    )
    erf = empirical_erf(Square(), inputs=x, statistic="mean_square", batch_size=2)
    q = (2 * x[:, 0, 3].numpy()) ** 2
    assert erf.count == 5 and erf.centre == (3,) and erf.origin == (3,)
    assert erf.map[3] == pytest.approx(q.mean(), rel=1e-14)
    assert erf.stderr[3] == pytest.approx(q.std(ddof=1) / math.sqrt(5), rel=1e-12)
    assert np.all(np.delete(erf.map, 3) == 0) and np.all(np.delete(erf.stderr, 3) == 0)
    p, se = erf.normalized()
    assert p[3] == 1.0 and np.all(se == 0)
    # signed mean through an iterable of (x, y) batches; output_index moves the unit
    batches = [(x[:2], 0), (x[2:], 1)]
    erf = empirical_erf(Square(), inputs=batches, statistic="mean", output_index=1)
    assert erf.centre == (1,) and erf.count == 5
    assert erf.map[1] == pytest.approx(2 * x[:, 0, 1].numpy().mean(), rel=1e-14)


def test_normalized_stderr_matches_resampling() -> None:
    # The delta-method standard error of the normalised map against the spread of the
    # normalised maps of 40 independent measurements.
    net = Network([Conv(3), ReLU(), Conv(3)])
    model = to_torch(net, weights="random", generator=torch.Generator().manual_seed(3))
    maps, ses = [], []
    for seed in range(40):
        erf = empirical_erf(model, (1, 7), runs=1, batch_size=50, seed=seed)
        p, se = erf.normalized()
        maps.append(p)
        ses.append(se)
    spread = np.std(maps, axis=0, ddof=1)
    inside = spread > 0
    ratio = np.mean(ses, axis=0)[inside] / spread[inside]
    print("delta-method stderr / resampled spread per pixel:", np.round(ratio, 3))
    assert np.all((ratio > 0.6) & (ratio < 1.6))


# --------------------------------------------------------------------------- 2. random
RANDOM_1D = Network([Conv(3), AvgPool(2, stride=1), AvgPool(2, stride=1), Conv(Kernel([1, 2, 1]))])


def test_random_weights_match_expected_square_1d() -> None:
    net = RANDOM_1D
    n = net.min_input_size() + 2
    copies = 64
    erf = empirical_erf(
        random_factory(net, copies),
        (copies, n),
        runs=300,
        statistic="mean_square",
        channel_reduce="sum_after",
        seed=1,
    )
    assert erf.count == 300 and erf.nonfinite == 0
    theory = net.profile(kind="expected_square")
    result = compare(theory, erf, confidence=0.99)
    print(result)
    assert isinstance(result, Comparison)
    assert result.consistent, str(result)
    assert result.tested == int(np.count_nonzero(result.theory))
    assert 0 <= result.tv_distance < 0.05
    # exact scale: each sample is a sum over the copies
    scaled = copies * exact_map(net, n, "expected_square")
    raw = compare(scaled, (erf.map, erf.stderr), normalize=False)
    assert raw.consistent, str(raw)
    # wrong theories: the fixed-weight profile (the two averaging pools add coherently,
    # so it is wider than the expected square) and the profile of another kernel
    wrong = compare(net.profile(kind="gradient"), erf)
    print(wrong)
    assert not wrong.consistent and wrong.failing > 0
    assert total_variation(wrong.theory, result.theory) > 0.01
    other = Network([Conv(3), AvgPool(2, stride=1), AvgPool(2, stride=1), Conv(3)])
    assert not compare(other.profile(kind="expected_square"), erf).consistent


def test_random_weights_one_network_per_run() -> None:
    # The plain route: a new to_torch network per run and the channel-summed squared
    # gradient. With C channels every tap's gradient sums C**(L-1) paths, which keeps
    # the squared gradient's tail light enough for the central limit theorem at 1000
    # samples (with C = 1 it is a product of chi-squares and z-scores are skewed).
    # Seeding all C output channels multiplies the expected square by C.
    net = Network([Conv(3), Residual(Conv(Kernel([1, 2]))), Conv(3, stride=2)])
    n = net.min_input_size()
    channels = 8

    def factory(run: int, gen: torch.Generator) -> nn.Module:
        return to_torch(net, weights="random", generator=gen, channels=channels)

    erf = empirical_erf(factory, (channels, n), runs=1000, seed=5)
    assert erf.count == 1000
    theory = net.profile(kind="expected_square")
    result = compare(theory, erf)
    print(result)
    assert result.consistent, str(result)
    raw = compare(
        channels * exact_map(net, n, "expected_square"), (erf.map, erf.stderr), normalize=False
    )
    assert raw.consistent, str(raw)
    assert raw.tested == n


def test_random_weights_match_expected_square_2d() -> None:
    net = Network(
        [
            Conv((3, 3)),
            AvgPool((2, 2), stride=1),
            AvgPool((2, 2), stride=1),
            Conv(Kernel([[1, 2], [2, 1]])),
        ]
    )
    n = net.min_input_size()
    copies = 32
    erf = empirical_erf(
        random_factory(net, copies),
        (copies, *n),
        runs=150,
        channel_reduce="sum_after",
        seed=2,
    )
    result = compare(net.profile(kind="expected_square"), erf)
    print(result)
    assert result.consistent, str(result)
    assert len(result.variance_ratio) == 2
    wrong = compare(net.profile(kind="gradient"), erf)
    print(wrong)
    assert not wrong.consistent


# --------------------------------------------------------------------------- 3. ReLU
def test_relu_network_against_the_independence_prediction() -> None:
    net = Network([Conv(3), ReLU(), Conv(3), ReLU(), Conv(3), ReLU(), Conv(3)])
    n = net.min_input_size() + 4
    copies = 32
    erf = empirical_erf(
        random_factory(net, copies),
        (copies, n),
        runs=150,
        batch_size=4,
        channel_reduce="sum_after",
        seed=4,
    )
    result = compare(net.profile(kind="expected_square"), erf)
    tv = result.tv_distance
    print(f"ReLU network, {erf.count} runs of {copies} networks x 4 inputs:")
    print(result)
    assert isinstance(tv, float) and math.isfinite(tv) and 0.0 <= tv <= 1.0
    assert all(math.isfinite(r) and r > 0 for r in result.variance_ratio)


# --------------------------------------------------------------------------- 4. bookkeeping
class NaNForPositiveFirstPixel(nn.Module):
    """A convolution whose output (and gradient) is NaN when the first input pixel is > 0."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv1d(1, 1, 3, padding=1, bias=False, dtype=F64)
        with torch.no_grad():
            self.conv.weight.copy_(torch.tensor([[[1.0, 2.0, 1.0]]], dtype=F64))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bad = x[:, :1, :1] > 0
        gate = torch.where(
            bad, torch.full_like(x[:, :1, :1], math.nan), torch.ones_like(x[:, :1, :1])
        )
        return self.conv(x) * gate


def test_nonfinite_samples_are_counted_and_left_out() -> None:
    x = -torch.ones(10, 1, 9, dtype=F64)
    x[[1, 4, 7], 0, 0] = 1.0
    erf = empirical_erf(NaNForPositiveFirstPixel(), inputs=x, statistic="mean", batch_size=4)
    assert erf.nonfinite == 3 and erf.count == 7
    assert np.isfinite(erf.map).all() and np.isfinite(erf.stderr).all()
    np.testing.assert_array_equal(erf.map, [0, 0, 0, 1, 2, 1, 0, 0, 0])
    # with a factory the unit is the run; the NaN samples are still counted one by one
    erf = empirical_erf(lambda i, g: NaNForPositiveFirstPixel(), inputs=x, runs=2, statistic="relu")
    assert erf.nonfinite == 6 and erf.count == 2
    np.testing.assert_array_equal(erf.map, [0, 0, 0, 1, 2, 1, 0, 0, 0])


def test_batchnorm_in_train_mode_warns_and_mode_is_restored() -> None:
    model = nn.Sequential(
        nn.Conv1d(1, 2, 3, padding=1, bias=False, dtype=F64),
        nn.BatchNorm1d(2, dtype=F64),
        nn.Dropout(0.5),
        nn.Conv1d(2, 1, 3, padding=1, bias=False, dtype=F64),
    )
    bn = model[1]
    with torch.no_grad():
        bn.running_var.fill_(4.0)
    before = bn.running_mean.clone(), bn.running_var.clone(), bn.num_batches_tracked.clone()
    model.train()
    with pytest.warns(UserWarning, match="batch norm in train mode"):
        erf = empirical_erf(model, (1, 9), statistic="mean", batch_size=5)
    assert model.training and all(m.training for m in model.modules())
    assert torch.equal(bn.running_mean, before[0]) and torch.equal(bn.running_var, before[1])
    assert torch.equal(bn.num_batches_tracked, before[2])
    # measured in eval mode: a linear map, the same for every sample
    assert float(erf.stderr.max()) <= 1e-12 * float(np.abs(erf.map).max())
    model.eval()
    again = empirical_erf(model, (1, 9), statistic="mean", batch_size=5)  # no warning
    assert not model.training and not any(m.training for m in model.modules())
    np.testing.assert_allclose(again.map, erf.map, rtol=0, atol=1e-15)


def test_model_on_another_dtype_is_copied_not_changed() -> None:
    net = Network([Conv(Kernel([1, 2, 1])), Conv(3)])
    model = to_torch(net, dtype=torch.float32)
    erf = empirical_erf(model, (1, 9), statistic="mean", batch_size=2)
    assert next(model.parameters()).dtype == torch.float32
    np.testing.assert_allclose(erf.map, exact_map(net, 9), rtol=0, atol=1e-12)


def test_merge_equals_one_pass() -> None:
    net = Network([Conv(3), ReLU(), Conv(3)])
    model = to_torch(net, weights="random", generator=torch.Generator().manual_seed(0))
    x = torch.randn(30, 1, 9, generator=torch.Generator().manual_seed(1), dtype=F64)
    whole = empirical_erf(model, inputs=x, batch_size=7)
    parts = empirical_erf(model, inputs=x[:11], batch_size=7).merge(
        empirical_erf(model, inputs=x[11:], batch_size=7)
    )
    assert parts.count == whole.count == 30
    for name in ("map", "stderr"):
        np.testing.assert_allclose(getattr(parts, name), getattr(whole, name), rtol=1e-12)
    np.testing.assert_allclose(parts.normalized()[1], whole.normalized()[1], rtol=1e-10)
    with pytest.raises(ERFValueError, match="statistic"):
        whole.merge(empirical_erf(model, inputs=x, statistic="mean"))


def test_progress_bar(capsys: pytest.CaptureFixture[str]) -> None:
    model = to_torch(Network([Conv(3)]))
    empirical_erf(model, (1, 5), runs=3, batch_size=2, progress=True)
    assert "empirical ERF" in capsys.readouterr().err
    empirical_erf(model, (1, 5), runs=3, batch_size=2)
    assert capsys.readouterr().err == ""


# --------------------------------------------------------------------------- distributed
DIST_NET = Network([Conv(3), ReLU(), Conv(3)])
HANG_GUARD_POLLS = 1200


def _dist_worker(rank: int, world: int, init: str, out: str) -> None:
    import torch.distributed as dist

    torch.set_num_threads(1)
    # Generous: on a loaded machine one rank may start (spawn, import torch) minutes
    # after the other; a worker that fails ends the test at once (ProcessRaisedException).
    dist.init_process_group(
        "gloo", init_method=init, rank=rank, world_size=world, timeout=timedelta(seconds=900)
    )
    try:
        local = empirical_erf(
            random_factory(DIST_NET, 4),
            (4, 9),
            runs=5 + rank,
            batch_size=3,
            seed=100 + rank,
            channel_reduce="sum_after",
        )
        combined = local.all_reduce()
        with open(Path(out) / f"rank{rank}.pkl", "wb") as f:
            pickle.dump((local, combined), f)
    finally:
        dist.destroy_process_group()


@pytest.mark.skipif(
    not torch.distributed.is_available(), reason="torch.distributed is not available"
)
def test_all_reduce_over_two_processes(tmp_path: Path) -> None:
    import torch.multiprocessing as mp

    init = (tmp_path / "rendezvous").as_uri()
    ctx = mp.start_processes(
        _dist_worker, args=(2, init, str(tmp_path)), nprocs=2, join=False, start_method="spawn"
    )
    # A hang guard only, never a speed check: join() returns as soon as both workers
    # are done and raises as soon as one fails; 1200 polls of 1 s bound a real hang.
    try:
        for _ in range(HANG_GUARD_POLLS):
            if ctx.join(timeout=1):
                break
        else:
            pytest.fail(
                f"the distributed workers had not finished after {HANG_GUARD_POLLS} polls of "
                f"1 s (a hang: no worker failed, none finished)"
            )
    finally:
        for p in ctx.processes:
            if p.is_alive():
                p.terminate()
                p.join(5)
    results = []
    for rank in range(2):
        with open(tmp_path / f"rank{rank}.pkl", "rb") as f:
            results.append(pickle.load(f))
    (local0, comb0), (local1, comb1) = results
    merged = local0.merge(local1)
    assert comb0.count == comb1.count == merged.count == 5 + 6
    for comb in (comb0, comb1):
        peak = np.abs(merged.map).max()
        np.testing.assert_allclose(comb.map, merged.map, rtol=0, atol=1e-12 * peak)
        np.testing.assert_allclose(comb.stderr, merged.stderr, rtol=0, atol=1e-12 * peak)
        np.testing.assert_allclose(comb.normalized()[1], merged.normalized()[1], rtol=1e-9)
        # the summary features travel too: the measures' standard errors agree
        a, b = comb.moments(), merged.moments()
        np.testing.assert_allclose(a.mean_stderr, b.mean_stderr, rtol=1e-9)
        np.testing.assert_allclose(a.covariance_stderr, b.covariance_stderr, rtol=1e-9)
    np.testing.assert_array_equal(comb0.map, comb1.map)


def test_all_reduce_needs_a_process_group() -> None:
    erf = empirical_erf(to_torch(Network([Conv(3)])), (1, 5), batch_size=2)
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        pytest.skip("a process group is already initialised")
    with pytest.raises(ERFValueError, match="init_process_group"):
        erf.all_reduce()


# --------------------------------------------------------------------------- CUDA
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu() -> None:
    net = Network([Conv((3, 3)), ReLU(), Conv((3, 3), stride=2), ReLU(), Conv((3, 3))])
    n = net.min_input_size()
    model = to_torch(net, weights="random", generator=torch.Generator().manual_seed(7))
    cpu = empirical_erf(model, (1, *n), runs=4, batch_size=8, seed=3)
    gpu = empirical_erf(model, (1, *n), runs=4, batch_size=8, seed=3, device="cuda")
    assert next(model.parameters()).device.type == "cpu"  # the model itself stays put
    peak = np.abs(cpu.map).max()
    np.testing.assert_allclose(gpu.map, cpu.map, rtol=0, atol=1e-10 * peak)
    factory = random_factory(net, 2)
    cpu = empirical_erf(factory, (2, *n), runs=6, seed=1, channel_reduce="sum_after")
    gpu = empirical_erf(factory, (2, *n), runs=6, seed=1, channel_reduce="sum_after", device="cuda")
    np.testing.assert_allclose(gpu.map, cpu.map, rtol=0, atol=1e-10 * np.abs(cpu.map).max())


# --------------------------------------------------------------------------- errors
def test_bad_arguments() -> None:
    model = to_torch(Network([Conv(3)]))
    with pytest.raises(ERFValueError, match="statistic"):
        empirical_erf(model, (1, 5), statistic="median")  # type: ignore[arg-type]
    with pytest.raises(ERFValueError, match="channel_reduce"):
        empirical_erf(model, (1, 5), channel_reduce="max")  # type: ignore[arg-type]
    with pytest.raises(ERFValueError, match="runs"):
        empirical_erf(model, (1, 5), runs=0)
    with pytest.raises(ERFValueError, match="batch_size"):
        empirical_erf(model, (1, 5), batch_size=0)
    with pytest.raises(ERFValueError, match="input_shape"):
        empirical_erf(model, (1, 0))
    with pytest.raises(ERFValueError, match="input_shape"):
        empirical_erf(model, (5,))
    with pytest.raises(ERFValueError, match="input_shape"):
        empirical_erf(model)
    with pytest.raises(ERFValueError, match=r"shape .*\(3, 5\)"):
        empirical_erf(model, (3, 5))  # 3 channels into a 1-channel convolution
    with pytest.raises(ERFValueError, match=r"\(1, 5, 5\)"):
        empirical_erf(model, (1, 5, 5))  # 2-D input into a 1-D network
    with pytest.raises(ERFValueError, match="output_index"):
        empirical_erf(model, (1, 5), output_index=5)
    with pytest.raises(ERFTypeError, match="model"):
        empirical_erf("not a model", (1, 5))  # type: ignore[arg-type]
    with pytest.raises(ERFTypeError, match="factory"):
        empirical_erf(lambda i, g: 3, (1, 5))  # type: ignore[arg-type,return-value]
    with pytest.raises(ERFValueError, match="one-shot iterator"):
        empirical_erf(model, inputs=iter([torch.zeros(1, 1, 5, dtype=F64)]), runs=2)
    with pytest.raises(ERFValueError, match="inputs"):
        empirical_erf(model, (1, 5), inputs="uniform")
    with pytest.raises(ERFValueError, match="does not match input_shape"):
        empirical_erf(model, (1, 5), inputs=torch.zeros(2, 1, 6, dtype=F64))
    with pytest.raises(ERFValueError, match="output map"):
        empirical_erf(nn.Flatten(), (1, 5))
    if not torch.cuda.is_available():
        with pytest.raises(ERFValueError, match="CUDA is not available"):
            empirical_erf(model, (1, 5), device="cuda")


def test_compare_errors() -> None:
    net = Network([Conv(3), Conv(3)])
    small = empirical_erf(to_torch(net), (1, 3), statistic="mean", batch_size=2)
    with pytest.raises(ERFValueError, match="leave the measured map"):
        compare(net.profile(), small)
    erf = empirical_erf(to_torch(net), (1, 9), statistic="mean", batch_size=2)
    with pytest.raises(ERFValueError, match="2-D"):
        compare(Network([Conv((3, 3))]).profile(), erf)
    with pytest.raises(ERFValueError, match="stderr"):
        compare(net.profile(), erf.map)
    with pytest.raises(ERFValueError, match="confidence"):
        compare(net.profile(), erf, confidence=1.5)
    with pytest.raises(ERFValueError, match="correction"):
        compare(net.profile(), erf, correction="holm")  # type: ignore[arg-type]
    with pytest.raises(ERFTypeError, match="theory"):
        compare("1 2 1", erf)  # type: ignore[arg-type]
    one = empirical_erf(to_torch(net), (1, 9), statistic="mean", batch_size=1)
    with pytest.raises(ERFValueError, match="fewer than 2 samples"):
        compare(net.profile(), one)
    # an array theory of the map's shape needs no start; a plain Profile uses the origin
    assert compare(exact_map(net, 9), erf).consistent
    assert compare(profile(Kernel([1, 1, 1]), 2), erf).start == (2,)
    assert compare(net.profile(), erf, correction="bonferroni").consistent


# --------------------------------------------------------------------------- reliability
def _one_line(exc: BaseException) -> str:
    message = str(exc)
    assert message and "\n" not in message, repr(message)
    return message


def _same(a: EmpiricalERF, b: EmpiricalERF) -> bool:
    """Bit-for-bit equality of two results (every accumulator)."""
    arrays = ("map", "stderr", "shift", "sum", "sum_sq", "cross_sum")
    scalars = ("count", "nonfinite", "total_shift", "total_sum", "total_sum_sq")
    return all(
        torch.equal(torch.tensor(getattr(a, k)), torch.tensor(getattr(b, k))) for k in arrays
    ) and all(getattr(a, k) == getattr(b, k) for k in scalars)


def test_huge_inputs_and_batches_are_refused_before_allocating() -> None:
    model = to_torch(Network([Conv(3)]))
    with pytest.raises(SizeLimitError, match=r"one sample of shape \(1, 1000000000000\)") as e:
        empirical_erf(model, (1, 10**12))
    assert e.value.estimate > e.value.limit == erftheory.get_memory_limit()
    _one_line(e.value)
    with pytest.raises(SizeLimitError, match=r"batch of 1000000000000 random inputs") as e:
        empirical_erf(model, (1, 9), batch_size=10**12)
    # the message says how to go ahead: the largest batch that fits
    fit = int(str(e.value).split("use batch_size=")[1].split()[0])
    assert fit >= 1
    with erftheory.memory_limit("1MiB"):
        with pytest.raises(SizeLimitError, match=r"use batch_size=(\d+) or less") as e:
            empirical_erf(model, (1, 10_000), batch_size=100)
        fit = int(str(e.value).split("use batch_size=")[1].split()[0])
        erf = empirical_erf(model, (1, 10_000), batch_size=fit)  # that batch does fit
        assert erf.count == fit
        x = torch.zeros(100, 1, 10_000, dtype=F64)
        with pytest.raises(SizeLimitError, match="a batch of 64 inputs"):
            empirical_erf(model, inputs=x, batch_size=64)
        # batch_size="auto" (the default for tensors) picks batches that fit the limit
        assert empirical_erf(model, inputs=x).count == 100
        with pytest.raises(SizeLimitError, match="input batch 1 of shape"):
            empirical_erf(model, inputs=[x[:2], x])


class AllocatesTooMuch(nn.Module):
    """A model whose forward asks the allocator for 1 EiB: a real allocator failure."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + torch.empty(2**60, dtype=torch.uint8).sum()


class RaisesOutOfMemory(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB\nmore")


def test_out_of_memory_in_the_model_is_a_one_line_error() -> None:
    for model in (AllocatesTooMuch(), RaisesOutOfMemory()):
        with pytest.raises(ERFValueError, match="ran out of memory") as e:
            empirical_erf(model, (1, 9), batch_size=4)
        message = _one_line(e.value)
        assert type(model).__name__ in message and "(4, 1, 9)" in message
        assert "smaller batch_size (now 4)" in message
        assert isinstance(e.value.__cause__, RuntimeError)  # chained for debugging


class Raises(nn.Module):
    def __init__(self, exc: Exception) -> None:
        super().__init__()
        self.exc = exc

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise self.exc


class FailingBackward(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
        return x.clone()

    @staticmethod
    def backward(ctx: Any, g: torch.Tensor) -> torch.Tensor:
        raise RuntimeError("backward exploded\nwith a second line")


class BadBackward(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = FailingBackward.apply(x)
        return out


@pytest.mark.parametrize(
    ("exc", "cls"),
    [
        (RuntimeError("shapes do not match\n  at line 3 of model.py"), ERFValueError),
        (ValueError("bad value"), ERFValueError),
        (KeyError("missing"), ERFValueError),
        (IndexError("index 7 is out of bounds"), ERFValueError),
        (AssertionError(), ERFValueError),
        (ZeroDivisionError("division by zero"), ERFValueError),
        (NotImplementedError("later"), ERFValueError),
        (TypeError("forward() takes 1 argument"), ERFTypeError),
        (ERFValueError("an erftheory error inside"), ERFValueError),
    ],
)
def test_a_model_that_raises_gives_one_line_naming_model_shape_and_cause(
    exc: Exception, cls: type
) -> None:
    with pytest.raises(cls) as e:
        empirical_erf(Raises(exc), (2, 7), batch_size=3)
    message = _one_line(e.value)
    assert message.startswith("the model Raises raised on inputs of shape (3, 2, 7)")
    assert f"{type(exc).__name__}:" in message
    assert e.value.__cause__ is exc


def test_factories_backward_passes_and_iterables_that_raise() -> None:
    def factory(i: int, g: torch.Generator) -> nn.Module:
        raise ValueError(f"no network for run {i}\ntraceback text")

    with pytest.raises(ERFValueError, match=r"factory .*factory raised at run 0: ValueError") as e:
        empirical_erf(factory, (1, 5))
    _one_line(e.value)
    with pytest.raises(ERFValueError, match="the backward pass of the model BadBackward") as e:
        empirical_erf(BadBackward(), (1, 5), batch_size=2)
    assert "RuntimeError: backward exploded" in _one_line(e.value)

    def batches() -> Any:
        yield torch.zeros(2, 1, 5, dtype=F64)
        raise OSError("the disk went away")

    with pytest.raises(ERFValueError, match="inputs iterable raised at batch 1: OSError") as e:
        empirical_erf(to_torch(Network([Conv(3)])), inputs=batches())
    _one_line(e.value)


class PermutedLinear(nn.Module):
    """A pointwise layer written as nn.Linear over channels (ConvNeXt): spatial."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv1d(2, 2, 3, padding=1, dtype=F64)
        self.mix = nn.Linear(2, 2, dtype=F64)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y: torch.Tensor = self.mix(self.conv(x).permute(0, 2, 1)).permute(0, 2, 1)
        return y


class FlattenSpatial(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(2)


class ReturnsInts(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x > 0).long()


def test_models_without_a_spatial_output_are_refused() -> None:
    linear = nn.Linear(5, 5, dtype=F64)
    for model in (
        linear,
        nn.Sequential(nn.Conv1d(1, 1, 3, padding=1, dtype=F64), linear),
        nn.Sequential(linear, nn.ReLU(), nn.Dropout(0.1)),
    ):
        with pytest.raises(ERFValueError, match=r"linear layer .* \(N, C, L\) or \(N, C, H, W\)"):
            empirical_erf(model, (1, 5))
    with pytest.raises(ERFValueError, match=r"no spatial axis.*\(N, C, L\) or \(N, C, H, W\)"):
        empirical_erf(nn.Flatten(), (1, 5))
    with pytest.raises(ERFValueError, match=r"2 spatial axes\) to shape \(32, 1, 25\)"):
        empirical_erf(FlattenSpatial(), (1, 5, 5))
    with pytest.raises(ERFTypeError, match=r"dtype torch\.int64"):
        empirical_erf(ReturnsInts(), (1, 5))
    for bad in ((5,), [7], ()):
        with pytest.raises(ERFValueError, match=r"no spatial axis.*\(C, L\) or \(C, H, W\)"):
            empirical_erf(to_torch(Network([Conv(3)])), bad)
    with pytest.raises(ERFValueError, match="no spatial axis"):
        empirical_erf(to_torch(Network([Conv(3)])), inputs=torch.zeros(4, 5, dtype=F64))
    # nn.Linear over the channels of a permuted map keeps the spatial axis: accepted
    erf = empirical_erf(PermutedLinear(), (2, 9), batch_size=2)
    assert erf.shape == (9,) and erf.count == 2


class Noisy(nn.Module):
    """A model that draws from torch's global generator in forward."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv1d(1, 1, 3, padding=1, bias=False, dtype=F64)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x) * (1 + torch.rand_like(x))


def test_same_seed_same_numbers_bit_for_bit() -> None:
    net = Network([Conv(3), ReLU(), Conv(3)])
    model = to_torch(net, weights="random", generator=torch.Generator().manual_seed(2))
    a = empirical_erf(model, (1, 9), runs=3, batch_size=5, seed=11)
    b = empirical_erf(model, (1, 9), runs=3, batch_size=5, seed=11)
    assert _same(a, b)
    assert not _same(a, empirical_erf(model, (1, 9), runs=3, batch_size=5, seed=12))
    # a generator in the same state is the same seed; one shared generator moves on
    g = torch.Generator().manual_seed(11)
    c = empirical_erf(model, (1, 9), runs=3, batch_size=5, seed=g)
    assert _same(a, c)
    assert not _same(c, empirical_erf(model, (1, 9), runs=3, batch_size=5, seed=g))
    # factories draw their weights from the seeded generator
    fa = empirical_erf(random_factory(net), (1, 9), runs=4, seed=3)
    fb = empirical_erf(random_factory(net), (1, 9), runs=4, seed=3)
    assert _same(fa, fb)
    # a model's own draws from the global generator are seeded too, and the caller's
    # global generator is left as it was
    noisy = Noisy()  # (its constructor draws from the global generator)
    state = torch.get_rng_state()
    na = empirical_erf(noisy, (1, 9), batch_size=4, seed=5)
    nb = empirical_erf(noisy, (1, 9), batch_size=4, seed=5)
    assert _same(na, nb) and float(na.stderr.max()) > 0
    assert torch.equal(torch.get_rng_state(), state)


def test_hostile_arguments_give_one_line_errors() -> None:
    model = to_torch(Network([Conv(3)]))
    cases: list[tuple[dict[str, Any], type]] = [
        ({"seed": -1}, ERFValueError),
        ({"seed": 2**64}, ERFValueError),
        ({"seed": 1.5}, ERFTypeError),
        ({"seed": True}, ERFTypeError),
        ({"seed": "0"}, ERFTypeError),
        ({"device": "mps"}, ERFValueError),
        ({"device": "meta"}, ERFValueError),
        ({"device": "no such device"}, ERFValueError),
        ({"device": 1.5}, ERFTypeError),
        ({"device": None}, ERFTypeError),
        ({"dtype": torch.int64}, ERFTypeError),
        ({"dtype": "float64"}, ERFTypeError),
        ({"batch_size": -1}, ERFValueError),
        ({"batch_size": 2.0}, ERFValueError),
        ({"batch_size": True}, ERFValueError),
        ({"runs": -1}, ERFValueError),
        ({"runs": 1.5}, ERFValueError),
        ({"output_index": 1.5}, ERFValueError),
        ({"output_index": "ab"}, ERFValueError),
        ({"output_index": (True,)}, ERFValueError),
        ({"inputs": 3}, ERFTypeError),
        ({"inputs": torch.zeros(0, 1, 5)}, ERFValueError),
    ]
    if not torch.cuda.is_available():
        cases.append(({"device": "cuda:3"}, ERFValueError))
    for kwargs, cls in cases:
        with pytest.raises(cls) as e:
            empirical_erf(model, (1, 5), **kwargs)
        assert type(e.value) is cls or issubclass(type(e.value), cls), kwargs
        _one_line(e.value)
