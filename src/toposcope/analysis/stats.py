"""Are phoneme-responsive filters grouped in regions? Topography statistics (docs/method.md § Statistics; beyond the seed).

Per layer:

* ``S̄`` (mean neighbourhood cosine similarity of the filters, docs/method.md § Regularizer) against a permutation null
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
from .._util import progress as progress_bar
from ..grid import ADJACENCY, adjacency_offsets

__all__ = ["ADJACENCY", "jsonable", "morans_i", "morans_i_test", "connected_regions", "benjamini_hochberg",
           "bh_qvalues", "phone_specific_stats", "layer_stats", "compute_stats", "format_table"]

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


def bh_qvalues(p) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values (q-values): ``q_(i) = min_{j >= i} m p_(j) / j``, capped at 1,
    over the finite entries (NaN stays NaN). ``q < alpha`` rejects exactly what
    :func:`benjamini_hochberg` rejects at ``alpha``."""
    p = np.asarray(p, dtype=np.float64)
    out = np.full(p.shape, np.nan)
    ok = np.isfinite(p)
    m = int(ok.sum())
    if not m:
        return out
    q = p[ok]
    order = np.argsort(q, kind="stable")
    adj = q[order] * m / np.arange(1, m + 1)
    adj = np.minimum.accumulate(adj[::-1])[::-1]
    res = np.empty(m)
    res[order] = np.minimum(adj, 1.0)
    out[ok] = res
    return out


def _null_summary(observed: float, null: np.ndarray, *, extra: bool = True) -> dict:
    """``{observed, mean, sd, z, p, n_permutations}`` of a statistic against its null (one-sided, >=)."""
    from .label_null import permutation_p

    null = np.asarray(null, dtype=np.float64)
    fin = null[np.isfinite(null)]
    mean = float(fin.mean()) if len(fin) else math.nan
    sd = float(fin.std(ddof=1)) if len(fin) > 1 else math.nan
    ok = math.isfinite(observed) and math.isfinite(sd) and sd > 1e-12 * max(1.0, abs(observed))
    p = float(permutation_p(np.float64(observed), null)) if len(null) else math.nan
    out = {"observed": float(observed), "mean": mean, "sd": sd, "z": (observed - mean) / sd if ok else math.nan,
           "p": p, "n_permutations": int(len(null))}
    return out if extra else {"observed": out["observed"], "mean": mean, "p": p}


def phone_specific_stats(seg_sums, seg_counts, perms, grid, *, baseline: str = "uniform", adjacency: str = "queen",
                         alpha: float = 0.05, chunk: int = 25, phonetic: bool = True) -> dict:
    """The label-null statistics of one layer (``docs/method.md`` § Statistics; :mod:`.label_null`).

    ``seg_sums (S, C)``, ``seg_counts (S,)``: the layer's per-segment sums; ``perms``: a
    :class:`~toposcope.analysis.label_null.LabelPermutations`. Returns ``{"groups": {g: {"p_label",
    "q_label"}}, "label_null": {observed, mean, sd, z, p, n_permutations}, "share_phone_specific",
    "phonetic": {mantel_r, p} | None, "separation": {observed, mean, p} | None}``. Fixed groups
    (``sil``) get ``None``: their segments are not permuted. ``phonetic``: the groups are phones
    (Mantel and separation are computed; not for grapheme groups).
    """
    from .label_null import label_null_statistics, permutation_p
    from .phonetic import FEATURES, mantel_r, map_dissimilarity, phonetic_distance, region_separation

    groups = perms.groups
    movable = np.flatnonzero(~perms.fixed)
    phon = np.array([i for i in movable if phonetic and groups[i] in FEATURES], dtype=np.int64)
    stats = {"I": lambda m: morans_i(m, adjacency)}
    if len(phon) >= 3:
        D = phonetic_distance([groups[i] for i in phon])
        stats["mantel"] = lambda m: mantel_r(map_dissimilarity(m[:, phon].reshape(m.shape[0], len(phon), -1)), D)
    if len(phon) >= 2:
        stats["separation"] = lambda m: region_separation(m[:, phon])
    res = label_null_statistics(seg_sums, seg_counts, perms, stats, grid=grid, baseline=baseline, chunk=chunk)
    I_obs, I_null = res["I"]
    p = np.full(len(groups), np.nan)
    p[movable] = permutation_p(I_obs[movable], I_null[:, movable])
    q = bh_qvalues(p)
    per = {g: {"p_label": None if perms.fixed[i] else p[i], "q_label": None if perms.fixed[i] else q[i]}
           for i, g in enumerate(groups)}
    with np.errstate(invalid="ignore"):
        obs_mean = float(np.nanmean(I_obs[movable])) if np.isfinite(I_obs[movable]).any() else math.nan
        null_mean = np.array([np.nanmean(r) if np.isfinite(r).any() else np.nan for r in I_null[:, movable]])
    fin = np.isfinite(p)
    out = {"groups": per, "label_null": _null_summary(obs_mean, null_mean),
           "share_phone_specific": float(np.mean(q[fin] < alpha)) if fin.any() else math.nan,
           "phonetic": None, "separation": None}
    if "mantel" in res:
        r_obs, r_null = res["mantel"]
        out["phonetic"] = {"mantel_r": float(r_obs), "p": float(permutation_p(r_obs, r_null))}
    if "separation" in res:
        out["separation"] = _null_summary(float(res["separation"][0]), res["separation"][1], extra=False)
    return out


