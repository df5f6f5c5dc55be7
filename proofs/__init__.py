"""Runnable proofs of the paper's equations and claims (installed as ``erftheory.proofs``).

Each module states one equation or claim (``NAME``, ``STATEMENT``, ``LATEX``), checks it
symbolically with sympy and spot-checks it against the exact engine in ``verify()``, and
lists deliberately altered statements in ``VARIANTS`` that ``verify(variant)`` rejects.
`PROOFS` is the registry, in the order of the paper; ``python -m proofs`` and
``erftheory verify`` run every registered proof.
"""

PROOFS = (
    "eq01_05_dtft",
    "case_k2_binomial",
    "eq06_08_random_weights",
    "eq09_probability",
    "eq10_moments",
    "eq11_uniform_variance",
    "sec23_erf_ratio_fig2",
    "gaussian_limit_rates",
    "sec24_relu_factor",
    "sec25_architectures",
    "sec4_max_variance",
)
"""Names of the proof modules, in the order of the paper."""
