"""Moved to :mod:`toposcope.analysis.maps`; this name keeps old imports working (the same module object)."""

import sys

from .analysis.maps import __name__ as _target  # noqa: F401  (imports the module)

sys.modules[__name__] = sys.modules["toposcope.analysis.maps"]
