"""Hostile arguments for `empirical_erf` and `from_torch`: a result or a one-line error.

Every case runs under ``erftheory.memory_limit("256MiB")`` and must end in a correct
result or in an `ERFValueError` / `ERFTypeError` whose message is one line; any other
exception (a raw ``RuntimeError`` from the allocator, a ``TypeError`` from deep inside
torch.fx) fails the test. Nothing here can hang: the valid sizes are small, the huge
ones are refused before anything is allocated, and ``runs`` stays small.

The strategies draw from lists of hostile values (zero, negative, huge, float, bool and
string sizes; integer, complex and string dtypes; devices that do not exist here;
models that raise, return tuples or non-tensors, have no spatial axis or hold NaN
weights), and a sweep builds every ``torch.nn`` layer class that takes no arguments
plus a list of common ones, bare and inside a model, for `from_torch`. Hypothesis runs
derandomized (the same cases every time), without deadlines. `CASES` counts the
adversarial cases tried; ``test_case_count`` prints the total.
"""

from __future__ import annotations

import collections
import functools
import inspect
import itertools
import math
import warnings
from collections.abc import Callable
from typing import Any

import pytest

torch = pytest.importorskip("torch")

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from torch import nn  # noqa: E402

import erftheory  # noqa: E402
from erftheory import ERFTypeError, ERFValueError, Network  # noqa: E402
from erftheory.layers import Conv  # noqa: E402
from erftheory.torch import BatchedNetworks, to_torch  # noqa: E402
from erftheory.torch.empirical import EmpiricalERF, empirical_erf  # noqa: E402
from erftheory.trace import from_torch  # noqa: E402

pytestmark = pytest.mark.usefixtures("fixed_constant_pool")  # see tests/conftest.py

F64 = torch.float64
LIMIT = "256MiB"
EXAMPLES = 150

FUZZ = settings(
    derandomize=True,
    deadline=None,
    max_examples=EXAMPLES,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)

CASES: collections.Counter[str] = collections.Counter()
"""Adversarial cases tried, per test."""


def outcome(kind: str, call: Callable[[], Any]) -> Any:
    """Run one case: its result, or None after an ERF error with a one-line message."""
    CASES[kind] += 1
    with erftheory.memory_limit(LIMIT), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # warnings are not errors here
        try:
            return call()
        except (ERFValueError, ERFTypeError) as e:
            message = str(e)
            assert message, "an empty message"
            assert "\n" not in message, f"a multi-line message: {message!r}"
            assert len(message) < 2000, f"a message of {len(message)} characters"
            return None


# --------------------------------------------------------------------------- models
class Raises(nn.Module):
    def __init__(self, exc: Exception) -> None:
        super().__init__()
        self.exc = exc

    def forward(self, x: Any) -> Any:
        raise self.exc


class Returns(nn.Module):
    def __init__(self, fn: Callable[[Any], Any]) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, x: Any) -> Any:
        return self.fn(x)


class NaNConv(nn.Module):
    def __init__(self, value: float) -> None:
        super().__init__()
        self.conv = nn.Conv1d(1, 1, 3, padding=1, bias=False, dtype=F64)
        with torch.no_grad():
            self.conv.weight.fill_(value)

    def forward(self, x: Any) -> Any:
        return self.conv(x)


class Allocates(nn.Module):
    def forward(self, x: Any) -> Any:
        return x + torch.empty(2**60, dtype=torch.uint8).sum()


class GlobalNoise(nn.Module):
    def forward(self, x: Any) -> Any:
        return x * torch.rand_like(x)


def _conv1d() -> nn.Module:
    return to_torch(Network([Conv(3)]))


def _conv2d() -> nn.Module:
    return to_torch(Network([Conv((3, 3))]))


