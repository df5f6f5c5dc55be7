"""`empirical_erf` on real-model shapes: the traced origin, vision transformers' tokens,
the speed settings (channels-last, folded batch norm, frozen parameters, batch sizes from
memory) and that none of them changes the result beyond float rounding."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from torch import nn  # noqa: E402

import erftheory  # noqa: E402
from erftheory import ERFValueError  # noqa: E402
from erftheory.torch._measure import frozen_parameters, record_saved_bytes  # noqa: E402
from erftheory.torch.empirical import (  # noqa: E402
    AUTO_BATCH_CPU,
    empirical_erf,
    suggest_batch_size,
)

F64 = torch.float64
F32_TOL = 1e-5  # float32 routes through different kernels (relative to the peak)
F64_TOL = 1e-12  # float64 routes through different kernels (relative to the peak)


def close(a: np.ndarray, b: np.ndarray, tol: float) -> None:
    np.testing.assert_allclose(a, b, rtol=0, atol=tol * float(np.abs(b).max()))


# --------------------------------------------------------------------------- origin
def strided_model(dtype: torch.dtype = F64) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, stride=2, padding=1, dtype=dtype),
        nn.ReLU(),
        nn.Conv2d(4, 4, 3, stride=2, padding=1, dtype=dtype),
        nn.ReLU(),
        nn.Conv2d(4, 2, 3, padding=1, dtype=dtype),
    )


def support_middle(model: nn.Module, shape: tuple[int, ...], centre: tuple[int, ...]) -> tuple:
    """The middle of the support of the input gradient of a positive-weight copy: the RF."""
    import copy

    pos = copy.deepcopy(model)
    pos = nn.Sequential(*[m for m in pos if not isinstance(m, nn.ReLU)])
    with torch.no_grad():
        for p in pos.parameters():
            p.abs_().add_(0.1)
    x = torch.zeros((1, *shape), dtype=F64, requires_grad=True)
    pos(x)[(0, slice(None), *centre)].sum().backward()
    rows, cols = torch.nonzero(x.grad[0, 0], as_tuple=True)
    return (int(rows.min() + rows.max()) // 2, int(cols.min() + cols.max()) // 2)


def test_origin_of_a_strided_model_is_traced_exactly() -> None:
    model = strided_model()
    # jump 4, RF 15 pixels from offset -7: unit 2 of 6 reads pixels 1 .. 15, unit 3 of 8
    # pixels 5 .. 19 (both inside the input, so the support is the whole window)
    for size, centre, middle in ((24, 2, 8), (32, 3, 12)):
        traced = empirical_erf(model, (1, size, size), batch_size=2)
        guessed = empirical_erf(model, (1, size, size), batch_size=2, trace=False)
        assert traced.centre == guessed.centre == (centre, centre)
        assert traced.origin == support_middle(model, (1, size, size), traced.centre)
        assert traced.origin == (middle, middle)
        assert traced.origin_source == "from_torch" and traced.origin_exact
        # the stretched grid is half a jump (2 pixels) off
        assert guessed.origin == (middle + 2, middle + 2) and not guessed.origin_exact
        assert guessed.origin_source == "estimate"
        np.testing.assert_array_equal(traced.map, guessed.map)


def test_origin_of_torchvision_resnet18_at_224() -> None:
    from erftheory.torch.models import import_torchvision

    try:
        tv = import_torchvision()
    except ImportError as e:
        pytest.skip(f"torchvision does not import: {e}")
    torch.manual_seed(0)
    resnet = tv.models.resnet18().eval()
    features = nn.Sequential(*list(resnet.children())[:-2])
    erf = empirical_erf(features, (3, 224, 224), batch_size=1, dtype=torch.float32)
    assert erf.centre == (3, 3)
    assert erf.origin == (96, 96) and erf.origin_source == "from_torch"
    guessed = empirical_erf(features, (3, 224, 224), batch_size=1, dtype=torch.float32, trace=False)
    assert guessed.origin == (112, 112) and guessed.origin_source == "estimate"


class Untraceable(nn.Module):
    """Data-dependent control flow: torch.fx (and so from_torch) refuses it."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv1d(1, 1, 3, stride=2, padding=1, dtype=F64)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y: torch.Tensor = self.conv(x)
        return y if float(x.detach().sum()) >= -1e300 else -y


