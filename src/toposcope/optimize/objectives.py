"""Objectives for optimal inputs: small composable pieces (docs/method.md § Optimal inputs, seed §3).

An objective maps recorded activations ``acts[layer]`` of shape ``(B, C, T_l)`` (post-ReLU, from
:func:`toposcope.hooks.record`) to one value per batch element ``(B,)``. Every objective here is
the **time mean of a per-frame value**: ``value = mean_{t in frames} per_frame(acts)[:, t]``, where
``frames`` are the layer's output frames to average over (by default all; the optimiser passes the
"valid" frames whose receptive field lies inside the input, see :mod:`.param`). The same per-frame
series, slid over real utterances, gives the data-side maximum (:mod:`.data_max`).

* :class:`FilterActivation` -- one filter's mean activation (``acts[:, i].mean(t)``).
* :class:`RegionActivation` -- joint activation of several filters (mean over the filters, then
  over time), e.g. the 3x3 region of docs/method.md § Maps and regions.
* ``a + b``, ``w * a``, ``a - b``, :class:`Sum` -- linear combinations.
* :class:`PerSample` -- a different objective for each batch element (the region's 9
  single-filter targets + the joint one optimised as one batch of 10).

The optimiser *maximises* the objective: its loss is ``-objective + regularisers``.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import torch

__all__ = ["Objective", "FilterActivation", "RegionActivation", "Sum", "Scaled", "PerSample",
           "region_objectives"]

Acts = Mapping[str, torch.Tensor]
Frames = Mapping[str, slice] | None


def _frames(frames: Frames, layer: str) -> slice:
    if frames is None or layer not in frames:
        return slice(None)
    return frames[layer]


class Objective:
    """Base class. Subclasses define :attr:`layers` and :meth:`per_frame` (or override ``__call__``)."""

    #: layer names whose activations the objective reads
    layers: tuple[str, ...] = ()

    def per_frame(self, acts: Acts) -> torch.Tensor:
        """``(B, T_l)`` per-frame value; defined only for single-layer objectives."""
        raise NotImplementedError

    def __call__(self, acts: Acts, frames: Frames = None) -> torch.Tensor:
        """``(B,)``: the per-frame value averaged over ``frames[layer]`` (default: all frames)."""
        if len(self.layers) != 1:
            raise NotImplementedError(f"{type(self).__name__} spans {len(self.layers)} layers; override __call__")
        layer = self.layers[0]
        v = self.per_frame(acts)[:, _frames(frames, layer)]
        if v.shape[1] == 0:
            raise ValueError(f"no output frames of {layer} to average over: the input is shorter than the "
                             f"layer's receptive field")
        return v.mean(dim=1)

    # -- composition ---------------------------------------------------------------------------
    def __add__(self, other: "Objective") -> "Objective":
        if not isinstance(other, Objective):
            return NotImplemented
        return Sum([self, other])

    def __sub__(self, other: "Objective") -> "Objective":
        if not isinstance(other, Objective):
            return NotImplemented
        return Sum([self, Scaled(other, -1.0)])

    def __mul__(self, w: float) -> "Objective":
        if isinstance(w, Objective) or not isinstance(w, (int, float)):
            return NotImplemented
        return Scaled(self, float(w))

    __rmul__ = __mul__

    def __neg__(self) -> "Objective":
        return Scaled(self, -1.0)


def _need(acts: Acts, layer: str) -> torch.Tensor:
    if layer not in acts:
        raise KeyError(f"no recorded activations for layer {layer!r} (recorded: {', '.join(acts) or 'none'})")
    return acts[layer]


class FilterActivation(Objective):
    """Mean post-ReLU activation of filter ``index`` of ``layer``: per frame ``acts[layer][:, index, t]``."""

    def __init__(self, layer: str, index: int):
        if isinstance(index, bool) or int(index) != index or index < 0:
            raise ValueError(f"filter index must be a non-negative integer, got {index!r}")
        self.layer, self.index = layer, int(index)
        self.layers = (layer,)

    def per_frame(self, acts: Acts) -> torch.Tensor:
        a = _need(acts, self.layer)
        if self.index >= a.shape[1]:
            raise ValueError(f"filter {self.index} does not exist: {self.layer} has {a.shape[1]} filters")
        return a[:, self.index]

    def __repr__(self) -> str:
        return f"FilterActivation({self.layer!r}, {self.index})"


class RegionActivation(Objective):
    """Joint activation of ``indices`` of ``layer``: per frame the mean over those filters."""

    def __init__(self, layer: str, indices: Sequence[int]):
        idx = [int(i) for i in indices]
        if not idx:
            raise ValueError("a region needs at least one filter")
        if min(idx) < 0 or len(set(idx)) != len(idx):
            raise ValueError(f"region filter indices must be distinct and non-negative, got {list(indices)}")
        self.layer, self.indices = layer, tuple(idx)
        self.layers = (layer,)

    def per_frame(self, acts: Acts) -> torch.Tensor:
        a = _need(acts, self.layer)
        if max(self.indices) >= a.shape[1]:
            raise ValueError(f"region filter {max(self.indices)} does not exist: {self.layer} has {a.shape[1]}")
        return a[:, list(self.indices)].mean(dim=1)

    def __repr__(self) -> str:
        return f"RegionActivation({self.layer!r}, {list(self.indices)})"


class Scaled(Objective):
    """``weight * objective``."""

    def __init__(self, objective: Objective, weight: float):
        self.objective, self.weight = objective, float(weight)
        self.layers = objective.layers

    def per_frame(self, acts: Acts) -> torch.Tensor:
        return self.weight * self.objective.per_frame(acts)

    def __call__(self, acts: Acts, frames: Frames = None) -> torch.Tensor:
        return self.weight * self.objective(acts, frames)

    def __repr__(self) -> str:
        return f"{self.weight:g} * {self.objective!r}"


class Sum(Objective):
    """Sum of objectives (may span layers; ``per_frame`` only when they share one layer)."""

    def __init__(self, objectives: Sequence[Objective]):
        if not objectives:
            raise ValueError("Sum needs at least one objective")
        self.objectives = list(objectives)
        self.layers = tuple(dict.fromkeys(l for o in self.objectives for l in o.layers))

    def per_frame(self, acts: Acts) -> torch.Tensor:
        if len(self.layers) != 1:
            raise ValueError(f"a per-frame series needs a single layer; this sum spans {', '.join(self.layers)}")
        return sum(o.per_frame(acts) for o in self.objectives)

    def __call__(self, acts: Acts, frames: Frames = None) -> torch.Tensor:
        return sum(o(acts, frames) for o in self.objectives)

    def __repr__(self) -> str:
        return " + ".join(repr(o) for o in self.objectives)


class PerSample(Objective):
    """Objective ``k`` applies to batch element ``k``: ``(B = len(objectives),)`` values."""

    def __init__(self, objectives: Sequence[Objective]):
        if not objectives:
            raise ValueError("PerSample needs at least one objective")
        self.objectives = list(objectives)
        self.layers = tuple(dict.fromkeys(l for o in self.objectives for l in o.layers))

    def __len__(self) -> int:
        return len(self.objectives)

    def _check(self, acts: Acts) -> None:
        for l in self.layers:
            b = _need(acts, l).shape[0]
            if b != len(self.objectives):
                raise ValueError(f"PerSample has {len(self.objectives)} objectives but the batch holds {b} inputs")

    def per_frame(self, acts: Acts) -> torch.Tensor:
        self._check(acts)
        return torch.cat([o.per_frame({l: a[k:k + 1] for l, a in acts.items()})
                          for k, o in enumerate(self.objectives)])

    def __call__(self, acts: Acts, frames: Frames = None) -> torch.Tensor:
        self._check(acts)
        return torch.cat([o({l: a[k:k + 1] for l, a in acts.items()}, frames)
                          for k, o in enumerate(self.objectives)])

    def __repr__(self) -> str:
        return f"PerSample({self.objectives!r})"


def region_objectives(layer: str, filters: Sequence[int]) -> list[Objective]:
    """The seed's §3 targets for one region: one :class:`FilterActivation` per filter, then the joint
    :class:`RegionActivation` (``len(filters) + 1`` objectives, in that order)."""
    return [FilterActivation(layer, i) for i in filters] + [RegionActivation(layer, filters)]
