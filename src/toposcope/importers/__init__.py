"""Importers for real corpora into the native corpus format (docs/method.md § Data and phones, §2.4).

``import_timit`` (LDC and NLTK-sample TIMIT, NIST SPHERE audio), ``import_textgrid`` (Praat
TextGrids, e.g. MFA output), ``import_lab`` (Festival/ESPS ``.lab``); shared machinery in
:mod:`toposcope.importers.common`; forced alignment of own audio in :mod:`toposcope.importers.align`.
"""

from .common import (CheckResult, ImporterError, ImportResult, Skipped, check_corpus, load_audio,
                     read_label_map)
from .lab import import_lab, read_lab
from .sphere import SphereError, read_sphere
from .textgrid import import_textgrid
from .timit import import_timit
from .librispeech import import_librispeech
from .lhotse import export_lhotse, import_lhotse

__all__ = [
    "ImporterError", "ImportResult", "Skipped", "CheckResult", "check_corpus", "load_audio",
    "read_label_map", "import_timit", "import_textgrid", "import_lab", "read_lab", "read_sphere",
    "SphereError", "import_librispeech", "import_lhotse", "export_lhotse",
]
