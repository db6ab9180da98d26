"""Moved to :mod:`toposcope.analysis.filters`; this name keeps old imports working (the same module object)."""

import sys

from .analysis.filters import __name__ as _target  # noqa: F401  (imports the module)

sys.modules[__name__] = sys.modules["toposcope.analysis.filters"]
