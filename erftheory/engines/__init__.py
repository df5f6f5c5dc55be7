r"""The engines: every way erftheory computes $V(z)^n$ (Eq. 9), in one table.

| name | kernels | result | error |
|---|---|---|---|
| ``exact`` | integer, rational (floats read as dyadic rationals) | ints, Fractions | none |
| ``fft`` | numeric | float64 | absolute, see `erftheory.engines.fft` |
| ``float`` | numeric | float64 | $10^{-10}$ relative on normal values (weights $\ge 0$) |
| ``arb`` | numeric | float64 and balls | rigorous balls at ``dps`` digits |
| ``symbolic`` | any | sympy | none |

One module per engine holds its algorithm and its result (`exact`, `fft`, `tilted` for
``float``, `arb`, `symbolic`); every result follows one protocol, `Result`, over a
`Source` (a kernel's power, `KernelPower`, or a network's transfer polynomial,
`TransferPolynomial`). `ENGINES` both selects and builds: each `Engine` says which
sources it takes, when ``auto`` picks it and why, and how it is built. `run` is what
`erftheory.profile` and `erftheory.Network.profile` call; `erftheory.Profile.method` says
which engine ran and `erftheory.Profile.engine_reason` why. The modules other than
`exact` (scipy, sympy) are imported when their engine is first built.

Example:
    >>> from erftheory import Kernel
    >>> r = run(KernelPower(Kernel([0.25, 0.5, 0.25]), 1000))
    >>> r.method, r.reason
    ('float', 'auto: float kernel with nonnegative weights: tilted float64 engine')
    >>> select(KernelPower(Kernel([1, 2, 1]), 10), "auto")[0]
    'exact'
"""

from __future__ import annotations

import importlib
import numbers
from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

from .._errors import ERFTypeError, ERFValueError
from ..kernel import format_value
from . import exact
from .base import BaseResult, Result, require_nonzero_sum
from .source import KernelPower, Source, TransferPolynomial

__all__ = [
    "DEFAULT_DPS",
    "ENGINES",
    "MAX_DPS",
    "METHOD_NAMES",
    "BaseResult",
    "Engine",
    "KernelPower",
    "Result",
    "Source",
    "TransferPolynomial",
    "build",
    "require_nonzero_sum",
    "run",
    "select",
]


DEFAULT_DPS = 30
"""Decimal digits of the ``arb`` engine when ``dps`` is not given."""
MAX_DPS = 100_000
"""The most decimal digits ``method='arb'`` takes."""


@dataclass(frozen=True)
class Engine:
    """One registered engine: what it takes, when ``auto`` picks it, and how it is built.

    Attributes:
        name: the ``method`` that asks for it.
        domains: the source domains it takes (others are an `ERFTypeError`).
        summary: one line on the algorithm and its error.
        module: the module under `erftheory.engines` whose ``build(source, dps)`` makes
            its `Result` (imported on first use).
        auto: the reason ``method="auto"`` picks this engine for a source, or None; the
            rules of the table exclude one another.
        requested: the reason given when the engine is asked for by name.
    """

    name: str
    domains: tuple[str, ...]
    summary: str
    module: str
    auto: Callable[[Source], str | None]
    requested: Callable[[Source], str]

    def build(self, source: Source, dps: int | None = None) -> Result:
        """This engine's result for ``source`` (``dps``: decimal digits, ``arb`` only)."""
        module = importlib.import_module(f"{__name__}.{self.module}")
        result = cast(Result, module.build(source, dps))
        result.method = self.name
        result.dps = dps
        return result


_NUMERIC = ("integer", "rational", "float")
_NO_TILT = (
    "the kernel has negative weights (or a zero sum, or a 2-D support without positive corners)"
)


def _auto_exact(s: Source) -> str | None:
    if not s.is_exact:
        return None
    return f"auto: {s.domain} kernel, so exact integer arithmetic ({exact.plan(s)})"


def _auto_fft(s: Source) -> str | None:
    if s.domain != "float" or s.tiltable:
        return None
    return (
        "auto: float kernel with negative weights (or a zero sum, or a 2-D support "
        "without positive corners): tilting needs positivity, so the plain FFT "
        "with its absolute error bound"
    )


def _auto_float(s: Source) -> str | None:
    if s.domain != "float" or not s.tiltable:
        return None
    return "auto: float kernel with nonnegative weights: tilted float64 engine"


def _auto_symbolic(s: Source) -> str | None:
    if s.domain != "symbolic":
        return None
    return "auto: the kernel has symbols, only sympy can expand it"


