"""The one measurement routine (`erftheory.torch._measure`) and its three callers."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

import numpy as np  # noqa: E402
from torch import nn  # noqa: E402

from erftheory import ERFTypeError, ERFValueError, Network  # noqa: E402
from erftheory.layers import Conv, ReLU  # noqa: E402
from erftheory.paper import paper_network  # noqa: E402
from erftheory.torch import BatchedNetworks, batched_input_gradients, empirical_erf  # noqa: E402
from erftheory.torch._guard import out_of_memory_as  # noqa: E402
from erftheory.torch._measure import centre_gradient, per_axis, sample_maps  # noqa: E402
from erftheory.torch.build import to_torch  # noqa: E402

F64 = torch.float64


def test_per_axis_gives_tuples_of_ints() -> None:
    assert per_axis(5) == (5,)
    assert per_axis((3, 4)) == (3, 4)
    assert per_axis([np.int64(2)]) == (2,)
    assert per_axis(torch.Size([7, 8])) == (7, 8)
    assert all(type(v) is int for v in per_axis((np.int64(1), 2)))


def test_centre_gradient_is_the_exact_profile_of_a_linear_network() -> None:
    net = Network([Conv([1, 2, 3]), Conv([1, 1])])  # (1 + 2z + 3z²)(1 + z)
    g = centre_gradient(to_torch(net), torch.zeros(3, 1, 9, dtype=F64))
    assert g.shape == (3, 1, 9) and not g.requires_grad
    lo = net.receptive_field.offset + net.receptive_field.jump * net.centre_output(9)
    expected = np.zeros(9)
    expected[lo : lo + 4] = [1.0, 3.0, 5.0, 3.0]
    for k in range(3):
        assert g[k, 0].tolist() == expected.tolist()


def test_centre_gradient_default_centre_is_the_lower_middle_unit() -> None:
    model = nn.Identity()
    g = centre_gradient(model, torch.zeros(1, 1, 4, 6, dtype=F64))
    (idx,) = torch.nonzero(g[0, 0]).tolist()
    assert idx == [1, 2]  # (4 - 1) // 2, (6 - 1) // 2


def test_centre_gradient_seeds_only_the_selected_channels() -> None:
    x = torch.zeros(1, 4, 5, dtype=F64)
    g = centre_gradient(nn.Identity(), x, (2,), channels=slice(None, None, 2))
    assert g[0, :, 2].tolist() == [1.0, 0.0, 1.0, 0.0]
    assert float(g.sum()) == 2.0


def test_centre_gradient_calls_a_centre_rule_after_the_forward_pass() -> None:
    seen = []

    def rule(x: torch.Tensor, y: torch.Tensor) -> tuple[int, ...]:
        seen.append((tuple(x.shape), tuple(y.shape), x.requires_grad))
        return (0,)

    model = nn.Conv1d(1, 1, 3, padding=1, bias=False).double()
    with torch.no_grad():
        model.weight.fill_(1.0)
    g = centre_gradient(model, torch.zeros(2, 1, 6, dtype=F64), rule)
    assert seen == [((2, 1, 6), (2, 1, 6), True)]
    assert g[0, 0].tolist() == [1.0, 1.0, 0.0, 0.0, 0.0, 0.0]
    assert model.weight.grad is None  # parameters get no gradient


def test_centre_gradient_works_inside_no_grad_and_leaves_the_input() -> None:
    x = torch.ones(1, 1, 3, dtype=F64)
    with torch.no_grad():
        g = centre_gradient(nn.Identity(), x)
    assert g[0, 0].tolist() == [0.0, 1.0, 0.0]
    assert not x.requires_grad and x.grad is None


def test_centre_gradient_is_zero_where_the_output_ignores_the_input() -> None:
    class Constant(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.ones_like(x).detach()

    g = centre_gradient(Constant(), torch.randn(2, 3, 4, dtype=F64))
    assert g.shape == (2, 3, 4) and float(g.abs().sum()) == 0.0


def test_centre_gradient_memory_format() -> None:
    layouts = []

    class Probe(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            layouts.append(x.is_contiguous(memory_format=torch.channels_last))
            return x * 2.0

    x = torch.randn(2, 3, 5, 5)
    g = centre_gradient(Probe(), x, memory_format=torch.channels_last)
    g_plain = centre_gradient(Probe(), x)
    assert layouts == [True, False]
    assert g.shape == x.shape and torch.equal(g, g_plain)
    assert g[:, :, 2, 2].tolist() == [[2.0] * 3] * 2


class _Raises(nn.Module):
    def __init__(self, exc: Exception) -> None:
        super().__init__()
        self.exc = exc

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise self.exc


def test_centre_gradient_wraps_model_errors_only_when_asked() -> None:
    with pytest.raises(RuntimeError, match="boom"):
        centre_gradient(_Raises(RuntimeError("boom")), torch.zeros(1, 1, 3))
    with pytest.raises(ERFValueError, match=r"the model _Raises raised here: RuntimeError: boom"):
        centre_gradient(_Raises(RuntimeError("boom")), torch.zeros(1, 1, 3), where="here")
    with pytest.raises(ERFTypeError, match="raised here: TypeError: bad"):
        centre_gradient(_Raises(TypeError("bad")), torch.zeros(1, 1, 3), where="here")
    # an allocator failure stays as it is, for the caller's memory message
    with pytest.raises(MemoryError):
        centre_gradient(_Raises(MemoryError("full")), torch.zeros(1, 1, 3), where="here")


def test_out_of_memory_as_turns_only_allocator_failures_into_one_line_errors() -> None:
    with pytest.raises(ERFValueError, match=r"^no room \(RuntimeError: CUDA out of memory\)$"):
        with out_of_memory_as(lambda e: f"no room ({e})"):
            raise RuntimeError("CUDA out of memory\nmore lines")
    with pytest.raises(RuntimeError, match="other"):
        with out_of_memory_as(lambda e: "never"):
            raise RuntimeError("other")
    with pytest.raises(ERFValueError, match=r"^mine$"):
        with out_of_memory_as(lambda e: "never"):
            raise ERFValueError("mine")


@pytest.mark.parametrize(
    ("statistic", "reduce", "expected"),
    [
        ("mean", "sum", [[-1.0, 5.0]]),
        ("mean", "sum_after", [[-1.0, 5.0]]),
        ("mean_square", "sum", [[1.0, 25.0]]),
        ("mean_square", "sum_after", [[5.0, 13.0]]),
        ("mean_abs", "sum", [[1.0, 5.0]]),
        ("mean_abs", "sum_after", [[3.0, 5.0]]),
        ("relu", "sum", [[0.0, 5.0]]),
        ("relu", "sum_after", [[1.0, 5.0]]),
    ],
)
def test_sample_maps_statistics(statistic: str, reduce: str, expected: list[list[float]]) -> None:
    g = torch.tensor([[[1.0, 2.0], [-2.0, 3.0]]])  # (batch 1, channels 2, length 2)
    q, finite = sample_maps(g, statistic, reduce)
    assert q.dtype == F64 and q.tolist() == expected and finite.tolist() == [True]


def test_sample_maps_flags_nonfinite_samples() -> None:
    g = torch.tensor([[[1.0, float("nan")]], [[1.0, 2.0]], [[float("inf"), 0.0]]])
    _, finite = sample_maps(g, "mean", "sum")
    assert finite.tolist() == [False, True, False]


# ---------------------------------------------------------------- the three callers agree
def test_empirical_erf_is_the_mean_of_the_routines_maps() -> None:
    net = Network([Conv((3, 3)), ReLU(), Conv((3, 3), stride=2)])
    model = to_torch(net, weights="random", channels=2, generator=torch.Generator().manual_seed(1))
    x = torch.randn(6, 2, 9, 9, dtype=F64, generator=torch.Generator().manual_seed(2))
    erf = empirical_erf(model, inputs=x, statistic="mean_square", batch_size=6)
    q, _ = sample_maps(centre_gradient(model.eval(), x), "mean_square", "sum")
    assert np.allclose(erf.map, q.mean(0).numpy(), rtol=1e-13, atol=0)
    assert erf.centre == per_axis(net.centre_output((9, 9)))


def test_batched_input_gradients_are_the_routines_gradients() -> None:
    b = BatchedNetworks(paper_network(3, ndim=1, activation="relu"), 4, generator=3)
    x = torch.randn(2, 4, 9, dtype=F64, generator=torch.Generator().manual_seed(4))
    expected = centre_gradient(b.model, x, per_axis(b.network.centre_output(9)))
    assert torch.equal(batched_input_gradients(b, x), expected)


def test_reproduce_measure_is_the_routine_on_channel_groups() -> None:
    pytest.importorskip("matplotlib")
    from erftheory.reproduce import LINEAR_VARIANCE, dense, measure

    net = dense(3, LINEAR_VARIANCE)
    count, channels, seed = 5, 2, 11
    m = measure(net, init="random", count=count, seed=seed, channels=channels)
    gen = torch.Generator().manual_seed(seed)
    model = to_torch(
        net, weights="random", dtype=torch.float32, generator=gen, channels=channels, copies=count
    ).eval()
    size = per_axis(net.min_input_size())
    x = torch.randn((1, count * channels, *size), generator=gen, dtype=torch.float32)
    centre = per_axis(net.centre_output(size))
    fmt = torch.channels_last  # as measure() does for float32 2-D networks
    g = centre_gradient(model, x, centre, channels=slice(None, None, channels), memory_format=fmt)
    g = g.double().reshape(count, channels, *size).numpy()
    rf = net.receptive_field
    start = [o + j * c for o, j, c in zip(rf.offset, rf.jump, centre, strict=True)]
    window = tuple(slice(a, a + n) for a, n in zip(start, rf.size, strict=True))
    values = (g * g).sum(axis=1)[(slice(None), *window)]  # the RF of the centre unit
    assert values.shape == (count, 7, 7)
    assert m.count == count
    assert np.array_equal(m.mean, values.mean(axis=0))
    assert np.array_equal(m.stderr, values.std(axis=0, ddof=1) / np.sqrt(count))
