"""Initialisations that cut a branch (issue 14): `from_torch` warns, naming the layers.

timm's ResNets zero the last batch norm of every residual block (``zero_init_last=True``,
their default), so with ``weights="variance"`` the expected-square ERF is the skip
paths' alone. The warning must name those layers and only those; the ERF it warns about
must be the one of the network without the residual branches (checked on a small model
against the network written without them).
"""

from __future__ import annotations

import re
import warnings
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")
nn = torch.nn

from erftheory import MissingDependencyError  # noqa: E402
from erftheory.torch import models  # noqa: E402 (needs torch)
from erftheory.torch.trace import from_torch  # noqa: E402

# profiles of float64-rounded variances, compared as floats
TOL = 1e-12


class Block(nn.Module):
    def __init__(self, c: int, zero: bool) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(c)
        if zero:
            nn.init.zeros_(self.bn.weight)

    def forward(self, x: Any) -> Any:
        return torch.relu(x + self.bn(self.conv(x)))


def _net(zero: bool) -> nn.Module:
    return nn.Sequential(nn.Conv2d(2, 4, 3), Block(4, zero), Block(4, zero)).eval()


def _caught(model: nn.Module, shape: tuple[int, ...], **kw: Any) -> tuple[Any, list[str]]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        net = from_torch(model, shape, **kw)
    return net, [str(w.message) for w in caught if issubclass(w.category, UserWarning)]


def test_zeroed_batch_norms_are_named():
    torch.manual_seed(0)
    model = _net(zero=True)
    net, messages = _caught(model, (2, 16, 16), weights="variance")
    assert len(messages) == 1
    assert re.search(r"^2 layer\(s\) have weights that are all zero", messages[0])
    assert "module '1.bn'" in messages[0] and "module '2.bn'" in messages[0]
    assert "zero_init_last=False" in messages[0]
    # the ERF warned about is the skip paths' alone: that of the first conv and ReLUs
    skip, none = _caught(
        nn.Sequential(model[0], nn.ReLU(), nn.ReLU()), (2, 16, 16), weights="variance"
    )
    assert not none
    a = net.profile("expected_square").normalized()
    b = skip.profile("expected_square").normalized()
    # the RF keeps the branch's geometry: the skip profile sits at its centre
    pa = np.asarray(a, dtype=float)
    pb = np.asarray(b, dtype=float)
    pad = [(s - t) // 2 for s, t in zip(pa.shape, pb.shape, strict=True)]
    pb = np.pad(pb, [(p, p) for p in pad])
    assert np.abs(pa - pb).max() < TOL


def test_no_warning_without_zeroed_layers_or_with_ones():
    torch.manual_seed(0)
    _, messages = _caught(_net(zero=False), (2, 16, 16), weights="variance")
    assert messages == []
    _, messages = _caught(_net(zero=True), (2, 16, 16))  # all-ones weights ignore the init
    assert messages == []


def test_timm_resnet18_default_init_warns():
    try:
        models.import_timm()
    except (MissingDependencyError, ImportError) as e:
        pytest.skip(f"timm is not usable here: {e}")
    torch.manual_seed(0)
    model = models.load_model("timm:resnet18")
    net, messages = _caught(model, (3, 224, 224), weights="variance")
    assert len(messages) == 1
    names = re.findall(r"module '([\w.]+)'", messages[0])
    assert names == [f"layer{i}.{j}.bn2" for i in range(1, 5) for j in range(2)][:6]
    assert messages[0].startswith("8 layer(s)") and "and 2 more" in messages[0]
    _, messages = _caught(
        models.load_model("timm:resnet18", zero_init_last=False),
        (3, 224, 224),
        weights="variance",
    )
    assert messages == []
    # the warned ERF is narrow: the skip paths' (std 2.6 px against 42 px in the issue)
    std = net.profile("expected_square").std
    assert max(std) < 10