def layer_stats(maps, groups, *, weight=None, grid=None, n_permutations: int = 999, alpha: float = 0.05,
                adjacency: str = "queen", threshold_sd: float = 1.0, seed: int = 0, neighborhood: int = 3,
                boundary: str = "clip") -> dict:
    """Statistics of one layer. ``maps``: ``(G, rows, cols)`` on-grid profile maps; ``weight``
    (``(C, ...)``, optional) and ``grid`` give ``S̄`` vs its position null, with the run's
    ``neighborhood`` and ``boundary``."""
    maps = np.asarray(maps, dtype=np.float64)
    out: dict = {"s_bar": None}
    if weight is not None:
        from .similarity import weight_similarity

        out["s_bar"] = weight_similarity(weight, grid, neighborhood=neighborhood, boundary=boundary,
                                         n_permutations=min(int(n_permutations), 1000), seed=seed)
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
                  adjacency: str = "queen", threshold_sd: float = 1.0, seed: int = 0, progress: bool = True,
                  label_permutations: int = 999, neighborhood: int = 3, boundary: str = "clip",
                  folded_weights: Mapping | None = None) -> dict:
    """Statistics for every layer of a :class:`toposcope.analysis.profiles.Profiles`; the dict is what
    ``RUN/maps/stats.json`` holds (``docs/statistics.md`` explains every key).

    ``weights``: optional ``{layer: weight}`` for the weight ``S̄``; ``folded_weights``: ``{layer:
    BN-folded weight}`` for ``s_bar_bn_folded``; ``neighborhood``/``boundary``: the run's own (every
    position null uses them). Map smoothness: Moran's I of each map against ``n_permutations``
    position shuffles. Phone-specific organization: the label null with ``label_permutations``
    relabellings (within speaker, ``sil`` fixed; 0 leaves it out), which needs the profile's
    per-segment sums; functional ``S̄_func`` needs its Gram matrix. What cannot be computed is
    ``None`` and explained in ``notes``.
    """
    from .label_null import LabelNullError, permute_labels, segments_of
    from .similarity import SimilarityError, functional_similarity

    if n_permutations < 200:
        raise ValueError(f"use at least 200 permutations for the p-values, got {n_permutations}")
    if label_permutations and label_permutations < 99:
        raise ValueError(f"use at least 99 label permutations (999 recommended), or 0 to leave the label null "
                         f"out; got {label_permutations}")
    show = progress_enabled(progress)
    notes: list[str] = []
    perms = None
    if label_permutations:
        try:
            labels, speakers = segments_of(profiles)
            perms = permute_labels(labels, speakers, profiles.groups, int(label_permutations), seed=seed)
        except LabelNullError as e:
            notes.append(f"label null not computed: {e}")
    else:
        notes.append("label null not computed: label_permutations = 0")
    layers = {}
    no_gram = []
    for name in progress_bar(list(profiles.layers), enabled=show, desc="stats", unit="layer"):
        lp = profiles.layers[name]
        w = None if weights is None else weights.get(name)
        st = layer_stats(lp.maps(), profiles.groups, weight=w, grid=lp.grid, n_permutations=n_permutations,
                         alpha=alpha, adjacency=adjacency, threshold_sd=threshold_sd, seed=seed,
                         neighborhood=neighborhood, boundary=boundary)
        if folded_weights is not None and name in folded_weights:
            from .similarity import weight_similarity

            st["s_bar_bn_folded"] = weight_similarity(folded_weights[name], lp.grid, neighborhood=neighborhood,
                                                      boundary=boundary, n_permutations=min(n_permutations, 1000),
                                                      seed=seed)
        try:
            st["functional_similarity"] = functional_similarity(lp, neighborhood=neighborhood, boundary=boundary,
                                                                n_permutations=n_permutations, seed=seed)
        except SimilarityError as e:
            st["functional_similarity"] = None
            no_gram.append(f"{name}: {e}")
        st.update(label_null=None, share_phone_specific=None, phonetic=None, separation=None)
        for g in st["groups"].values():
            g.update(p_label=None, q_label=None)
        seg_sums, seg_counts = getattr(lp, "seg_sums", None), getattr(lp, "seg_counts", None)
        if perms is not None and (seg_sums is None or seg_counts is None):
            notes.append(f"label null not computed for {name}: the profile has no per-segment sums for it")
        elif perms is not None:
            ps = phone_specific_stats(seg_sums, seg_counts, perms, lp.grid, baseline=profiles.baseline,
                                      adjacency=adjacency, alpha=alpha, phonetic=profiles.grouping == "phone")
            for g, d in ps.pop("groups").items():
                st["groups"][g].update(d)
            st.update(ps)
        layers[name] = st
    if no_gram:
        notes.append("functional similarity not computed: " + "; ".join(no_gram))
    return {"profiles": profiles.name, "method": profiles.method, "grouping": profiles.grouping,
            "n_permutations": n_permutations, "label_permutations": int(label_permutations) if perms is not None else 0,
            "alpha": alpha, "adjacency": adjacency, "neighborhood": int(neighborhood), "boundary": boundary,
            "threshold": f"mean + {threshold_sd:g} sd of each on-grid map", "notes": notes, "layers": layers}


