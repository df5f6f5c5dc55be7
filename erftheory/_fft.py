"""The old path of `erftheory.engines.fft`, the plain ``fft`` engine.

The same module under its old name: every name of it can be read here, and setting one
here sets it there.
"""

from typing import TYPE_CHECKING

from .engines._alias import alias

alias(__name__, "erftheory.engines.fft")
del alias

if TYPE_CHECKING:
    from .engines.fft import *  # noqa: F403
