"""The topographic regularizer: filters on a 2D grid, neighbours pulled together (docs/method.md § Regularizer, seed §2.1).

For a layer with weight ``W`` of ``C`` filters, ``f_i = W[i].flatten()`` sits at grid position
``(i // cols, i % cols)``. For every position ``p`` and every other cell ``q`` of its ``n x n``
neighbourhood ``N(p)`` (clipped at the border, or wrapped on a torus)::

    w_pq = (1 / d_pq) / sum_{q' in N(p), q' != p} 1 / d_pq'      (d = Euclidean grid distance)
    S_p  = sum_q w_pq * cos(f_p, f_q)                              neighborhood_similarity -> (C,)
    L    = sum_p (1 - S_p)      ("sum", as in the seed)  or  mean_p (1 - S_p)  ("mean")
    S̄    = mean_p S_p           the layer's reported "topographic similarity"

For ``n = 3`` in the interior the weights are 0.1464 (4 edge neighbours) and 0.1036 (4 diagonals).

**Interpretation of the seed's wording.** The seed (§2.1) says "we minimize Cosine similarity in a
3x3 neighborhood" while its goal is that "neighboring filters are similar". Minimising the
similarity would push neighbours apart, so we read it as minimising the cosine *distance*
``1 - cos``: the loss is ``L = sum_p (1 - S_p)``, whose minimum 0 is reached when every filter points
in the same direction as its neighbours (docs/method.md § Regularizer). Its gradient is exactly that of ``-sum_p S_p``.

Training objective (docs/method.md § Regularizer): ``CTC + λ · Σ_layers L_layer``; :class:`TopographicRegularizer` gives the
second term for any model. Beyond the seed (its future work): the same construction on activations
(``on="activations"``), where filter ``i``'s vector is its activation time series over a batch.

Speed: the forward is one sampled matmul over the neighbour pairs and the backward one weighted
gather-sum (see :mod:`toposcope._stencil`), about two reads of the weight per pass, instead of the
weight-sized temporaries a shifted-slice implementation makes (``benchmarks/bench_regularizer.py``).
"""

from __future__ import annotations

import math
from typing import Iterable, Mapping

import torch
from torch import nn

from . import _stencil
from .grid import Grid, GridLike, as_grid

__all__ = ["neighborhood_similarity", "topographic_loss", "TopographicRegularizer", "permutation_null",
           "neighbor_weights", "REDUCTIONS", "TARGETS"]

REDUCTIONS = ("sum", "mean")
TARGETS = ("weights", "activations")


def _check_reduction(reduction) -> str:
    if reduction not in REDUCTIONS:
        raise ValueError(f"unknown reduction {reduction!r}; allowed: 'sum' (the seed's sum over all "
                         f"filters) or 'mean'")
    return reduction


def _prepare(weight, grid, neighborhood, boundary, what="weight"):
    """Validate everything; return ``(flat (C, D), grid, n, eps)``."""
    weight = _stencil.check_weight(weight, what)
    g = as_grid(grid)
    n = _stencil.check_neighborhood(neighborhood, g)
    _stencil.check_boundary(boundary)
    g.check(weight.shape[0], what)
    flat = _stencil.flatten(weight)
    return flat, g, n, _stencil.default_eps(flat.dtype)


def neighbor_weights(grid: GridLike, neighborhood: int = 3, boundary: str = "clip") -> torch.Tensor:
    """The dense ``(C, C)`` float64 matrix of ``w_pq`` (docs/method.md § Regularizer; rows sum to 1, zero diagonal).

    For inspection and tests; the regularizer itself uses the sparse table.
    """
    g = as_grid(grid)
    n = _stencil.check_neighborhood(neighborhood, g)
    _stencil.check_boundary(boundary)
    p, q, w = _stencil.neighbour_table(g.rows, g.cols, n, boundary)
    out = torch.zeros(g.size, g.size, dtype=torch.float64)
    out[torch.as_tensor(p), torch.as_tensor(q)] = torch.as_tensor(w)
    return out