MODELS: dict[str, Callable[[], Any]] = {
    "conv1d": _conv1d,
    "conv2d": _conv2d,
    "conv1d_float32": lambda: nn.Conv1d(1, 2, 3, padding=1),
    "conv2d_3ch": lambda: nn.Conv2d(3, 2, 3, dtype=F64),
    "linear": lambda: nn.Linear(5, 5, dtype=F64),
    "conv_then_linear": lambda: nn.Sequential(
        nn.Conv1d(1, 1, 3, padding=1, dtype=F64), nn.Linear(5, 5, dtype=F64), nn.ReLU()
    ),
    "flatten": lambda: nn.Flatten(),
    "flatten_spatial": lambda: Returns(lambda x: x.flatten(2)),
    "identity": lambda: nn.Identity(),
    "batchnorm_train": lambda: nn.Sequential(nn.Conv1d(1, 2, 1, dtype=F64), nn.BatchNorm1d(2)),
    "raises_runtime": lambda: Raises(RuntimeError("bad\nworse")),
    "raises_type": lambda: Raises(TypeError("wrong type")),
    "raises_key": lambda: Raises(KeyError("k")),
    "raises_assert": lambda: Raises(AssertionError()),
    "raises_recursion": lambda: Raises(RecursionError("too deep")),
    "raises_oom": lambda: Raises(torch.OutOfMemoryError("CUDA out of memory")),
    "allocates_1EiB": Allocates,
    "returns_tuple": lambda: Returns(lambda x: (x, x)),
    "returns_list": lambda: Returns(lambda x: [x]),
    "returns_dict": lambda: Returns(lambda x: {"out": x}),
    "returns_none": lambda: Returns(lambda x: None),
    "returns_int": lambda: Returns(lambda x: 3),
    "returns_scalar": lambda: Returns(lambda x: x.sum()),
    "returns_long": lambda: Returns(lambda x: (x > 0).long()),
    "returns_complex": lambda: Returns(lambda x: x * 1j),
    "returns_batch_mismatch": lambda: Returns(lambda x: x[:1]),
    "returns_detached": lambda: Returns(lambda x: x.detach() * 2),
    "returns_empty": lambda: Returns(lambda x: x[..., :0]),
    "inplace_on_input": lambda: Returns(lambda x: x.mul_(2)),
    "nan_weights": lambda: NaNConv(math.nan),
    "inf_weights": lambda: NaNConv(math.inf),
    "global_noise": GlobalNoise,
    "batched_networks": lambda: BatchedNetworks(Network([Conv(3)]), 2, generator=0),
    "factory": lambda: lambda i, g: to_torch(Network([Conv(3)]), weights="random", generator=g),
    "factory_raises": lambda: lambda i, g: 1 / 0,
    "factory_returns_int": lambda: lambda i, g: 3,
    "factory_wrong_arity": lambda: lambda: _conv1d(),
    "not_a_model": lambda: "conv",
    "none": lambda: None,
}

SIZES = [-2, -1, 0, 1, 2, 3, 5, 9, 2**31, 2**62, 10**30]
JUNK = [None, "abc", 1.5, True, float("nan"), (), [], {}, object()]


def _shapes() -> st.SearchStrategy[Any]:
    dims = st.lists(st.sampled_from(SIZES), min_size=0, max_size=4)
    small = st.lists(st.sampled_from([1, 2, 3, 5, 9]), min_size=2, max_size=3)
    return st.one_of(
        st.none(),
        dims.map(tuple),
        dims,
        small.map(tuple),
        st.tuples(st.sampled_from([1, 1.5, True, "1"]), st.sampled_from([5, 5.0, None])),
        st.sampled_from(JUNK),
    )


def _inputs() -> st.SearchStrategy[Any]:
    def tensor(shape: tuple[int, ...], dtype: Any) -> Any:
        return torch.zeros(shape, dtype=dtype)

    shapes = st.lists(st.sampled_from([0, 1, 2, 5]), min_size=0, max_size=4).map(tuple)
    dtypes = st.sampled_from([F64, torch.float32, torch.int64, torch.bool, torch.complex64])
    tensors = st.builds(tensor, shapes, dtypes)
    return st.one_of(
        st.just("random"),
        st.sampled_from(["uniform", "", "RANDOM"]),
        tensors,
        st.lists(tensors, max_size=3),
        st.lists(st.sampled_from([None, "x", 3, (torch.zeros(2, 1, 5),)]), max_size=2),
        st.sampled_from(JUNK),
    )


