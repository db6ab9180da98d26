"""The label null: maps under permuted phone labels, re-aggregated from per-segment sums
(``docs/method.md`` § Statistics).

A smooth (topographic) layer makes *every* map smooth, whatever the grouping, so a map statistic
against shuffled grid positions measures smoothness, not phoneme grouping. The label null keeps
everything (the model, the grid, the frames, the segments and their speakers) and breaks only the
link between a segment and its phone label:

* the segments of the profile (``Profiles.segments``, one row per phone segment) whose label is a
  profiled group take part; segments with other labels are left out (as in the profile itself);
* labels of *fixed* groups (``sil``) stay where they are; all other labels are permuted among the
  segments **of the same speaker** (:func:`permute_labels`), so speaker and phone frequency per
  speaker are kept;
* each permutation's maps are recomputed exactly as ``profile`` computes them:
  ``P_g = sum(seg_sums[s]) / sum(seg_counts[s])`` over the segments now labelled ``g``, then
  ``values = P - baseline`` (uniform mean over groups, or frame-weighted) (:func:`label_maps`).

Re-aggregation is one sparse ``(n G x S) @ (S x C)`` product per chunk of ``n`` permutations (each
segment column holds one 1 per permutation, so the matrix is built directly in CSC form), in float32
on sums centred by the overall mean activation (the centring cancels in ``P - baseline``; it keeps
the float32 sums accurate). The identity (the real labels) goes through the same code, so observed
and null statistics are computed alike. ``benchmarks/bench_maps.py`` measures it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterator, Mapping, Sequence

import numpy as np

__all__ = ["FIXED_GROUPS", "LabelNullError", "LabelPermutations", "permute_labels", "label_maps",
           "label_null_statistics", "segments_of", "permutation_p"]

#: Groups whose segments keep their label under the label null.
FIXED_GROUPS = ("sil",)


class LabelNullError(ValueError):
    """The profile lacks what the label null needs (per-segment sums, the segment table)."""


@dataclass(frozen=True)
class LabelPermutations:
    """Label assignments of the participating segments.

    ``segment_index``: ``(S',)`` rows of the profile's segment table that take part (label in the
    groups); ``observed``: ``(S',)`` their real group index; ``assign``: ``(N, S')`` group index of
    each segment under each of the ``N`` permutations (int16); ``groups``: the group names;
    ``fixed``: ``(G,)`` bool, True for groups held in place (``sil``).
    """

    segment_index: np.ndarray
    observed: np.ndarray
    assign: np.ndarray
    groups: tuple[str, ...]
    fixed: np.ndarray

    @property
    def n_permutations(self) -> int:
        return int(self.assign.shape[0])


def segments_of(profiles) -> tuple[np.ndarray, np.ndarray]:
    """``(label (S,), speaker (S,))`` string arrays of a profile's segment table; :class:`LabelNullError`
    when the profile has none (``--no-segments``, files written before per-segment sums, or grouping ``predicted``)."""
    seg = getattr(profiles, "segments", None)
    if seg is None:
        raise LabelNullError(f"profiles {getattr(profiles, 'name', '?')!r} have no segment table (written with "
                             f"--no-segments or for a layout fit, by an older `toposcope profile`, or grouping "
                             f"'predicted'); re-run `toposcope profile` with grouping 'phone' for the label null")
    label = np.asarray(seg.label).astype(str)
    speaker = np.asarray(seg.speaker).astype(str)
    if label.shape != speaker.shape or label.ndim != 1:
        raise LabelNullError(f"segment table: label {label.shape} and speaker {speaker.shape} must be (S,) arrays")
    return label, speaker


def permute_labels(labels: Sequence[str], speakers: Sequence[str], groups: Sequence[str], n_permutations: int = 999,
                   *, fixed: Sequence[str] = FIXED_GROUPS, seed: int = 0) -> LabelPermutations:
    """``n_permutations`` relabellings of the segments: labels permuted within speaker, ``fixed``
    groups in place, segments whose label is not in ``groups`` left out. ``labels``/``speakers``: ``(S,)``."""
    labels = np.asarray(labels).astype(str)
    speakers = np.asarray(speakers).astype(str)
    if labels.shape != speakers.shape or labels.ndim != 1:
        raise ValueError(f"labels {labels.shape} and speakers {speakers.shape} must be two (S,) arrays")
    if isinstance(n_permutations, bool) or not isinstance(n_permutations, (int, np.integer)) or n_permutations < 1:
        raise ValueError(f"n_permutations must be a positive integer, got {n_permutations!r}")
    groups = tuple(str(g) for g in groups)
    if len(groups) > np.iinfo(np.int16).max:
        raise ValueError(f"too many groups ({len(groups)})")
    index = {g: i for i, g in enumerate(groups)}
    gi = np.array([index.get(l, -1) for l in labels], dtype=np.int64)
    seg_index = np.flatnonzero(gi >= 0)
    obs = gi[seg_index].astype(np.int16)
    fixed_g = np.array([g in set(fixed) for g in groups], dtype=bool)
    N = int(n_permutations)
    assign = np.broadcast_to(obs, (N, len(obs))).copy()
    rng = np.random.default_rng(seed)
    movable = ~fixed_g[obs]
    spk = speakers[seg_index]
    for s in np.unique(spk[movable]):
        cols = np.flatnonzero(movable & (spk == s))
        if len(cols) > 1:
            assign[:, cols] = rng.permuted(assign[:, cols], axis=1)
    return LabelPermutations(segment_index=seg_index, observed=obs, assign=assign, groups=groups, fixed=fixed_g)


def _baseline(raw: np.ndarray, counts: np.ndarray, baseline: str) -> np.ndarray:
    """``raw (n, G, C)`` minus the baseline of each of the ``n`` profiles, exactly as
    :func:`toposcope.analysis.profiles.subtract_baseline` does for one."""
    if baseline == "uniform":
        return raw - raw.mean(axis=1, keepdims=True)
    if baseline == "frames":
        w = counts / counts.sum(axis=1, keepdims=True)
        return raw - (w[..., None] * raw).sum(axis=1, keepdims=True)
    raise ValueError(f"baseline must be 'uniform' or 'frames', got {baseline!r}")


def label_maps(seg_sums, seg_counts, perms: LabelPermutations, *, baseline: str = "uniform", chunk: int = 25,
               identity: bool = True) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield ``(values (n, G, C) float64, counts (n, G))`` chunk by chunk: first (``identity=True``) the
    real labels as a chunk of one, then the permutations in order. ``seg_sums``: ``(S, C)`` of the
    whole segment table, ``seg_counts``: ``(S,)``. A group with no frames under some permutation gets
    NaN values there (the statistics count NaN as "at least as extreme", a conservative choice)."""
    import scipy.sparse as sp

    seg_sums = np.asarray(seg_sums, dtype=np.float64)
    seg_counts = np.asarray(seg_counts, dtype=np.float64)
    if seg_sums.ndim != 2 or seg_counts.shape != seg_sums.shape[:1]:
        raise LabelNullError(f"seg_sums {seg_sums.shape} and seg_counts {seg_counts.shape} must be (S, C) and (S,)")
    X = seg_sums[perms.segment_index]
    n_frames = seg_counts[perms.segment_index]
    total = n_frames.sum()
    mu = X.sum(0) / total if total > 0 else np.zeros(X.shape[1])
    Xc = np.concatenate([X - n_frames[:, None] * mu[None, :], n_frames[:, None]], axis=1).astype(np.float32)
    G, S = len(perms.groups), len(perms.segment_index)
    blocks = ([perms.observed[None, :]] if identity else []) + \
        [perms.assign[a:a + chunk] for a in range(0, perms.n_permutations, max(1, int(chunk)))]
    for A in blocks:
        n = A.shape[0]
        rows = (np.arange(n, dtype=np.int64)[:, None] * G + A).T.ravel()  # column s: one entry per permutation
        M = sp.csc_matrix((np.ones(rows.size, dtype=np.float32), rows, np.arange(0, rows.size + 1, n)),
                          shape=(n * G, S))
        out = np.asarray(M @ Xc, dtype=np.float64).reshape(n, G, -1)
        counts = out[..., -1]
        with np.errstate(invalid="ignore", divide="ignore"):
            raw = out[..., :-1] / counts[..., None]                       # P_g - mu
        raw[counts <= 0] = np.nan
        yield _baseline(raw, counts, baseline), np.rint(counts).astype(np.int64)


def permutation_p(observed: np.ndarray, null: np.ndarray, *, tol: float = 1e-9) -> np.ndarray:
    """One-sided ``p = (1 + #{null >= observed}) / (1 + N)`` along axis 0 of ``null (N, ...)``; a NaN in
    the null counts as "at least as extreme"; a NaN observation gives NaN."""
    observed = np.asarray(observed, dtype=np.float64)
    null = np.asarray(null, dtype=np.float64)
    scale = tol * np.maximum(1.0, np.abs(observed))
    with np.errstate(invalid="ignore"):
        hits = (null >= observed - scale) | ~np.isfinite(null)
    p = (1.0 + hits.sum(axis=0)) / (1.0 + null.shape[0])
    return np.where(np.isfinite(observed), p, np.nan)


def label_null_statistics(seg_sums, seg_counts, perms: LabelPermutations,
                          statistics: Mapping[str, Callable[[np.ndarray], np.ndarray]], *, grid,
                          baseline: str = "uniform", chunk: int = 25) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Every statistic on the real labels and under every permutation.

    ``statistics``: ``{name: f}`` with ``f(maps (n, G, rows, cols)) -> (n, ...)``. Returns
    ``{name: (observed (...), null (N, ...))}``.
    """
    obs: dict[str, np.ndarray] = {}
    null: dict[str, list] = {k: [] for k in statistics}
    first = True
    for values, _counts in label_maps(seg_sums, seg_counts, perms, baseline=baseline, chunk=chunk):
        maps = grid.to_map(values)
        for k, f in statistics.items():
            r = np.asarray(f(maps), dtype=np.float64)
            if first:
                obs[k] = r[0]
            else:
                null[k].append(r)
        first = False
    return {k: (obs[k], np.concatenate(null[k], axis=0) if null[k] else np.empty((0,) + obs[k].shape))
            for k in statistics}
