"""Whole real models that plain torch.fx cannot trace (issue 14): timm's VGG.

The head of timm's VGG (``ConvMlp``) branches on ``x.shape``; `from_torch` then traces
the model for the given input shape with torch.fx's ``MetaTracer``. The whole model's
RF includes the head's 7x7 convolution (``pre_logits.fc1``): 150 + 6 * 32 = 342 pixels,
and must equal the support of autograd's input gradient (`autograd_rf`) there. A small
module written here checks the same on a branch that depends on the input size.
"""

from __future__ import annotations

from typing import Any

import pytest

from erftheory import ERFTypeError, MissingDependencyError

torch = pytest.importorskip("torch")
nn = torch.nn
F = torch.nn.functional

from erftheory.torch import models  # noqa: E402 (needs torch)
from erftheory.torch.models import autograd_rf, detach_gates, network_rf  # noqa: E402
from erftheory.torch.trace import from_torch  # noqa: E402


class ShapeBranch(nn.Module):
    """Pools only where the map is larger than 8 pixels (control flow on a shape)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3)
        self.head = nn.Conv2d(2, 2, 5)

    def forward(self, x: Any) -> Any:
        x = self.conv(x)
        if x.shape[-1] > 8:
            x = F.avg_pool2d(x, 2)
        return self.head(x)


@pytest.mark.parametrize(("side", "size"), [(20, 12), (8, 7)])
def test_shape_branch_is_read_for_the_input_shape(side, size):
    net = from_torch(ShapeBranch(), (1, side, side))
    assert net.receptive_field.size == (size, size)  # 3 + 2 * 4 pooled, 3 + 4 not
    got = autograd_rf(detach_gates(ShapeBranch(), input_shape=(1, side, side)), (1, side, side))
    assert got == network_rf(net, side)


def test_value_dependent_control_flow_is_still_refused():
    class ValueBranch(nn.Module):
        def forward(self, x: Any) -> Any:
            return x if x.sum() > 0 else -x

    with pytest.raises(ERFTypeError, match=r"torch\.fx could not trace ValueBranch"):
        from_torch(ValueBranch(), (1, 8, 8))


def test_timm_vgg_whole_model():
    try:
        models.import_timm()
    except (MissingDependencyError, ImportError) as e:
        pytest.skip(f"timm is not usable here: {e}")
    model = models.load_model("timm:vgg11")
    net = from_torch(model, (3, 224, 224))
    assert net.receptive_field.size == (342, 342)
    assert net.receptive_field.jump == (32, 32)
    n = max(net.min_input_size())
    got = autograd_rf(detach_gates(model, input_shape=(3, n, n)), (3, n, n))
    assert got == network_rf(net, n)
