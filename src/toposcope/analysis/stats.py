"""Are phoneme-responsive filters grouped in regions? Topography statistics (SPEC §6; beyond the seed).

Per layer:

* ``S̄`` (mean neighbourhood cosine similarity of the filters, SPEC §4) against a permutation null
  (same filters, shuffled grid positions) from :func:`toposcope.topography.permutation_null`.
* per group map (on-grid GradNAP values): **Moran's I** with binary **queen** adjacency (the 8
  neighbours: the same 3x3 neighbourhood the regularizer and the smoothing use; ``rook`` = 4 is an
  option), ``I = (N / W) * sum_ij w_ij z_i z_j / sum_i z_i^2`` with ``z = x - mean(x)``, tested
  one-sided (clustering) against shuffled positions: ``p = (1 + #{I_perm >= I}) / (1 + n_perm)``.
  A constant map has no defined I (``NaN``, not counted as clustered).
* connected regions of the on-grid map above ``mean + threshold_sd * sd`` of that map
  (``scipy.ndimage.label``, 8-connectivity): their number and sizes, and the mean largest size under
  shuffled positions (``largest_null``) for scale.
* the share of groups whose maps are significantly clustered (``p < alpha``), raw and after
  Benjamini-Hochberg FDR over the layer's groups.
"""

from __future__ import annotations

import math
from typing import Mapping

import numpy as np

from .._util import jsonable, progress_enabled
from ..grid import ADJACENCY, adjacency_offsets

__all__ = ["ADJACENCY", "jsonable", "morans_i", "morans_i_test", "connected_regions", "benjamini_hochberg",
           "layer_stats", "compute_stats", "format_table"]

def _offsets(adjacency: str):
    return adjacency_offsets(adjacency)


def morans_i(maps, adjacency: str = "queen") -> np.ndarray:
    """Moran's I of ``(..., rows, cols)`` maps with binary grid adjacency -> ``(...)`` (NaN if constant)."""
    x = np.asarray(maps, dtype=np.float64)
    if x.ndim < 2:
        raise ValueError(f"morans_i needs (rows, cols) maps, got shape {x.shape}")
    rows, cols = x.shape[-2:]
    z = x - x.mean(axis=(-2, -1), keepdims=True)
    num = np.zeros(x.shape[:-2])
    W = 0
    for dr, dc in _offsets(adjacency):
        a = z[..., max(dr, 0):rows + min(dr, 0), max(dc, 0):cols + min(dc, 0)]
        b = z[..., max(-dr, 0):rows + min(-dr, 0), max(-dc, 0):cols + min(-dc, 0)]
        num = num + (a * b).sum(axis=(-2, -1))
        W += a.shape[-2] * a.shape[-1]
    if W == 0:
        raise ValueError(f"a {rows}x{cols} grid has no neighbouring cells")
    den = (z * z).sum(axis=(-2, -1))
    n = rows * cols
    with np.errstate(invalid="ignore", divide="ignore"):
        out = (n / W) * num / den
    scale = np.maximum(np.abs(x).max(axis=(-2, -1)), 1e-300)
    return np.where(den > (1e-12 * scale) ** 2 * n, out, np.nan)