def neighborhood_similarity(weight: torch.Tensor, grid: GridLike, neighborhood: int = 3,
                            boundary: str = "clip") -> torch.Tensor:
    """``S_p`` of docs/method.md § Regularizer for every filter: ``weight`` ``(C, ...)`` -> ``(C,)`` (differentiable).

    ``weight``: any layer weight with the filters along dim 0 (Conv1d ``(C, C_in, k)``, Conv2d
    ``(C, C_in, kh, kw)``, Linear ``(C, in)``), float32 or float64 on any device (other float dtypes
    are computed in float32). ``grid``: ``(rows, cols)`` or :class:`~toposcope.Grid` with
    ``rows * cols == C``. ``neighborhood``: odd ``n >= 3``. ``boundary``: ``"clip"`` or ``"wrap"``.
    A filter of norm 0 has cosine 0 with everything.
    """
    flat, g, n, eps = _prepare(weight, grid, neighborhood, boundary)
    return _stencil.similarity(flat, g, n, boundary, eps)


def topographic_loss(weight: torch.Tensor, grid: GridLike, neighborhood: int = 3, boundary: str = "clip",
                     reduction: str = "sum") -> torch.Tensor:
    """``L = Σ_p (1 − S_p)`` (``"sum"``, the seed's) or ``mean_p (1 − S_p)`` (``"mean"``): a 0-d tensor.

    The seed's "minimize cosine similarity" is read as minimising cosine *distance* (module doc,
    docs/method.md § Regularizer): ``L = 0`` when all neighbours point the same way, ``L`` grows as they disagree.
    """
    _check_reduction(reduction)
    S = neighborhood_similarity(weight, grid, neighborhood, boundary)
    L = S.numel() - S.sum()
    return L / S.numel() if reduction == "mean" else L


# --------------------------------------------------------------------------------------------
# permutation null


def permutation_null(weight: torch.Tensor, grid: GridLike, n_permutations: int = 100, seed: int = 0,
                     neighborhood: int = 3, boundary: str = "clip") -> dict:
    """``S̄`` of ``weight`` against the same filters at shuffled grid positions (docs/method.md § Maps and regions).

    Returns ``dict(observed, mean, sd, z, p, n_permutations)`` (floats): ``observed`` = S̄ at the real
    positions, ``mean``/``sd`` (ddof 1) of S̄ over ``n_permutations`` uniformly random position
    shuffles (``torch.Generator`` seeded with ``seed``), ``z = (observed − mean) / sd`` (``nan`` if
    ``sd == 0``, e.g. identical filters), and the one-sided ``p = (1 + #{null ≥ observed}) / (1 + P)``.
    ``n_permutations`` must be ≥ 100. All permutations are evaluated from one ``C x C`` cosine matrix
    (one ``(C, D) @ (D, C)`` matmul, then ``P · nnz`` gathers), not by recomputing cosines per
    permutation (layers with more than 4096 filters fall back to one sampled matmul per permutation).
    """
    if isinstance(n_permutations, bool) or not isinstance(n_permutations, int) or n_permutations < 100:
        raise ValueError(f"n_permutations must be an integer >= 100, got {n_permutations!r}")
    flat, g, n, eps = _prepare(weight, grid, neighborhood, boundary)
    with torch.no_grad():
        flat = flat.detach()
        st = _stencil.stencil(g, n, boundary, flat.device, flat.dtype)
        unit = flat / flat.norm(dim=1, keepdim=True).clamp_min(eps)
        C = st.size
        gen = torch.Generator().manual_seed(int(seed))
        perms = torch.rand(n_permutations, C, generator=gen).argsort(dim=1).to(flat.device)
        ident = torch.arange(C, device=flat.device)[None]
        observed = float(_stencil.similarity_matrix_null(unit, st, ident)[0])
        null = _stencil.similarity_matrix_null(unit, st, perms).cpu()
    mean, sd = float(null.mean()), float(null.std(unbiased=True))
    tol = 1e-12 * max(1.0, abs(observed))
    z = (observed - mean) / sd if sd > tol else float("nan")
    p = (1 + int((null >= observed - tol).sum())) / (1 + n_permutations)
    return {"observed": observed, "mean": mean, "sd": sd, "z": z, "p": p, "n_permutations": n_permutations}


# --------------------------------------------------------------------------------------------
# the regularizer object


def _layer_weight(obj, name: str) -> torch.Tensor:
    if isinstance(obj, torch.Tensor):
        return obj
    w = getattr(obj, "weight", None)
    if isinstance(w, torch.Tensor):
        return w
    raise ValueError(f"layer {name!r}: expected a tensor/parameter or a module with a .weight, "
                     f"got {type(obj).__name__}")