def test_a_refused_trace_keeps_the_estimate() -> None:
    erf = empirical_erf(Untraceable(), (1, 10), batch_size=2)
    assert erf.origin_source == "estimate" and erf.origin == (4,)  # round(2.5 * 2 - 0.5)


# --------------------------------------------------------------------------- tokens
class TinyViT(nn.Module):
    """A patch embedding (4x4 patches), a class token, one attention block: (B, 1 + 16, 8)."""

    def __init__(self, attrs: bool = True) -> None:
        super().__init__()
        torch.manual_seed(1)
        self.patch_embed = nn.Module()
        self.patch_embed.proj = nn.Conv2d(3, 8, 4, stride=4, dtype=F64)
        if attrs:
            self.patch_embed.patch_size = (4, 4)
            self.num_prefix_tokens = 1
        self.cls_token = nn.Parameter(torch.randn(1, 1, 8, dtype=F64))
        self.pos = nn.Parameter(0.1 * torch.randn(1, 17, 8, dtype=F64))
        self.block = nn.TransformerEncoderLayer(
            8, 2, dim_feedforward=16, dropout=0.0, batch_first=True, dtype=F64
        )
        self.norm = nn.LayerNorm(8, dtype=F64)
        with torch.no_grad():  # unit weights: the channel sum of the output is constant
            self.norm.weight.uniform_(0.5, 1.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = self.patch_embed.proj(x).flatten(2).transpose(1, 2)
        t = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), t], dim=1) + self.pos
        out: torch.Tensor = self.norm(self.block(t))
        return out


def token_gradient_by_hand(model: nn.Module, x: torch.Tensor, token: int) -> np.ndarray:
    """Mean over samples of (sum_c dy_token / dx_c)^2, one sample at a time."""
    out = []
    for k in range(x.shape[0]):
        xk = x[k : k + 1].clone().requires_grad_(True)
        model(xk)[0, token].sum().backward()
        out.append((xk.grad[0].sum(0) ** 2).numpy())
    return np.mean(out, axis=0)


def test_tiny_vit_centre_token_and_patch_origin() -> None:
    model = TinyViT().eval()
    x = torch.randn(5, 3, 16, 16, generator=torch.Generator().manual_seed(2), dtype=F64)
    erf = empirical_erf(model, inputs=x, statistic="mean_square")
    # the grid is 4 x 4; the centre token (1, 1) is sequence index 1 + 1 * 4 + 1 = 6
    assert erf.centre == (1, 1)
    assert erf.origin == (5, 5) and erf.origin_source == "patch_embed"  # 4 * 1 + (4 - 1) // 2
    close(erf.map, token_gradient_by_hand(model, x, 6), F64_TOL)
    # without timm's attributes: the grid comes from the token count and the aspect ratio
    bare = TinyViT(attrs=False).eval()
    again = empirical_erf(bare, inputs=x, statistic="mean_square", output_layout="tokens")
    assert again.centre == (1, 1) and again.origin_source == "estimate"
    close(again.map, erf.map, F64_TOL)
    # explicit grid and prefix, and another output token
    chosen = empirical_erf(
        model,
        inputs=x,
        statistic="mean_square",
        token_grid=(4, 4),
        prefix_tokens=1,
        output_index=(2, 3),
    )
    close(chosen.map, token_gradient_by_hand(model, x, 1 + 2 * 4 + 3), F64_TOL)
    with pytest.raises(ERFValueError, match="not 2 prefix token"):
        empirical_erf(model, inputs=x, token_grid=(4, 4), prefix_tokens=2)


