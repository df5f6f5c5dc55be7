"""``python -m proofs`` (from the repository root) or ``python -m erftheory.proofs``."""

import sys

from erftheory.verify import main

sys.exit(main(package=__package__ or "erftheory.proofs"))