class TopographicRegularizer:
    """``λ · Σ_layers L_layer`` for a model's gridded layers, plus their ``S̄`` (docs/method.md § Regularizer).

    ``model_or_layers`` is one of
      * a Wav2Letter-like model (has ``layer_names``, ``grids[name]`` and ``weight(name)``): all its
        gridded layers, or those named in ``layers``;
      * a mapping ``name -> (param_or_module, grid)`` (grid ``None`` = the default grid of docs/method.md § Features and model)
        or ``name -> param_or_module`` — works for any PyTorch model (Conv1d/2d, Linear, ...);
      * any ``nn.Module`` together with ``layers`` = names of submodules (``model.named_modules()``)
        that have a ``.weight``; each gets the default grid.

    ``weight`` is λ (≥ 0); with λ = 0, :meth:`loss` returns a 0-tensor without computing anything.
    ``on="weights"`` (the seed): filter ``i``'s vector is its flattened weight; ``loss()`` takes no
    argument. ``on="activations"`` (beyond the seed): filter ``i``'s vector is its activation time
    series over the batch: ``loss(acts)`` with ``acts[name]`` of shape ``(batch, C, frames)`` (e.g.
    ``hooks.record(model, reg.names, detach=False)``), flattened to ``(C, batch * frames)``; a
    ``(C, N)`` tensor is used as is. Padding frames are included: zero them beforehand if they matter
    (zero frames change neither dot products nor norms, so zeroing equals trimming).

    Usage::

        reg = TopographicRegularizer(model, weight=0.01)
        loss = ctc + reg()               # = reg.loss()
        loss.backward()
        reg.similarities()               # {"conv1": S̄, ...}
    """

    def __init__(self, model_or_layers, weight: float = 0.0, neighborhood: int = 3, boundary: str = "clip",
                 reduction: str = "sum", on: str = "weights", layers: Iterable[str] | None = None):
        try:
            lam = float(weight)
        except (TypeError, ValueError):
            raise ValueError(f"weight (λ) must be a number >= 0, got {weight!r}") from None
        if not math.isfinite(lam) or lam < 0:
            raise ValueError(f"weight (λ) must be a finite number >= 0, got {weight!r}")
        self.weight = lam
        self.neighborhood = neighborhood
        self.boundary = _stencil.check_boundary(boundary)
        self.reduction = _check_reduction(reduction)
        if on not in TARGETS:
            raise ValueError(f"unknown target on={on!r}; allowed: 'weights' (the seed) or 'activations'")
        self.on = on
        self._sources: dict[str, tuple[object, Grid]] = self._resolve(model_or_layers, layers)
        if not self._sources:
            raise ValueError("the regularizer needs at least one layer")
        for name, (src, grid) in self._sources.items():
            _stencil.check_neighborhood(neighborhood, grid)
            if on == "weights":
                grid.check(_layer_weight(src, name).shape[0], f"layer {name!r}")

    @classmethod
    def from_config(cls, model, train_cfg, **kw) -> "TopographicRegularizer":
        """From a :class:`~toposcope.config.TrainConfig` (``topo_weight``, ``neighborhood``, ``boundary``)."""
        return cls(model, weight=train_cfg.topo_weight, neighborhood=train_cfg.neighborhood,
                   boundary=train_cfg.boundary, **kw)

    @staticmethod
    def _resolve(src, layers) -> dict[str, tuple[object, Grid]]:
        out: dict[str, tuple[object, Grid]] = {}
        if isinstance(src, Mapping):
            names = list(src) if layers is None else list(layers)
            for name in names:
                if name not in src:
                    raise ValueError(f"unknown layer {name!r}; layers: {', '.join(map(str, src))}")
                item = src[name]
                grid = None
                if isinstance(item, tuple):
                    if len(item) != 2:
                        raise ValueError(f"layer {name!r}: expected (parameter, grid), got {len(item)} items")
                    item, grid = item
                w = _layer_weight(item, name)
                out[name] = (item, as_grid(grid) if grid is not None else Grid.for_channels(w.shape[0]))
            return out
        if all(hasattr(src, a) for a in ("layer_names", "grids", "weight")) and callable(src.weight):
            names = list(src.layer_names) if layers is None else list(layers)
            for name in names:
                if name not in src.grids:
                    raise ValueError(f"unknown layer {name!r}; gridded layers: {', '.join(src.layer_names)}")
                out[name] = (_ModelLayer(src, name), src.grids[name])
            return out
        if isinstance(src, nn.Module):
            if layers is None:
                raise ValueError("for a plain nn.Module pass layers=[submodule names], or a dict "
                                 "name -> (parameter, grid)")
            mods = dict(src.named_modules())
            for name in layers:
                if name not in mods:
                    raise ValueError(f"unknown submodule {name!r}; have: {', '.join(n for n in mods if n)}")
                w = _layer_weight(mods[name], name)
                out[name] = (mods[name], Grid.for_channels(w.shape[0]))
            return out
        raise ValueError(f"expected a model or a dict name -> (parameter, grid), got {type(src).__name__}")

    # -- introspection -------------------------------------------------------------------------
    @property
    def names(self) -> tuple[str, ...]:
        """The regularized layers, in order."""
        return tuple(self._sources)

    @property
    def grids(self) -> dict[str, Grid]:
        return {n: g for n, (_, g) in self._sources.items()}

    def parameter(self, name: str) -> torch.Tensor:
        """The weight tensor of layer ``name`` (as it is now)."""
        return _layer_weight(self._sources[name][0], name)

    def __repr__(self) -> str:
        return (f"TopographicRegularizer(λ={self.weight}, n={self.neighborhood}, boundary={self.boundary!r}, "
                f"reduction={self.reduction!r}, on={self.on!r}, layers={list(self.names)})")

    # -- the computation -----------------------------------------------------------------------
    def _vectors(self, name: str, acts) -> torch.Tensor:
        if self.on == "weights":
            if acts is not None:
                raise ValueError("on='weights' takes no activations; build with on='activations' to use them")
            return self.parameter(name)
        if acts is None:
            raise ValueError("on='activations' needs loss(acts) with acts[name] = (batch, C, frames)")
        if name not in acts:
            raise ValueError(f"no activations for layer {name!r}; got {', '.join(map(str, acts))}")
        a = acts[name]
        if not isinstance(a, torch.Tensor):
            raise ValueError(f"activations of {name!r} must be a tensor, got {type(a).__name__}")
        if a.dim() == 3:                                      # (B, C, T) -> (C, B*T)
            a = a.transpose(0, 1).reshape(a.shape[1], -1)
        elif a.dim() != 2:
            raise ValueError(f"activations of {name!r} must be (batch, C, frames) or (C, N), "
                             f"got shape {tuple(a.shape)}")
        return a

    def similarity(self, name: str, acts: Mapping[str, torch.Tensor] | None = None) -> torch.Tensor:
        """``S_p`` ``(C,)`` of one layer (differentiable)."""
        _, grid = self._sources[name]
        return neighborhood_similarity(self._vectors(name, acts), grid, self.neighborhood, self.boundary)

    def layer_losses(self, acts: Mapping[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
        """Unweighted ``L_layer`` per layer (0-d tensors, differentiable)."""
        out = {}
        for name in self._sources:
            S = self.similarity(name, acts)
            L = S.numel() - S.sum()
            out[name] = L / S.numel() if self.reduction == "mean" else L
        return out

    def loss(self, acts: Mapping[str, torch.Tensor] | None = None) -> torch.Tensor:
        """``λ · Σ_layers L_layer``: a 0-d tensor to add to the training loss.

        With λ = 0 nothing is computed and a 0-tensor (device/dtype of the first layer, no grad) comes
        back.
        """
        if self.weight == 0.0:
            ref = self._vectors(self.names[0], acts) if (self.on == "weights" or acts) else None
            return torch.zeros((), dtype=ref.dtype if ref is not None else torch.float32,
                               device=ref.device if ref is not None else None)
        total = None
        for L in self.layer_losses(acts).values():
            total = L if total is None else total + L.to(total.dtype)
        return self.weight * total

    __call__ = loss

    @torch.no_grad()
    def similarities(self, acts: Mapping[str, torch.Tensor] | None = None) -> dict[str, float]:
        """``S̄`` per layer (floats, no grad): the reported topographic similarity."""
        return {name: float(self.similarity(name, acts).mean()) for name in self._sources}

    def statistics(self, n_permutations: int = 100, seed: int = 0,
                   acts: Mapping[str, torch.Tensor] | None = None) -> dict[str, dict]:
        """:func:`permutation_null` of every layer: ``name -> dict(observed, mean, sd, z, p, ...)``."""
        return {name: permutation_null(self._vectors(name, acts).detach(), grid, n_permutations, seed,
                                       self.neighborhood, self.boundary)
                for name, (_, grid) in self._sources.items()}


class _ModelLayer:
    """Lazily resolves ``model.weight(name)`` (so replaced parameters are picked up)."""

    __slots__ = ("model", "name")

    def __init__(self, model, name):
        self.model, self.name = model, name

    @property
    def weight(self) -> torch.Tensor:
        return self.model.weight(self.name)