DEVICES: list[Any] = [
    "cpu",
    "cuda",
    "cuda:7",
    "mps",
    "meta",
    "xla",
    "garbage",
    "",
    -1,
    3,
    1.5,
    None,
    torch.device("cpu"),
]
DTYPES: list[Any] = [
    F64,
    torch.float32,
    torch.float16,
    torch.bfloat16,
    torch.int64,
    torch.bool,
    torch.complex64,
    "float64",
    None,
    float,
]

ARGS = st.fixed_dictionaries(
    {
        "model": st.sampled_from(sorted(MODELS)),
        "input_shape": _shapes(),
    },
    optional={
        "inputs": _inputs(),
        "statistic": st.sampled_from(["mean", "mean_square", "mean_abs", "relu", "median", None]),
        "channel_reduce": st.sampled_from(["sum", "sum_after", "max", 3]),
        "runs": st.sampled_from([-1, 0, 1, 2, True, 1.5, "2", None]),
        "batch_size": st.sampled_from([-1, 0, 1, 2, 3, 2**40, 10**30, 1.5, 2.0, True, False, "2"]),
        "device": st.sampled_from(DEVICES),
        "seed": st.sampled_from([0, 1, -1, 2**64 - 1, 2**64, 1.5, True, "3", None]),
        "dtype": st.sampled_from(DTYPES),
        "output_index": st.sampled_from([None, 0, 1, -1, 2**40, (0,), (0, 0), 1.5, "a", True]),
        "network": st.sampled_from([None, "net", Network([Conv(3)]), Network([Conv((3, 3))])]),
        "progress": st.sampled_from([False, None, 0]),
    },
)


def _call_empirical(args: dict[str, Any]) -> Any:
    kwargs = dict(args)
    model = MODELS[kwargs.pop("model")]()
    shape = kwargs.pop("input_shape")
    return empirical_erf(model, shape, **kwargs)


@FUZZ
@given(ARGS)
def test_empirical_erf_hostile_arguments(args: dict[str, Any]) -> None:
    result = outcome("empirical_erf", lambda: _call_empirical(args))
    if result is not None:
        assert isinstance(result, EmpiricalERF)
        assert result.count >= 0 and result.nonfinite >= 0
        assert result.map.shape == result.stderr.shape == result.shape
        assert len(result.centre) == result.ndim


@FUZZ
@given(
    st.sampled_from(sorted(MODELS)),
    st.sampled_from([(1, 5), (1, 9), (2, 9), (1, 5, 5), (3, 5, 5), (1, 2**20)]),
    st.sampled_from([1, 2, 4]),
    st.sampled_from([0, 7]),
)
def test_empirical_erf_hostile_models(name: str, shape: Any, batch: int, seed: int) -> None:
    def call() -> Any:
        model = MODELS[name]()
        return empirical_erf(model, shape, batch_size=batch, runs=2, seed=seed)

    result = outcome("empirical_erf models", call)
    if result is not None:
        assert isinstance(result, EmpiricalERF)
        assert result.shape == shape[1:]


HOSTILE: dict[str, list[Any]] = {
    "input_shape": [(), (5,), (0, 9), (1, -3), (1, 2**62), (1, 9.0), (True, 9), "1,9", 9, None],
    "inputs": [
        "uniform",
        3,
        None,
        torch.zeros(0, 1, 9, dtype=F64),
        torch.zeros(2, 1, 8, dtype=F64),
        torch.zeros(2, 9, dtype=F64),
        torch.zeros(2, 1, 9, dtype=torch.complex64),
        torch.zeros(2, 1, 9, dtype=torch.bool),
        torch.full((2, 1, 9), math.nan, dtype=F64),
        [torch.zeros(2, 1, 9, dtype=F64), "x"],
        iter([torch.zeros(2, 1, 9, dtype=F64)]),
        [],
    ],
    "batch_size": [0, -1, 2**40, 10**30, 1.5, 2.0, True, False, "2"],
    "runs": [0, -1, True, 1.5, "2", None],
    "statistic": ["median", None, 3, ["mean"]],
    "channel_reduce": ["max", None, ("sum",)],
    "device": ["cuda", "cuda:7", "mps", "meta", "xla", "garbage", "", -1, 3, 1.5, None],
    "seed": [-1, 2**64, 1.5, True, "3", None, torch.Generator().manual_seed(1)],
    "dtype": [torch.int64, torch.bool, torch.complex64, "float64", None, float, torch.float16],
    "output_index": [-1, 9, 2**40, (0, 0), (), 1.5, "a", True, (True,), [4]],
    "network": ["net", Network([Conv((3, 3))]), Network([Conv(5)])],
}
ONE_HOSTILE = [(name, i) for name, values in HOSTILE.items() for i in range(len(values))]


