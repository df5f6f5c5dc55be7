"""The old path of `erftheory.engines.exact`, the exact engine (python-flint and gmpy2 integers).

The same module under its old name: every name of it can be read here, and setting one
here sets it there.
"""

from typing import TYPE_CHECKING

from .engines._alias import alias

alias(__name__, "erftheory.engines.exact")
del alias

if TYPE_CHECKING:
    from .engines.exact import *  # noqa: F403
