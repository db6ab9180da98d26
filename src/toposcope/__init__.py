"""toposcope: topographic filter maps for convolutional speech recognizers.

Training and evaluation live in their modules (``toposcope.train.train``,
``toposcope.evaluate.evaluate``): a package attribute of the same name as a submodule would be
replaced by the module as soon as it is imported.

Public names are imported lazily, so ``import toposcope`` stays fast and light.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_EXPORTS = {
    "Grid": "toposcope.grid",
    "FeatureConfig": "toposcope.features",
    "log_mel": "toposcope.features",
    "Corpus": "toposcope.corpus",
    "Utterance": "toposcope.corpus",
    "CorpusError": "toposcope.corpus",
    "load_config": "toposcope.config",
    "Wav2Letter": "toposcope.model",
    "record": "toposcope.hooks",
    "neighborhood_similarity": "toposcope.topography",
    "topographic_loss": "toposcope.topography",
    "TopographicRegularizer": "toposcope.topography",
    "permutation_null": "toposcope.topography",
    "synthesize": "toposcope.synth",
    "load_run": "toposcope.checkpoint",
    "CharNgramLM": "toposcope.lm",
    "LMConfig": "toposcope.lm",
    "lm_for_corpus": "toposcope.lm",
    "WordNgramLM": "toposcope.wordlm",
    "WordLMConfig": "toposcope.wordlm",
    "DecoderConfig": "toposcope.decode",
    "ctc_beam_search": "toposcope.decode",
    "compute_profiles": "toposcope.analysis.profiles",
    "load_profiles": "toposcope.analysis.profiles",
    "profile_run": "toposcope.analysis.profiles",
    "smooth_map": "toposcope.analysis.maps",
    "find_region": "toposcope.analysis.maps",
    "apply_layout": "toposcope.analysis.layouts",
    "load_layouts": "toposcope.analysis.layouts",
    "profile_module": "toposcope.analysis.adapter",
    "maps_run": "toposcope.analysis.maps",
}

__all__ = sorted(_EXPORTS) + ["__version__"]


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'toposcope' has no attribute {name!r}")