@pytest.mark.parametrize(("name", "index"), ONE_HOSTILE)
def test_empirical_erf_one_hostile_argument(name: str, index: int) -> None:
    """A valid call with one argument replaced: every validation path on its own."""
    kwargs: dict[str, Any] = {"input_shape": (1, 9), "batch_size": 2}
    value = HOSTILE[name][index]
    if name == "inputs":
        kwargs = {"input_shape": None}
    kwargs[name] = value
    if name == "batch_size" and "inputs" not in kwargs:
        kwargs["inputs"] = "random"
    shape = kwargs.pop("input_shape")
    result = outcome(
        "empirical_erf one argument", lambda: empirical_erf(_conv1d(), shape, **kwargs)
    )
    if result is not None:
        assert isinstance(result, EmpiricalERF)


# --------------------------------------------------------------------------- from_torch
def _zero_arg_layers() -> list[type]:
    """Every ``torch.nn`` layer class that can be built without arguments."""
    out = []
    for name in sorted(dir(nn)):
        cls = getattr(nn, name)
        if not (inspect.isclass(cls) and issubclass(cls, nn.Module)) or name.startswith("_"):
            continue
        if "Lazy" in name:  # lazy modules need a first forward to exist at all
            continue
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                cls()
        except Exception:
            continue
        out.append(cls)
    return out


COMMON_LAYERS: dict[str, Callable[[], nn.Module]] = {
    "Conv1d": lambda: nn.Conv1d(1, 1, 3),
    "Conv2d": lambda: nn.Conv2d(1, 1, 3),
    "Conv3d": lambda: nn.Conv3d(1, 1, 3),
    "Conv2d_groups": lambda: nn.Conv2d(2, 2, 3, groups=2),
    "Conv2d_reflect": lambda: nn.Conv2d(1, 1, 3, padding=1, padding_mode="reflect"),
    "ConvTranspose2d": lambda: nn.ConvTranspose2d(1, 1, 3),
    "MaxPool2d": lambda: nn.MaxPool2d(2),
    "MaxPool2d_ceil": lambda: nn.MaxPool2d(2, ceil_mode=True),
    "MaxPool2d_indices": lambda: nn.MaxPool2d(2, return_indices=True),
    "AvgPool2d": lambda: nn.AvgPool2d(3, stride=2, padding=1),
    "AvgPool2d_divisor": lambda: nn.AvgPool2d(2, divisor_override=3),
    "LPPool2d": lambda: nn.LPPool2d(2, 2),
    "AdaptiveAvgPool2d_1": lambda: nn.AdaptiveAvgPool2d(1),
    "AdaptiveAvgPool2d_3": lambda: nn.AdaptiveAvgPool2d(3),
    "AdaptiveMaxPool2d_idx": lambda: nn.AdaptiveMaxPool2d(2, return_indices=True),
    "BatchNorm2d": lambda: nn.BatchNorm2d(1),
    "BatchNorm2d_untracked": lambda: nn.BatchNorm2d(1, track_running_stats=False),
    "InstanceNorm2d": lambda: nn.InstanceNorm2d(1),
    "GroupNorm": lambda: nn.GroupNorm(1, 1),
    "LayerNorm": lambda: nn.LayerNorm(8),
    "LocalResponseNorm": lambda: nn.LocalResponseNorm(2),
    "PReLU": lambda: nn.PReLU(),
    "Softmax": lambda: nn.Softmax(dim=1),
    "LogSoftmax": lambda: nn.LogSoftmax(dim=1),
    "Threshold": lambda: nn.Threshold(0.1, 0.0),
    "Hardtanh": lambda: nn.Hardtanh(),
    "Dropout_nan": lambda: _with(nn.Dropout(0.5), p=math.nan),
    "Upsample": lambda: nn.Upsample(scale_factor=2),
    "PixelShuffle": lambda: nn.PixelShuffle(1),
    "ZeroPad2d": lambda: nn.ZeroPad2d(1),
    "ReflectionPad2d": lambda: nn.ReflectionPad2d(1),
    "Unfold": lambda: nn.Unfold(2),
    "Fold": lambda: nn.Fold((8, 8), 1),
    "Unflatten": lambda: nn.Unflatten(1, (1, 1)),
    "Flatten": lambda: nn.Flatten(),
    "Linear": lambda: nn.Linear(8, 8),
    "Bilinear": lambda: nn.Bilinear(8, 8, 8),
    "Embedding": lambda: nn.Embedding(10, 4),
    "LSTM": lambda: nn.LSTM(8, 8),
    "GRU": lambda: nn.GRU(8, 8, batch_first=True),
    "RNN": lambda: nn.RNN(8, 8),
    "MultiheadAttention": lambda: nn.MultiheadAttention(8, 2),
    "TransformerEncoderLayer": lambda: nn.TransformerEncoderLayer(8, 2),
    "ChannelShuffle": lambda: nn.ChannelShuffle(1),
    "CosineSimilarity": lambda: nn.CosineSimilarity(),
    "ModuleList": lambda: nn.ModuleList([nn.Conv2d(1, 1, 3)]),
    "ModuleDict": lambda: nn.ModuleDict({"a": nn.Conv2d(1, 1, 3)}),
    "ParameterList": lambda: nn.ParameterList([nn.Parameter(torch.zeros(1))]),
    "nan_conv": lambda: _with(nn.Conv2d(1, 1, 3), weight=math.nan),
    "inf_bn_var": lambda: _with(nn.BatchNorm2d(1), running_var=math.inf),
    "neg_bn_var": lambda: _with(nn.BatchNorm2d(1), running_var=-1.0),
}


