"""Topography statistics: Moran's I by hand, permutation p-values, connected regions."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from toposcope.grid import Grid
from toposcope.profiles import LayerProfile, Profiles
from toposcope.stats import (benjamini_hochberg, compute_stats, connected_regions, format_table, morans_i,
                             morans_i_test)


def test_morans_i_by_hand():
    cb = (np.indices((4, 4)).sum(0) % 2) * 2.0 - 1.0  # checkerboard of +-1
    # rook: every one of the 48 ordered neighbour pairs has z_i z_j = -1 -> I = (16/48)(-48/16) = -1
    assert morans_i(cb, "rook") == pytest.approx(-1.0)
    # queen adds 36 diagonal ordered pairs with +1: I = (16/84) * (-12/16) = -1/7
    assert morans_i(cb, "queen") == pytest.approx(-1.0 / 7)
    # one hot cell in a 2x2 map, z = (.75, -.25, -.25, -.25): rook num = -0.5, W = 8, sum z^2 = .75
    one = np.array([[1.0, 0.0], [0.0, 0.0]])
    assert morans_i(one, "rook") == pytest.approx((4 / 8) * (-0.5 / 0.75))
    # halves: strongly positive; batched evaluation equals one by one
    half = np.zeros((4, 4))
    half[:, :2] = 1.0
    stack = np.stack([cb, half])
    np.testing.assert_allclose(morans_i(stack), [morans_i(cb), morans_i(half)])
    # rook on halves: 24 vertical pairs (+1 each... z = +-.5 -> +.25) and horizontal: 16 same, 8 across
    assert morans_i(half, "rook") == pytest.approx((16 / 48) * ((24 + 16 - 8) * 0.25) / 4.0)
    assert math.isnan(morans_i(np.ones((3, 3))))
    with pytest.raises(ValueError, match="adjacency"):
        morans_i(cb, "king")


def test_permutation_test_separates_clustered_from_random():
    rng = np.random.default_rng(1)
    r, c = np.mgrid[0:16, 0:16]
    blob = np.exp(-((r - 5) ** 2 + (c - 9) ** 2) / 10.0) + 0.05 * rng.normal(size=(16, 16))
    t = morans_i_test(blob, n_permutations=400, seed=0)
    assert t["I"] > 0.5 and t["p"] == pytest.approx(1 / 401) and t["z"] > 5
    assert t["expected"] == pytest.approx(-1 / 255)
    noise = np.random.default_rng(2).normal(size=(16, 16))
    t = morans_i_test(noise, n_permutations=400, seed=0)
    assert t["p"] > 0.05 and abs(t["null_mean"] - (-1 / 255)) < 0.01
    const = morans_i_test(np.zeros((4, 4)), n_permutations=10)
    assert math.isnan(const["I"]) and math.isnan(const["p"])


def test_connected_regions_by_hand():
    m = np.zeros((5, 6))
    m[0:2, 0:2] = 5.0   # a 4-cell block
    m[4, 5] = 5.0       # a single cell
    m[2, 2] = 5.0       # touches the block diagonally: same region with 8-connectivity
    out = connected_regions(m, threshold=1.0)
    assert out["n_regions"] == 2 and out["sizes"] == [5, 1] and out["n_above"] == 6
    default = connected_regions(m)  # mean + 1 sd
    assert default["threshold"] == pytest.approx(m.mean() + m.std())


def test_benjamini_hochberg():
    p = np.array([0.001, 0.02, 0.03, 0.5, np.nan])
    # m = 4 finite: thresholds .0125, .025, .0375, .05 -> the first three pass
    assert benjamini_hochberg(p).tolist() == [True, True, True, False, False]
    assert benjamini_hochberg([0.2, 0.3]).tolist() == [False, False]


def test_compute_stats_and_table():
    grid = Grid(8, 8)
    r, c = np.mgrid[0:8, 0:8]
    rng = np.random.default_rng(0)
    clustered = np.exp(-((r - 2) ** 2 + (c - 5) ** 2) / 4.0).ravel()
    raw = np.stack([clustered, rng.normal(size=64), rng.normal(size=64)])
    lp = LayerProfile(values=raw - raw.mean(0), raw=raw, counts=np.array([3, 4, 5]), grid=grid)
    prof = Profiles(groups=("aa", "s", "sil"), method="gradnap", grouping="phone", layers={"conv1": lp})
    w = torch.randn(64, 5, 3)
    st = compute_stats(prof, {"conv1": w}, n_permutations=200, progress=False)
    L = st["layers"]["conv1"]
    assert L["groups"]["aa"]["p"] < 0.01 and L["groups"]["aa"]["morans_i"] > 0.1
    assert L["n_groups"] == 3 and 0 < L["share_clustered"] <= 1
    assert L["groups"]["aa"]["regions"] >= 1 and L["groups"]["aa"]["sizes"][0] >= 4
    assert set(L["s_bar"]) >= {"observed", "mean", "sd", "z", "p"}
    table = format_table(st)
    assert "conv1" in table and "mean I" in table
    both = format_table(st, st, names=("topo", "lambda0"))
    assert "topo" in both and "lambda0" in both and both.count("conv1") == 2
    with pytest.raises(ValueError, match="200"):
        compute_stats(prof, n_permutations=50, progress=False)


def test_largest_regions_batched_matches_one_by_one():
    from toposcope.stats import _largest_regions

    masks = np.random.default_rng(3).random((30, 7, 6)) > 0.6
    masks[4] = False  # no region at all
    exp = [max(connected_regions(m.astype(float), threshold=0.5)["sizes"], default=0) for m in masks]
    assert _largest_regions(masks).tolist() == exp


def test_jsonable_strict():
    import json

    from toposcope.stats import jsonable

    d = jsonable({"a": np.float64(np.nan), "b": [np.int64(3), (1.5, np.inf)], "c": np.bool_(True)})
    assert d == {"a": None, "b": [3, [1.5, None]], "c": True}
    json.dumps(d, allow_nan=False)


# -- phone-specific organization: the label null (docs/method.md § Statistics) ----------------------------
def _blob(grid, centre, sigma=1.5):
    r, c = np.divmod(np.arange(grid.size), grid.cols)
    return np.exp(-((r - centre[0]) ** 2 + (c - centre[1]) ** 2) / (2 * sigma ** 2))


def _segment_profiles(seed, *, grid=Grid(8, 8), phones=("aa", "iy", "s", "sh", "m", "n", "t", "k"), speakers=4,
                      per=15, smooth=1.0, white=0.0, noise=0.3, layers=("conv1", "conv2"), planted=None, amp=2.0,
                      phone_maps=None, shuffle_labels=False):
    """Profiles with per-segment sums, built like `profile` builds them. Each segment's mean response is a
    random field smoothed with a Gaussian of ``smooth`` cells (a smooth layer), plus ``white`` per-segment
    white noise, plus ``amp`` x a blob for the ``planted`` phones, plus ``phone_maps[phone]``; each frame adds
    ``noise``. ``shuffle_labels``: the responses follow the true phones, the labels are random."""
    from types import SimpleNamespace

    from scipy.ndimage import gaussian_filter

    from toposcope.analysis.profiles import subtract_baseline

    rng = np.random.default_rng(seed)
    groups = tuple(phones) + ("sil",)
    labels = np.array([g for _ in range(speakers) for g in groups for _ in range(per)])
    spk = np.array([f"spk{s}" for s in range(speakers) for _ in groups for _ in range(per)])
    truth, S = labels.copy(), len(labels)
    if shuffle_labels:
        labels = rng.permutation(labels)
    counts = rng.integers(1, 7, size=S)
    layer_profiles = {}
    for name in layers:
        field = gaussian_filter(rng.normal(size=(S, grid.rows, grid.cols)), sigma=(0, smooth, smooth), mode="nearest")
        field = field.reshape(S, -1) / field.reshape(S, -1).std(1, keepdims=True)
        resp = field + white * rng.normal(size=field.shape)
        for p, centre in (planted or {}).items():
            resp = resp + amp * (truth == p)[:, None] * _blob(grid, centre)[None]
        if phone_maps is not None:
            resp = resp + np.stack([phone_maps.get(t, np.zeros(grid.size)) for t in truth])
        sums = counts[:, None] * resp + np.sqrt(counts)[:, None] * noise * rng.normal(size=resp.shape)
        raw = np.stack([sums[labels == g].sum(0) / counts[labels == g].sum() for g in groups])
        c = np.array([counts[labels == g].sum() for g in groups])
        lp = LayerProfile(values=subtract_baseline(raw, c), raw=raw, counts=c, grid=grid)
        # the profile file's per-segment sums and Gram matrix (every frame of a segment at its mean response)
        for k, v in dict(seg_sums=sums, seg_counts=counts, act_sum=(counts[:, None] * resp).sum(0),
                         act_count=int(counts.sum()),
                         gram=np.einsum("s,sc,sd->cd", counts.astype(float), resp, resp)).items():
            setattr(lp, k, v)
        layer_profiles[name] = lp
    prof = Profiles(groups=groups, method="gradnap", grouping="phone", layers=layer_profiles)
    prof.segments = SimpleNamespace(utt=np.array([f"u{i // 10}" for i in range(S)]), speaker=spk, label=labels,
                                    start=np.zeros(S), end=np.ones(S))
    return prof


def test_bh_qvalues_by_hand():
    from toposcope.stats import bh_qvalues

    q = bh_qvalues([0.01, 0.04, 0.03, 0.5, np.nan])
    # sorted 0.01, 0.03, 0.04, 0.5 (m = 4): m p / j = 0.04, 0.06, 0.0533, 0.5 -> running min from the top
    np.testing.assert_allclose(q[:4], [0.04, 0.16 / 3, 0.16 / 3, 0.5])
    assert np.isnan(q[4])
    assert bh_qvalues([0.9, 0.8]).tolist() == [0.9, 0.9] and bh_qvalues([0.6] * 3 + [1.0]).max() == 1.0
    p = np.random.default_rng(0).random(50) ** 3
    for a in (0.01, 0.05, 0.2):
        assert np.array_equal(bh_qvalues(p) < a + 1e-15, benjamini_hochberg(p, a))


def test_stats_json_contract_keys():
    st = compute_stats(_segment_profiles(0, layers=("conv1",)), n_permutations=200, label_permutations=99,
                       progress=False)
    L = st["layers"]["conv1"]
    assert set(L["label_null"]) == {"observed", "mean", "sd", "z", "p", "n_permutations"}
    assert L["label_null"]["n_permutations"] == 99 and st["label_permutations"] == 99
    assert set(L["functional_similarity"]) == {"observed", "mean", "sd", "z", "p", "n_permutations"}
    assert set(L["phonetic"]) == {"mantel_r", "p"} and set(L["separation"]) == {"observed", "mean", "p"}
    assert 0 <= L["share_phone_specific"] <= 1
    assert L["groups"]["sil"]["p_label"] is None and L["groups"]["sil"]["q_label"] is None  # sil is fixed
    assert all(1 / 100 <= L["groups"][g]["p_label"] <= 1 for g in ("aa", "s", "k"))
    assert L["groups"]["aa"]["q_label"] >= L["groups"]["aa"]["p_label"]
    for k in ("morans_i", "p", "z", "regions"):  # existing keys keep their meaning
        assert k in L["groups"]["aa"]
    # an old profile without segments or Gram matrix: the new statistics are None and explained
    old = _segment_profiles(0, layers=("conv1",))
    old.segments = None
    old.layers["conv1"].gram = None
    st = compute_stats(old, n_permutations=200, progress=False)
    assert st["layers"]["conv1"]["label_null"] is None and st["layers"]["conv1"]["functional_similarity"] is None
    assert any("re-run `toposcope profile`" in n for n in st["notes"]) and st["label_permutations"] == 0


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_smooth_layer_with_random_labels_finds_nothing_phone_specific(seed):
    """A smooth layer (high S̄_func): every map is 'clustered' against shuffled positions, but with labels
    that carry nothing the label null finds (almost) no phone-specific map."""
    st = compute_stats(_segment_profiles(seed, layers=("conv1", "conv2", "conv3")), n_permutations=200,
                       label_permutations=199, seed=seed, progress=False)
    for name, L in st["layers"].items():
        assert L["functional_similarity"]["p"] <= 0.01 and L["functional_similarity"]["z"] > 10, name
        assert L["share_clustered"] >= 0.8, name                   # map smoothness: high
        assert L["share_phone_specific"] <= 0.10, name              # phone-specific: nothing
        assert L["phonetic"]["p"] > 0.01 and L["label_null"]["p"] > 0.01, name


def test_planted_phone_specific_clusters_are_detected():
    """/s/ and /m/ get their own region on top of smooth + unstructured responses: their p_label < 0.01."""
    for seed in (0, 1):
        st = compute_stats(_segment_profiles(seed, planted={"s": (2, 5), "m": (6, 1)}, white=1.0), n_permutations=200,
                           label_permutations=199, seed=seed, progress=False)
        for name, L in st["layers"].items():
            g = L["groups"]
            assert g["s"]["p_label"] < 0.01 and g["m"]["p_label"] < 0.01, name
            assert g["s"]["q_label"] < 0.05 and g["m"]["q_label"] < 0.05, name
            assert L["share_phone_specific"] >= 2 / 8
            others = [g[p]["p_label"] for p in ("aa", "iy", "sh", "n", "t", "k")]
            assert np.median(others) > 0.1, name
    # the same responses with labels that do not follow them: nothing
    st = compute_stats(_segment_profiles(0, planted={"s": (2, 5), "m": (6, 1)}, white=1.0, shuffle_labels=True),
                       n_permutations=200, label_permutations=199, progress=False)
    assert all(L["share_phone_specific"] <= 0.125 for L in st["layers"].values())


def _feature_maps(grid, phones, seed):
    """Each feature value (manner=stop, voicing=voiced, height=high, ...) a blob at a random place; a phone's
    map is the sum of its features' blobs, so phones sharing features have similar maps."""
    from toposcope.analysis.phonetic import FEATURE_NAMES, FEATURES

    rng = np.random.default_rng(seed)
    loc = {}
    for k in FEATURE_NAMES:
        for p in phones:
            v = FEATURES[p][k]
            if v is not None and (k, v) not in loc:
                loc[(k, v)] = _blob(grid, rng.uniform(0, grid.rows - 1, size=2))
    return {p: sum(loc[(k, FEATURES[p][k])] for k in FEATURE_NAMES if FEATURES[p][k] is not None) for p in phones}


def test_planted_phonetic_organization_mantel():
    phones = ("aa", "iy", "uw", "ae", "p", "b", "t", "d", "s", "z", "f", "v", "m", "n")
    grid = Grid(10, 10)
    for seed in (0, 1):
        pm = _feature_maps(grid, phones, 100 + seed)
        kw = dict(grid=grid, phones=phones, phone_maps=pm, layers=("conv1",), per=8)
        st = compute_stats(_segment_profiles(seed, **kw), n_permutations=200, label_permutations=199,
                           progress=False)
        ph = st["layers"]["conv1"]["phonetic"]
        assert ph["mantel_r"] > 0.3 and ph["p"] < 0.01
        shuffled = compute_stats(_segment_profiles(seed, shuffle_labels=True, **kw), n_permutations=200,
                                 label_permutations=199, progress=False)
        ph = shuffled["layers"]["conv1"]["phonetic"]
        assert ph["p"] > 0.05 and abs(ph["mantel_r"]) < 0.2
