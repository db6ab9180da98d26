"""Layer smoothness: weight ``S̄``, functional ``S̄_func`` and BN-folded ``S̄``, each against a position
null with the run's own neighbourhood and boundary (``docs/method.md`` § Statistics).

* weight ``S̄`` (the regularizer's quantity, ``docs/method.md`` § Regularizer):
  :func:`weight_similarity` wraps :func:`toposcope.topography.permutation_null`;
* BN-folded ``S̄``: with BatchNorm between the conv and the ReLU, channel ``c``'s response is the
  conv output scaled by ``gamma_c / sqrt(var_c + eps)`` (which can flip its sign); :func:`fold_batchnorm`
  scales each filter by it (the shift ``beta`` is not a direction and does not enter a cosine);
* functional ``S̄_func`` (what the maps show): the same neighbour weights ``w_pq`` applied to the
  Pearson correlation of neighbouring filters' activations over the profiled frames
  (:func:`activation_correlation`, from the profile's Gram matrix ``sum a a^T``, ``sum a`` and the frame
  count): ``S̄_func = mean_p sum_q w_pq r(p, q)`` (:func:`neighbour_mean`);
* the position null (:func:`position_null`): the same filters at uniformly shuffled grid positions,
  ``{observed, mean, sd (ddof 1), z, p (one-sided, >=), n_permutations}``.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ..grid import GridLike, as_grid, neighbour_table

__all__ = ["activation_correlation", "neighbour_mean", "position_null",
           "functional_similarity", "weight_similarity", "fold_batchnorm", "bn_folded_weights", "SimilarityError"]


class SimilarityError(ValueError):
    """A similarity statistic cannot be computed from what was given (missing Gram matrix, bad shapes)."""


def activation_correlation(lp) -> np.ndarray:
    """``(C, C)`` Pearson correlation of a :class:`~toposcope.analysis.profiles.LayerProfile`'s channels
    over the profiled frames, from its ``gram``, ``act_sum`` and ``act_count``
    (:func:`toposcope.analysis.profiles.activation_correlation`, the one definition);
    :class:`SimilarityError` when the profile has no Gram matrix (files written before it was kept)."""
    if getattr(lp, "gram", None) is None or getattr(lp, "act_sum", None) is None \
            or getattr(lp, "act_count", None) is None:
        raise SimilarityError("the profile has no activation Gram matrix (written by an older `toposcope "
                              "profile`); re-run `toposcope profile` for the functional similarity")
    from .profiles import activation_correlation as from_gram

    try:
        return from_gram(lp)
    except ValueError as e:
        raise SimilarityError(str(e)) from None


def _table(grid, neighborhood: int, boundary: str):
    from .._stencil import check_boundary, check_neighborhood

    g = as_grid(grid)
    n = check_neighborhood(neighborhood, g)
    check_boundary(boundary)
    return g, neighbour_table(g.rows, g.cols, n, boundary)


def neighbour_mean(matrix, grid: GridLike, neighborhood: int = 3, boundary: str = "clip") -> float:
    """``mean_p sum_q w_pq M[p, q]`` of a ``(C, C)`` pairwise matrix with the regularizer's neighbour
    weights (``M`` = cosines of the filters gives the weight ``S̄``; correlations give ``S̄_func``)."""
    m = np.asarray(matrix, dtype=np.float64)
    g, (p, q, w) = _table(grid, neighborhood, boundary)
    if m.shape != (g.size, g.size):
        raise SimilarityError(f"expected a ({g.size}, {g.size}) matrix for a {g} grid, got {m.shape}")
    return float((w * m[p, q]).sum() / g.size)


def position_null(matrix, grid: GridLike, *, neighborhood: int = 3, boundary: str = "clip",
                  n_permutations: int = 999, seed: int = 0) -> dict:
    """:func:`neighbour_mean` of ``matrix (C, C)`` against the same units at shuffled grid positions
    (position ``p`` holds unit ``perm[p]``): ``{observed, mean, sd, z, p, n_permutations}``."""
    if isinstance(n_permutations, bool) or not isinstance(n_permutations, (int, np.integer)) or n_permutations < 1:
        raise ValueError(f"n_permutations must be a positive integer, got {n_permutations!r}")
    m = np.asarray(matrix, dtype=np.float64)
    g, (p, q, w) = _table(grid, neighborhood, boundary)
    C = g.size
    if m.shape != (C, C):
        raise SimilarityError(f"expected a ({C}, {C}) matrix for a {g} grid, got {m.shape}")
    if not np.isfinite(m).all():
        raise SimilarityError("the similarity matrix holds NaN or infinite values")
    observed = float((w * m[p, q]).sum() / C)
    rng = np.random.default_rng(seed)
    null = np.empty(int(n_permutations))
    step = max(1, (1 << 22) // max(1, len(p)))
    for a in range(0, len(null), step):
        k = min(step, len(null) - a)
        perm = np.argsort(rng.random((k, C)), axis=1)
        null[a:a + k] = (m[perm[:, p], perm[:, q]] * w).sum(1) / C
    mean, sd = float(null.mean()), float(null.std(ddof=1)) if len(null) > 1 else math.nan
    tol = 1e-12 * max(1.0, abs(observed))
    z = (observed - mean) / sd if sd > tol else math.nan
    pv = (1 + int((null >= observed - tol).sum())) / (1 + len(null))
    return {"observed": observed, "mean": mean, "sd": sd, "z": z, "p": pv, "n_permutations": int(n_permutations)}


def functional_similarity(lp, grid: GridLike | None = None, *, neighborhood: int = 3, boundary: str = "clip",
                          n_permutations: int = 999, seed: int = 0) -> dict:
    """``S̄_func`` of one layer profile (activation correlations, :func:`activation_correlation`) against
    its position null (:func:`position_null`)."""
    r = activation_correlation(lp)
    return position_null(r, grid if grid is not None else lp.grid, neighborhood=neighborhood, boundary=boundary,
                         n_permutations=n_permutations, seed=seed)


def weight_similarity(weight, grid: GridLike, *, neighborhood: int = 3, boundary: str = "clip",
                      n_permutations: int = 999, seed: int = 0) -> dict:
    """Weight ``S̄`` against shuffled positions with the run's neighbourhood and boundary
    (:func:`toposcope.topography.permutation_null`, which needs >= 100 permutations)."""
    from ..topography import permutation_null

    r = permutation_null(torch.as_tensor(weight).detach(), grid, n_permutations=max(100, int(n_permutations)),
                         seed=seed, neighborhood=neighborhood, boundary=boundary)
    return {k: float(v) if k != "n_permutations" else int(v) for k, v in r.items()}


def fold_batchnorm(weight, bn) -> torch.Tensor:
    """``W[c] * gamma_c / sqrt(running_var_c + eps)`` for a conv ``weight (C, ...)`` followed by the
    ``BatchNorm`` module ``bn`` (its running statistics, as in eval mode)."""
    w = torch.as_tensor(weight).detach()
    var = bn.running_var.detach().to(w.dtype)
    gamma = bn.weight.detach().to(w.dtype) if bn.weight is not None else torch.ones_like(var)
    if var.shape[0] != w.shape[0]:
        raise SimilarityError(f"BatchNorm over {var.shape[0]} channels cannot follow a weight of {w.shape[0]} filters")
    scale = gamma / torch.sqrt(var + bn.eps)
    return w * scale.reshape(-1, *([1] * (w.dim() - 1)))


def bn_folded_weights(model, layers=None) -> dict:
    """``{layer: folded weight}`` for the gridded layers of a Wav2Letter-like model whose block has a
    BatchNorm (``norm = "batch"``); ``{}`` for models without."""
    out = {}
    blocks = getattr(model, "blocks", None)
    for name in (layers if layers is not None else model.layer_names):
        norm = getattr(blocks[name], "norm", None) if blocks is not None and name in blocks else None
        if isinstance(norm, torch.nn.modules.batchnorm._BatchNorm) and norm.running_var is not None:
            out[name] = fold_batchnorm(model.weight(name), norm)
    return out