def _with(module: nn.Module, **values: float) -> nn.Module:
    with torch.no_grad():
        for name, v in values.items():
            t = getattr(module, name)
            if isinstance(t, torch.Tensor):
                t.fill_(v)
            else:
                setattr(module, name, v)
    return module


class Slicing(nn.Module):
    def __init__(self, index: Any) -> None:
        super().__init__()
        self.index = index

    def forward(self, x: Any) -> Any:
        return x[self.index]


class Functional(nn.Module):
    def __init__(self, fn: Callable[[Any], Any]) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 1, 3, padding=1)
        self.fn = fn

    def forward(self, x: Any) -> Any:
        return self.fn(self.conv(x))


FORWARDS: dict[str, Callable[[], nn.Module]] = {
    "slice_channels": lambda: Slicing((slice(None), slice(0, 1))),
    "slice_ellipsis": lambda: Slicing((Ellipsis, slice(None, None, 2))),
    "index_int": lambda: Slicing(0),
    "index_none": lambda: Slicing((slice(None), None)),
    "raises": lambda: Raises(RuntimeError("boom\nline 2")),
    "returns_tuple": lambda: Returns(lambda x: (x, x)),
    "returns_none": lambda: Returns(lambda x: None),
    "returns_int": lambda: Returns(lambda x: 3),
    "returns_shape": lambda: Returns(lambda x: x.shape),
    "permute": lambda: Returns(lambda x: x.permute(0, 1, 3, 2)),
    "transpose": lambda: Returns(lambda x: x.transpose(2, 3)),
    "square": lambda: Returns(lambda x: x * x),
    "matmul": lambda: Returns(lambda x: x @ x),
    "chunk_sum": lambda: Returns(lambda x: sum(x.chunk(2, 1))),
    "scale_nan": lambda: Functional(lambda y: y * math.nan),
    "scale_inf": lambda: Functional(lambda y: y / 0.0),
    "add_inf": lambda: Functional(lambda y: y + math.inf),
    "pow": lambda: Functional(lambda y: y**2),
    "exp": lambda: Functional(torch.exp),
    "cat_dim2": lambda: Functional(lambda y: torch.cat([y, y], 2)),
    "cat_channels": lambda: Functional(lambda y: torch.cat([y, y], 1)),
    "stack": lambda: Functional(lambda y: torch.stack([y, y], 1)),
    "where": lambda: Functional(lambda y: torch.where(y > 0, y, 0.0)),
    "pad": lambda: Functional(lambda y: nn.functional.pad(y, (1, 1, 1, 1))),
    "interpolate": lambda: Functional(lambda y: nn.functional.interpolate(y, scale_factor=2)),
    "softmax": lambda: Functional(lambda y: y.softmax(1)),
    "max_channels": lambda: Functional(lambda y: y.amax(1, keepdim=True)),
    "mean_spatial": lambda: Functional(lambda y: y.mean((2, 3))),
    "view_flat": lambda: Functional(lambda y: y.view(y.shape[0], -1)),
    "gate": lambda: Functional(lambda y: y * torch.sigmoid(y.mean((2, 3), keepdim=True))),
    "detach": lambda: Functional(lambda y: y.detach()),
    "item": lambda: Functional(lambda y: y * y.sum().item()),
    "control_flow": lambda: Functional(lambda y: y if y.sum() > 0 else -y),
}