def _requested_float(s: Source) -> str:
    if s.tiltable:
        return "requested"
    return (
        f"requested; {_NO_TILT}, so tilting does not apply and the plain FFT with its "
        f"absolute error bound is used"
    )


ENGINES: dict[str, Engine] = {
    e.name: e
    for e in (
        Engine(
            "exact",
            _NUMERIC,
            "python-flint integers: fmpz_poly power, the uniform three-term recurrence, "
            "fmpz_mpoly or Kronecker substitution in 2-D; no error",
            "exact",
            _auto_exact,
            lambda s: f"requested ({exact.plan(s)})",
        ),
        Engine(
            "fft",
            _NUMERIC,
            "plain DTFT sampling, n-th power, inverse FFT; absolute error bound",
            "fft",
            _auto_fft,
            lambda s: "requested",
        ),
        Engine(
            "float",
            _NUMERIC,
            "exponential tilting with small per-window FFTs; 1e-10 relative on normal floats",
            "tilted",
            _auto_float,
            _requested_float,
        ),
        Engine(
            "arb",
            _NUMERIC,
            "python-flint arb balls at dps digits; rigorous enclosures",
            "arb",
            lambda s: None,
            lambda s: "requested",
        ),
        Engine(
            "symbolic",
            (*_NUMERIC, "symbolic"),
            "sympy expressions: python-flint's fmpq_mpoly power for rational polynomial "
            "weights, the exact engine for numeric kernels, sympy's own power otherwise",
            "symbolic",
            _auto_symbolic,
            lambda s: "requested",
        ),
    )
}
METHOD_NAMES = ("auto", *ENGINES)
"""The values of ``method``: ``"auto"`` and the engines' names."""


def select(source: Source, method: str) -> tuple[str, str]:
    """Resolve ``method`` (``"auto"`` or an engine's name) to ``(engine, reason)`` by `ENGINES`.

    ``auto``: symbolic sources → ``symbolic``; integer and rational ones → ``exact``
    (whose reason names the algorithm, `erftheory.engines.exact.plan`); float ones →
    ``float`` when tilting applies (nonnegative weights; in 2-D also separable or with
    positive corners), else ``fft``.

    Raises:
        ERFValueError: ``method`` is not one of `METHOD_NAMES`.
        ERFTypeError: the engine cannot take the source (a symbolic kernel).
    """
    if method not in METHOD_NAMES:
        raise ERFValueError(f"method must be one of {', '.join(METHOD_NAMES)}; got {method!r}")
    if method == "auto":
        for engine in ENGINES.values():
            reason = engine.auto(source)
            if reason is not None:
                return engine.name, reason
        raise AssertionError(f"no engine for a {source.domain} source")  # pragma: no cover
    engine = ENGINES[method]
    if source.domain not in engine.domains:
        raise ERFTypeError(
            f"method={method!r} cannot take a symbolic kernel; use method='symbolic' or "
            f"substitute numbers for its symbols first"
        )
    return method, engine.requested(source)


def build(source: Source, method: str, dps: int | None = None) -> Result:
    """The result of the engine named ``method`` for ``source``, without selection."""
    if method not in ENGINES:
        raise ERFValueError(
            f"method must be one of {', '.join(ENGINES)} here; got {format_value(method)}"
        )
    return ENGINES[method].build(source, dps)


def run(source: Source, method: str = "auto", dps: int | None = None) -> Result:
    """Select an engine for ``source`` (`select`), check ``dps``, and build its result.

    The exact engine reads float weights as the dyadic rationals they are
    (`erftheory.engines.source.Source.exact`), so its total and moments are exact too.

    Raises:
        ERFValueError: the method is unknown; ``dps`` is not a positive integer, is above
            `MAX_DPS`, or is given to another engine than ``arb``.
        ERFTypeError: the engine cannot take the source.
    """
    name, reason = select(source, method)
    if name == "exact":
        source = source.exact()
    if dps is not None:
        shown = format_value(dps, short=True)
        if name != "arb":
            raise ERFValueError(f"dps={shown} is only used by method='arb'; got method={method!r}")
        if isinstance(dps, bool) or not isinstance(dps, numbers.Integral) or dps <= 0:
            raise ERFValueError(f"dps must be a positive integer (decimal digits), got {shown}")
        if dps > MAX_DPS:
            raise ERFValueError(
                f"dps must be at most {MAX_DPS} decimal digits, got {shown}; the arb engine's "
                f"cost grows with the precision"
            )
        dps = int(dps)
    elif name == "arb":
        dps = DEFAULT_DPS
    result = ENGINES[name].build(source, dps)
    result.reason = reason
    return result
