"""Moved to :mod:`toposcope.viz.inputs`; this name keeps old imports working (the same module object)."""

import sys

from .viz.inputs import __name__ as _target  # noqa: F401  (imports the module)

sys.modules[__name__] = sys.modules["toposcope.viz.inputs"]
