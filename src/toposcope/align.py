"""Moved to :mod:`toposcope.importers.align`; this name keeps old imports working (the same module object)."""

import sys

from .importers.align import __name__ as _target  # noqa: F401  (imports the module)

sys.modules[__name__] = sys.modules["toposcope.importers.align"]
