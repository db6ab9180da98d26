"""Moved to :mod:`toposcope.viz.maps`; this name keeps old imports working (the same module object)."""

import sys

from .viz.maps import __name__ as _target  # noqa: F401  (imports the module)

sys.modules[__name__] = sys.modules["toposcope.viz.maps"]