class Tokenise(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(2).transpose(1, 2)


def test_a_three_axis_output_of_a_plain_model_is_not_read_as_tokens() -> None:
    flat = Tokenise()
    with pytest.raises(ERFValueError, match="output_layout='tokens'"):
        empirical_erf(flat, (1, 4, 4))
    erf = empirical_erf(flat, (1, 4, 4), output_layout="tokens", statistic="mean")
    # 16 "tokens" of one channel: a 4 x 4 grid, the token (1, 1) is pixel (1, 1)
    assert erf.centre == (1, 1) and erf.map[1, 1] == 1.0 and erf.map.sum() == 1.0


def test_timm_vit_tiny_centre_token() -> None:
    from erftheory.torch.models import import_timm

    try:
        timm = import_timm()
    except ImportError as e:
        pytest.skip(f"timm does not import: {e}")
    torch.manual_seed(0)
    vit = timm.create_model("vit_tiny_patch16_224", pretrained=False).eval()
    with torch.no_grad():  # unit weights: the channel sum of the output is constant
        vit.norm.weight.uniform_(0.5, 1.5)

    class Features(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.vit = vit

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            out: torch.Tensor = self.vit.forward_features(x)
            return out

    x = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(3))
    erf = empirical_erf(Features(), inputs=x, statistic="mean_square", dtype=torch.float32)
    assert erf.centre == (6, 6) and erf.origin == (103, 103)  # 16 * 6 + 7
    assert erf.origin_source == "patch_embed"
    xk = x.clone().requires_grad_(True)
    vit.forward_features(xk)[0, 1 + 6 * 14 + 6].sum().backward()
    close(erf.map, (xk.grad[0].sum(0) ** 2).double().numpy(), F32_TOL)


class NHWC(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 3, 3, padding=1, dtype=F64)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.conv(x).permute(0, 2, 3, 1)
        return out


def test_channels_last_outputs() -> None:
    model = NHWC()
    x = torch.randn(4, 2, 7, 9, generator=torch.Generator().manual_seed(4), dtype=F64)
    nhwc = empirical_erf(model, inputs=x, output_layout="channels_last")
    nchw = empirical_erf(model.conv, inputs=x)
    assert nhwc.centre == nchw.centre == (3, 4)
    close(nhwc.map, nchw.map, F64_TOL)


# --------------------------------------------------------------------------- speed settings
def bn_model(dtype: torch.dtype) -> nn.Module:
    torch.manual_seed(5)
    model = nn.Sequential(
        nn.Conv2d(3, 6, 3, padding=1, dtype=dtype),
        nn.BatchNorm2d(6, dtype=dtype),
        nn.ReLU(),
        nn.Conv2d(6, 4, 3, stride=2, padding=1, dtype=dtype),
        nn.BatchNorm2d(4, dtype=dtype),
    )
    with torch.no_grad():
        for m in model:
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-1, 1)
                m.running_var.uniform_(0.5, 2)
                m.weight.uniform_(0.5, 1.5)
    return model.eval()


@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_speed_settings_do_not_change_the_result(dtype: torch.dtype) -> None:
    model = bn_model(dtype)
    x = torch.randn(9, 3, 12, 12, generator=torch.Generator().manual_seed(6), dtype=dtype)
    kw = {"inputs": x, "statistic": "mean_square", "dtype": dtype}
    plain = empirical_erf(
        model, batch_size=1, channels_last=False, fuse_batchnorm=False, trace=False, **kw
    )
    tol = F32_TOL if dtype == torch.float32 else F64_TOL
    for settings in (
        {},
        {"channels_last": True},
        {"fuse_batchnorm": False},
        {"batch_size": 4, "channels_last": True, "fuse_batchnorm": True},
    ):
        erf = empirical_erf(model, **settings, **kw)
        assert erf.count == 9
        close(erf.map, plain.map, tol)
        close(erf.stderr, plain.stderr, 10 * tol)
    assert all(p.requires_grad and p.grad is None for p in model.parameters())
    assert not model.training


