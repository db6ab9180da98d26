"""Optimal inputs for filters and regions of the topographic map (docs/method.md § Optimal inputs, seed §3; Yosinski et al. 2015).

* :mod:`.objectives` -- what to maximise (a filter's / a region's mean activation, sums, weights)
* :mod:`.param` -- input geometry (receptive fields, valid frames) and the input parameterisations (natural:
  1/f Fourier + per-band squash into the data's percentile range; unconstrained: pixels)
* :mod:`.transforms` -- regularisers: L2 decay, total variation, periodic blur, random time jitter, data-range clipping
* :mod:`.render` -- the optimisation loop (tensors in, tensors out)
* :mod:`.data_max` -- the largest value of an objective on real data (the sanity check)
* :mod:`.run` -- ``toposcope optimize``: regions of a run directory -> ``RUN/optimal/``
"""

from .data_max import (BandHistogram, DataMaxima, FeatureStats, data_maxima, feature_stats, naturalness,
                       sliding_max_mean)
from .objectives import FilterActivation, Objective, PerSample, RegionActivation, Scaled, Sum, region_objectives
from .param import InputGeometry, MelInput, ReceptiveField, SpectralMelInput, input_geometry, receptive_field
from .render import OptimizeConfig, OptimizeResult, activations, optimize_inputs
from .transforms import clip_to_range, gaussian_blur, jitter, l2_penalty, random_offsets, total_variation

__all__ = [
    "Objective", "FilterActivation", "RegionActivation", "Sum", "Scaled", "PerSample", "region_objectives",
    "ReceptiveField", "receptive_field", "InputGeometry", "input_geometry", "MelInput", "SpectralMelInput",
    "l2_penalty", "total_variation", "gaussian_blur", "jitter", "random_offsets", "clip_to_range",
    "OptimizeConfig", "OptimizeResult", "optimize_inputs", "activations",
    "DataMaxima", "data_maxima", "sliding_max_mean", "FeatureStats", "feature_stats", "BandHistogram", "naturalness",
    "optimize_run", "choose_groups",
]


def __getattr__(name):  # the orchestration imports checkpoint/maps/profiles: load it lazily
    if name in ("optimize_run", "choose_groups"):
        from . import run

        return getattr(run, name)
    raise AttributeError(f"module 'toposcope.optimize' has no attribute {name!r}")