def _shuffled(x: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` copies of the ``(rows, cols)`` map with cell positions shuffled -> ``(n, rows, cols)``."""
    flat = np.broadcast_to(x.reshape(-1), (n, x.size))
    return rng.permuted(flat, axis=1).reshape(n, *x.shape)


def morans_i_test(map2d, n_permutations: int = 999, adjacency: str = "queen", seed: int = 0) -> dict:
    """Moran's I of one map and its one-sided permutation p-value (vectorised over permutations).

    Returns ``{"I", "expected", "null_mean", "null_sd", "z", "p"}``; ``expected = -1 / (N - 1)``.
    """
    if n_permutations < 1:
        raise ValueError(f"n_permutations must be >= 1, got {n_permutations}")
    x = np.asarray(map2d, dtype=np.float64)
    obs = float(morans_i(x, adjacency))
    null = morans_i(_shuffled(x, n_permutations, np.random.default_rng(seed)), adjacency)
    res = {"I": obs, "expected": -1.0 / (x.size - 1), "null_mean": float(np.nanmean(null)) if np.isfinite(null).any() else math.nan,
           "null_sd": float(np.nanstd(null)) if np.isfinite(null).any() else math.nan}
    if not math.isfinite(obs):
        res.update(z=math.nan, p=math.nan)
        return res
    res["z"] = (obs - res["null_mean"]) / res["null_sd"] if res["null_sd"] > 0 else math.nan
    res["p"] = float((1 + np.sum(null >= obs - 1e-12)) / (1 + n_permutations))
    return res


def connected_regions(map2d, threshold: float | None = None, threshold_sd: float = 1.0) -> dict:
    """Connected (8-neighbour) regions of cells above ``threshold`` (default ``mean + threshold_sd * sd``).

    Returns ``{"threshold", "n_above", "n_regions", "sizes"}`` with ``sizes`` sorted descending.
    """
    from scipy import ndimage

    x = np.asarray(map2d, dtype=np.float64)
    if threshold is None:
        threshold = float(x.mean() + threshold_sd * x.std())
    mask = x > threshold
    lab, n = ndimage.label(mask, structure=np.ones((3, 3), dtype=int))
    sizes = sorted((int(s) for s in np.bincount(lab.ravel())[1:]), reverse=True)
    return {"threshold": float(threshold), "n_above": int(mask.sum()), "n_regions": int(n), "sizes": sizes}


def _largest_regions(masks: np.ndarray) -> np.ndarray:
    """Size of the largest 8-connected region of each ``(n, rows, cols)`` boolean mask (all at once:
    a 3D labelling whose structure does not connect across the first axis)."""
    from scipy import ndimage

    st = np.zeros((3, 3, 3), dtype=int)
    st[1] = 1
    lab, n = ndimage.label(masks, structure=st)
    out = np.zeros(masks.shape[0], dtype=np.int64)
    if n:
        sizes = np.bincount(lab.ravel())
        owner = np.zeros(n + 1, dtype=np.int64)
        owner[lab.ravel()] = np.repeat(np.arange(masks.shape[0]), masks[0].size)
        np.maximum.at(out, owner[1:], sizes[1:])
    return out


def benjamini_hochberg(p, alpha: float = 0.05) -> np.ndarray:
    """Boolean rejections of the Benjamini-Hochberg step-up procedure (NaN p-values never rejected)."""
    p = np.asarray(p, dtype=np.float64)
    ok = np.isfinite(p)
    out = np.zeros(p.shape, dtype=bool)
    q = p[ok]
    m = len(q)
    if not m:
        return out
    order = np.argsort(q)
    passed = q[order] <= alpha * np.arange(1, m + 1) / m
    if passed.any():
        k = np.max(np.flatnonzero(passed))
        rej = np.zeros(m, dtype=bool)
        rej[order[:k + 1]] = True
        out[np.flatnonzero(ok)] = rej
    return out


def layer_stats(maps, groups, *, weight=None, grid=None, n_permutations: int = 999, alpha: float = 0.05,
                adjacency: str = "queen", threshold_sd: float = 1.0, seed: int = 0) -> dict:
    """Statistics of one layer. ``maps``: ``(G, rows, cols)`` on-grid profile maps; ``weight``
    (``(C, ...)``, optional) and ``grid`` give ``S̄`` vs its permutation null."""
    maps = np.asarray(maps, dtype=np.float64)
    out: dict = {"s_bar": None}
    if weight is not None:
        try:
            from ..topography import permutation_null
        except ImportError as e:  # toposcope.topography not built in this checkout
            out["s_bar_error"] = f"toposcope.topography unavailable ({e})"
        else:
            r = permutation_null(weight, grid, n_permutations=max(100, min(int(n_permutations), 1000)), seed=seed)
            out["s_bar"] = {k: float(v) for k, v in dict(r).items()}
    per = {}
    rng = np.random.default_rng(seed)
    for i, g in enumerate(groups):
        mt = morans_i_test(maps[i], n_permutations, adjacency, seed=seed + i)
        cr = connected_regions(maps[i], threshold_sd=threshold_sd)
        largest = _largest_regions(_shuffled(maps[i], min(n_permutations, 200), rng) > cr["threshold"])
        per[g] = {"morans_i": mt["I"], "z": mt["z"], "p": mt["p"], "regions": cr["n_regions"],
                  "sizes": cr["sizes"], "threshold": cr["threshold"], "largest_null": float(np.mean(largest))}
    p = np.array([v["p"] for v in per.values()])
    I = np.array([v["morans_i"] for v in per.values()])
    fin = np.isfinite(p)
    out.update({
        "groups": per,
        "n_groups": len(per),
        "mean_morans_i": float(np.nanmean(I)) if np.isfinite(I).any() else math.nan,
        "share_clustered": float(np.mean(p[fin] < alpha)) if fin.any() else math.nan,
        "share_clustered_fdr": float(np.mean(benjamini_hochberg(p, alpha)[fin])) if fin.any() else math.nan,
        "mean_regions": float(np.mean([v["regions"] for v in per.values()])),
        "mean_largest_region": float(np.mean([max(v["sizes"], default=0) for v in per.values()])),
        "mean_largest_region_null": float(np.mean([v["largest_null"] for v in per.values()])),
    })
    return out


def compute_stats(profiles, weights: Mapping | None = None, *, n_permutations: int = 999, alpha: float = 0.05,
                  adjacency: str = "queen", threshold_sd: float = 1.0, seed: int = 0, progress: bool = True) -> dict:
    """Statistics for every layer of a :class:`toposcope.analysis.profiles.Profiles` (``weights``: optional
    ``{layer: weight}`` for ``S̄``). The dict is what ``RUN/maps/stats.json`` holds."""
    from tqdm.auto import tqdm

    if n_permutations < 200:
        raise ValueError(f"use at least 200 permutations for the p-values, got {n_permutations}")
    show = progress_enabled(progress)
    layers = {}
    for name in tqdm(list(profiles.layers), desc="stats", unit="layer", disable=not show, leave=False):
        lp = profiles.layers[name]
        w = None if weights is None else weights.get(name)
        layers[name] = layer_stats(lp.maps(), profiles.groups, weight=w, grid=lp.grid, n_permutations=n_permutations,
                                   alpha=alpha, adjacency=adjacency, threshold_sd=threshold_sd, seed=seed)
    return {"profiles": profiles.name, "method": profiles.method, "grouping": profiles.grouping,
            "n_permutations": n_permutations, "alpha": alpha, "adjacency": adjacency,
            "threshold": f"mean + {threshold_sd:g} sd of each on-grid map", "layers": layers}


def _fmt(v, spec=".3f") -> str:
    return "-" if v is None or (isinstance(v, float) and not math.isfinite(v)) else format(v, spec)


def _row(st: dict) -> list[str]:
    sb = st.get("s_bar")
    sbar = "-" if not sb else f"{_fmt(sb.get('observed'))} (z {_fmt(sb.get('z'), '.1f')})"
    return [sbar, _fmt(st["mean_morans_i"]), f"{_fmt(st['share_clustered'], '.0%')}",
            f"{_fmt(st['share_clustered_fdr'], '.0%')}", _fmt(st["mean_regions"], ".1f"),
            f"{_fmt(st['mean_largest_region'], '.1f')}/{_fmt(st['mean_largest_region_null'], '.1f')}"]


def format_table(stats: dict, baseline: dict | None = None, names: tuple[str, str] = ("run", "baseline")) -> str:
    """Plain-text table of :func:`compute_stats` output; with ``baseline``, both runs side by side."""
    head = ["S̄ (z vs null)", "mean I", "clustered", "FDR", "regions", "largest/null"]
    runs = [(names[0], stats)] + ([(names[1], baseline)] if baseline is not None else [])
    rows = [["layer", "run"] + head]
    layers = list(stats["layers"])
    if baseline is not None:
        layers += [n for n in baseline["layers"] if n not in layers]
    for layer in layers:
        for rn, st in runs:
            if layer in st["layers"]:
                rows.append([layer, rn] + _row(st["layers"][layer]))
    if baseline is None:
        rows = [[r[0]] + r[2:] for r in rows]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    a = stats
    lines.append(f"({a['profiles']}; Moran's I, {a['adjacency']} adjacency, {a['n_permutations']} permutations; "
                 f"clustered = p < {a['alpha']}; regions above {a['threshold']})")
    return "\n".join(lines)
