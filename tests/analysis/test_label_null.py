"""The label null (docs/method.md § Statistics): relabelling within speaker, sil fixed, maps re-aggregated
from per-segment sums exactly as `profile` aggregates them."""

from __future__ import annotations

import numpy as np
import pytest

from toposcope.analysis.label_null import (LabelNullError, label_maps, label_null_statistics, permutation_p,
                                           permute_labels, segments_of)
from toposcope.analysis.profiles import subtract_baseline
from toposcope.grid import Grid


def test_permutations_stay_within_speaker_and_keep_sil():
    labels = np.array(["aa", "s", "sil", "aa", "zz", "t", "s", "sil", "t", "aa", "s", "t"])
    spk = np.array(["A", "A", "A", "A", "A", "B", "B", "B", "B", "B", "A", "B"])
    groups = ("aa", "s", "t", "sil")
    P = permute_labels(labels, spk, groups, 200, seed=3)
    # "zz" is not a group: left out; every other segment takes part
    assert P.segment_index.tolist() == [0, 1, 2, 3, 5, 6, 7, 8, 9, 10, 11]
    assert P.assign.shape == (200, 11) and P.fixed.tolist() == [False, False, False, True]
    obs = P.observed
    assert [groups[g] for g in obs] == [labels[i] for i in P.segment_index]
    sil = obs == 3
    assert (P.assign[:, sil] == 3).all() and not (P.assign[:, ~sil] == 3).any()
    seg_spk = spk[P.segment_index]
    for row in P.assign:
        for s in "AB":
            m = seg_spk == s
            assert sorted(row[m].tolist()) == sorted(obs[m].tolist())   # same labels per speaker
    assert (P.assign != obs).any(axis=1).mean() > 0.9                  # really permuted
    # deterministic in the seed
    assert np.array_equal(permute_labels(labels, spk, groups, 200, seed=3).assign, P.assign)
    with pytest.raises(ValueError, match="n_permutations"):
        permute_labels(labels, spk, groups, 0)


def test_identity_reaggregation_equals_the_profile_by_hand():
    # 5 segments, 3 channels; groups aa (segments 0, 3), s (1), sil (2, 4)
    seg_sums = np.array([[2.0, 4.0, 0.0], [3.0, 3.0, 3.0], [1.0, 0.0, 1.0], [4.0, 0.0, 2.0], [0.0, 2.0, 1.0]])
    seg_counts = np.array([2, 3, 1, 2, 1])
    labels = np.array(["aa", "s", "sil", "aa", "sil"])
    P = permute_labels(labels, np.array(["A"] * 5), ("aa", "s", "sil"), 5, seed=0)
    raw = np.array([[6 / 4, 4 / 4, 2 / 4], [1.0, 1.0, 1.0], [1 / 2, 2 / 2, 2 / 2]])
    counts = np.array([4, 3, 2])
    for baseline in ("uniform", "frames"):
        values, c = next(label_maps(seg_sums, seg_counts, P, baseline=baseline))
        assert values.shape == (1, 3, 3) and c[0].tolist() == counts.tolist()
        np.testing.assert_allclose(values[0], subtract_baseline(raw, counts, baseline), atol=1e-6)
    # the two non-sil segments of speaker A (0, 1, 3) swap labels: aa gets {0,1} or {1,3} or stays
    chunks = list(label_maps(seg_sums, seg_counts, P, chunk=2, identity=False))
    assert [v.shape[0] for v, _ in chunks] == [2, 2, 1]
    for (v, c), k in zip(chunks, (0, 2, 4)):
        for j in range(v.shape[0]):
            a = P.assign[k + j]
            sel = lambda g: P.segment_index[a == g]  # noqa: E731
            r = np.stack([seg_sums[sel(g)].sum(0) / seg_counts[sel(g)].sum() for g in range(3)])
            np.testing.assert_allclose(v[j], r - r.mean(0), atol=1e-6)


def test_permutation_p_counts_ties_and_nan_conservatively():
    null = np.array([[0.1, 1.0], [0.5, np.nan], [0.3, 2.0]])
    p = permutation_p(np.array([0.3, 1.5]), null)
    assert p.tolist() == [pytest.approx(3 / 4), pytest.approx(3 / 4)]  # 0.3 >= 0.3 (tie) and 0.5; nan and 2.0
    assert np.isnan(permutation_p(np.array([np.nan]), null[:, :1])[0])


def test_statistics_runner_and_missing_segments():
    rng = np.random.default_rng(0)
    S, grid = 40, Grid(3, 3)
    labels = np.array(["aa", "s", "t", "sil"] * 10)
    P = permute_labels(labels, np.array(["A", "B"] * 20), ("aa", "s", "t", "sil"), 50, seed=1)
    res = label_null_statistics(rng.normal(size=(S, 9)), np.full(S, 2), P, {"sum": lambda m: m.sum(axis=(-2, -1))},
                                grid=grid)
    obs, null = res["sum"]
    assert obs.shape == (4,) and null.shape == (50, 4)
    np.testing.assert_allclose(null.sum(1), 0.0, atol=1e-4)  # uniform baseline: values sum to 0 over groups

    class NoSegments:
        name = "gradnap-phone"
        segments = None

    with pytest.raises(LabelNullError, match="re-run `toposcope profile`"):
        segments_of(NoSegments())
