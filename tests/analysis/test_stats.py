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