def _fmt(v, spec=".3f") -> str:
    return "-" if v is None or (isinstance(v, float) and not math.isfinite(v)) else format(v, spec)


def _row(st: dict) -> list[str]:
    def nz(d, key="observed"):  # "value (z ...)" of a {observed, z} dict
        return "-" if not d else f"{_fmt(d.get(key))} (z {_fmt(d.get('z'), '.1f')})"

    ln, ph, sep = st.get("label_null"), st.get("phonetic"), st.get("separation")
    sbar = nz(st.get("s_bar"))
    if st.get("s_bar_bn_folded"):
        sbar += f" / BN {_fmt(st['s_bar_bn_folded'].get('observed'))}"
    return [_fmt(st.get("share_phone_specific"), ".0%"),
            "-" if not ln else f"{_fmt(ln.get('observed'))} vs {_fmt(ln.get('mean'))} (p {_fmt(ln.get('p'), '.3f')})",
            "-" if not ph else f"{_fmt(ph.get('mantel_r'), '.2f')} (p {_fmt(ph.get('p'), '.3f')})",
            "-" if not sep else f"{_fmt(sep.get('observed'), '.1f')}/{_fmt(sep.get('mean'), '.1f')} (p {_fmt(sep.get('p'), '.3f')})",
            nz(st.get("functional_similarity")), sbar,
            _fmt(st["mean_morans_i"]), f"{_fmt(st['share_clustered'], '.0%')}",
            f"{_fmt(st['share_clustered_fdr'], '.0%')}",
            f"{_fmt(st['mean_largest_region'], '.1f')}/{_fmt(st['mean_largest_region_null'], '.1f')}"]


def format_table(stats: dict, baseline: dict | None = None, names: tuple[str, str] = ("run", "baseline")) -> str:
    """Plain-text table of :func:`compute_stats` output; with ``baseline``, both runs side by side."""
    head = ["phone-specific", "mean I vs label null", "Mantel r", "separation/null", "S̄_func (z)", "S̄ (z)",
            "smoothness: mean I", "smooth", "FDR", "largest/null"]
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
    nl = a.get("label_permutations") or 0
    lines.append(f"({a['profiles']}. Phone-specific organization, against {nl} label permutations (within speaker, "
                 f"sil fixed): phone-specific = share of phones with BH q_label < {a['alpha']}; mean Moran's I over "
                 f"phones vs its label-null mean; Mantel r of map dissimilarity vs phonetic distance; mean distance "
                 f"between phones' region centres vs the null.")
    lines.append(f" Layer and map smoothness, against {a['n_permutations']} position shuffles "
                 f"(neighbourhood {a.get('neighborhood', 3)}, {a.get('boundary', 'clip')}): S̄_func of activation "
                 f"correlations, weight S̄ (BN: BatchNorm-folded); Moran's I ({a['adjacency']}), smooth = share of "
                 f"maps with p < {a['alpha']}, FDR after BH: this is map smoothness, not phoneme grouping; "
                 f"largest region above {a['threshold']} vs shuffled.)")
    return "\n".join(lines)