ZERO_ARG = _zero_arg_layers()


def _layer(key: str) -> nn.Module:
    if key in COMMON_LAYERS:
        return COMMON_LAYERS[key]()
    if key in FORWARDS:
        return FORWARDS[key]()
    cls = getattr(nn, key)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return cls()


LAYER_KEYS = sorted(COMMON_LAYERS) + sorted(FORWARDS) + [c.__name__ for c in ZERO_ARG]
WRAPS = ("bare", "after_conv", "nested")


def _model(key: str, wrap: str, ndim: int) -> nn.Module:
    layer = _layer(key)
    if wrap == "bare":
        return layer
    conv = nn.Conv1d(1, 1, 3, padding=1) if ndim == 1 else nn.Conv2d(1, 1, 3, padding=1)
    if wrap == "after_conv":
        return nn.Sequential(conv, layer)
    return nn.Sequential(nn.Sequential(conv, nn.ReLU()), nn.Sequential(layer))


@pytest.mark.parametrize("key", LAYER_KEYS)
def test_from_torch_every_layer_gives_a_network_or_one_line(key: str) -> None:
    for wrap, (ndim, shape), weights in itertools.product(
        WRAPS, ((2, (1, 8, 8)), (1, (1, 8))), ("ones", "model", "variance")
    ):
        model = _model(key, wrap, ndim)
        result = outcome(
            "from_torch layers", functools.partial(from_torch, model, shape, weights=weights)
        )
        if result is not None:
            assert isinstance(result, Network)


FT_ARGS = st.fixed_dictionaries(
    {
        "key": st.sampled_from(LAYER_KEYS),
        "wrap": st.sampled_from(WRAPS),
        "ndim": st.sampled_from([1, 2]),
        "input_shape": _shapes(),
        "weights": st.sampled_from(["ones", "model", "variance", "random", "", None, 3, ["ones"]]),
    }
)


@FUZZ
@given(FT_ARGS)
def test_from_torch_hostile_arguments(args: dict[str, Any]) -> None:
    def call() -> Any:
        model = _model(args["key"], args["wrap"], args["ndim"])
        return from_torch(model, args["input_shape"], weights=args["weights"])

    result = outcome("from_torch", call)
    if result is not None:
        assert isinstance(result, Network)


@FUZZ
@given(st.sampled_from([None, 3, "conv", [nn.Conv2d(1, 1, 3)], nn.Conv2d, object()]))
def test_from_torch_non_modules(module: Any) -> None:
    assert outcome("from_torch non-modules", lambda: from_torch(module, (1, 8, 8))) is None


def test_case_count() -> None:
    total = sum(CASES.values())
    print(f"adversarial cases tried: {total} {dict(CASES)}")
    if total == 0:
        pytest.skip("run with the whole file to count the cases")