class ViewsItsInput(nn.Module):
    """``view`` needs a contiguous input: channels-last inputs make it raise."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 2, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        out: torch.Tensor = self.conv(x.view(b, c * h * w).view(b, c, h, w))
        return out


def test_a_model_that_refuses_channels_last_runs_contiguous() -> None:
    model = ViewsItsInput()
    x = torch.randn(3, 2, 6, 6, generator=torch.Generator().manual_seed(7))
    with pytest.raises(RuntimeError):
        model(x.contiguous(memory_format=torch.channels_last))
    erf = empirical_erf(model, inputs=x, dtype=torch.float32)  # channels-last by default
    plain = empirical_erf(model, inputs=x, dtype=torch.float32, channels_last=False)
    np.testing.assert_array_equal(erf.map, plain.map)


class CountsCalls(nn.Module):
    """Records, per call, the batch and whether its parameters required gradients."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv1d(1, 1, 3, padding=1, dtype=F64)
        self.calls: list[tuple[int, bool]] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls.append((int(x.shape[0]), self.conv.weight.requires_grad))
        out: torch.Tensor = self.conv(x)
        return out


def test_parameters_are_frozen_while_measuring_and_restored() -> None:
    model = CountsCalls()
    x = torch.randn(10, 1, 9, generator=torch.Generator().manual_seed(8), dtype=F64)
    erf = empirical_erf(model, inputs=x, trace=False)
    assert erf.count == 10
    assert [b for b, _ in model.calls][:1] == [1]  # the probe sample
    assert sum(b for b, _ in model.calls) == 10 and not any(g for _, g in model.calls)
    assert model.conv.weight.requires_grad and model.conv.weight.grad is None
    lin = nn.Linear(2, 2)
    with pytest.raises(KeyError), frozen_parameters(lin):
        raise KeyError("restored on errors too")
    assert lin.weight.requires_grad


def test_auto_batch_size_comes_from_memory() -> None:
    model = nn.Sequential(nn.Conv1d(1, 8, 3, padding=1, dtype=F64), nn.ReLU())
    with record_saved_bytes() as saved:
        x = torch.zeros(1, 1, 1000, dtype=F64, requires_grad=True)
        model(x).sum().backward()
    # the conv saves its input (8 kB) and its weight (192 B); the ReLU its output (64 kB)
    assert saved.bytes == 8 * 1000 + 8 * 3 * 8 + 8 * 8 * 1000
    with record_saved_bytes(model) as saved:  # the model's parameters are not counted
        model(x).sum().backward()
    assert saved.bytes == 8 * 1000 + 8 * 8 * 1000
    assert suggest_batch_size(model, (1, 1000), dtype=F64) == AUTO_BATCH_CPU
    with erftheory.memory_limit("2MiB"):
        # (72 kB saved + 3 * 8 kB of input, gradient, copy + 32 kB of maps) per sample
        per = 72_000 + 24_000 + 32_000
        assert suggest_batch_size(model, (1, 1000), dtype=F64) == (2 * 1024**2 // 2) // per


class OutOfMemoryAbove(nn.Module):
    """Raises the allocator's error for batches larger than ``most``."""

    def __init__(self, most: int) -> None:
        super().__init__()
        self.most = most
        self.conv = nn.Conv1d(1, 1, 3, padding=1, dtype=F64)
        self.batches: list[int] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[0] > self.most:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 1 GiB")
        self.batches.append(int(x.shape[0]))
        out: torch.Tensor = self.conv(x)
        return out


def test_auto_batches_that_run_out_of_memory_are_halved() -> None:
    model = OutOfMemoryAbove(5)
    x = torch.randn(40, 1, 9, generator=torch.Generator().manual_seed(9), dtype=F64)
    erf = empirical_erf(model, inputs=x, trace=False)
    assert erf.count == 40 and max(model.batches) <= 5 and sum(model.batches) == 40
    ref = empirical_erf(model.conv, inputs=x, batch_size=1, trace=False)
    close(erf.map, ref.map, F64_TOL)
    with pytest.raises(ERFValueError, match="ran out of memory"):
        empirical_erf(OutOfMemoryAbove(5), inputs=x, batch_size=8, trace=False)
    with pytest.raises(ERFValueError, match="batch_size='auto' applies to tensor inputs"):
        empirical_erf(model, (1, 9), batch_size="auto")
