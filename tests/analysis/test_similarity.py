"""Layer smoothness (docs/method.md § Statistics): functional S̄ from the Gram matrix, position nulls with
the run's neighbourhood and boundary, BN-folded weights."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from toposcope.analysis.similarity import (SimilarityError, activation_correlation, bn_folded_weights,
                                           fold_batchnorm, functional_similarity, neighbour_mean, position_null,
                                           weight_similarity)
from toposcope.grid import Grid


def _layer(A, grid):
    A = np.asarray(A, dtype=np.float64)  # (frames, C)
    return SimpleNamespace(gram=A.T @ A, act_sum=A.sum(0), act_count=A.shape[0], grid=grid)


def test_functional_similarity_by_hand_on_2x2():
    # channels: 0 rising, 1 = 2 x rising (r01 = 1), 2 falling (r02 = r12 = -1), 3 constant (r = 0)
    A = np.array([[1, 2, 4, 5], [2, 4, 3, 5], [3, 6, 2, 5], [4, 8, 1, 5]])
    lp = _layer(A, Grid(2, 2))
    r = activation_correlation(lp)
    off = ~np.eye(4, dtype=bool)  # the diagonal is never used by S̄
    np.testing.assert_allclose(r[off], np.array([[1, 1, -1, 0], [1, 1, -1, 0], [-1, -1, 1, 0], [0, 0, 0, 0]])[off],
                               atol=1e-12)
    # 2x2, n = 3, clip: each cell has two edge neighbours (1/d = 1) and one diagonal (1/sqrt 2)
    w1, wd = 1 / (2 + 2 ** -0.5), 2 ** -0.5 / (2 + 2 ** -0.5)
    # edges (0,1) (0,2) (1,3) (2,3): 1 - 1 + 0 + 0; diagonals (0,3) (1,2): 0 - 1; each pair seen from both ends
    expected = 0.5 * (w1 * 0.0 + wd * -1.0)
    assert neighbour_mean(r, (2, 2)) == pytest.approx(expected)
    res = functional_similarity(lp, n_permutations=50, seed=0)
    assert res["observed"] == pytest.approx(expected) and res["n_permutations"] == 50
    assert set(res) == {"observed", "mean", "sd", "z", "p", "n_permutations"}
    assert 1 / 51 <= res["p"] <= 1


def test_correlation_matches_numpy_and_errors():
    A = np.random.default_rng(0).normal(size=(200, 6)) @ np.random.default_rng(1).normal(size=(6, 6))
    lp = _layer(A, Grid(3, 2))
    np.testing.assert_allclose(activation_correlation(lp), np.corrcoef(A.T), atol=1e-10)
    with pytest.raises(SimilarityError, match="older `toposcope profile`"):
        functional_similarity(SimpleNamespace(gram=None, act_sum=None, act_count=None, grid=Grid(3, 2)))


def test_position_null_separates_smooth_from_random():
    g = Grid(8, 8)
    r, c = np.divmod(np.arange(64), 8)
    d2 = (r[:, None] - r[None]) ** 2 + (c[:, None] - c[None]) ** 2
    smooth = np.exp(-d2 / 4.0)
    res = position_null(smooth, g, n_permutations=199, seed=0)
    assert res["p"] == pytest.approx(1 / 200) and res["z"] > 10
    x = np.random.default_rng(4).normal(size=(64, 64))
    res = position_null((x + x.T) / 2, g, n_permutations=199, seed=0)
    assert res["p"] > 0.05 and abs(res["z"]) < 3
    # the run's neighbourhood and boundary change the statistic: wrap adds the torus edges
    clip = position_null(smooth, g, n_permutations=20)["observed"]
    wrap = position_null(smooth, g, boundary="wrap", n_permutations=20)["observed"]
    five = position_null(smooth, g, neighborhood=5, n_permutations=20)["observed"]
    assert wrap < clip and five < clip  # torus neighbours across the seam and farther cells are less similar


def test_weight_similarity_uses_the_runs_neighbourhood():
    from toposcope.topography import neighborhood_similarity

    w = torch.randn(64, 3, 5, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    f = w.reshape(64, -1)
    u = f / f.norm(dim=1, keepdim=True)
    cos = (u @ u.T).numpy()
    for n, b in ((3, "clip"), (3, "wrap"), (5, "clip")):
        res = weight_similarity(w, (8, 8), neighborhood=n, boundary=b, n_permutations=100)
        assert res["observed"] == pytest.approx(neighbour_mean(cos, (8, 8), n, b), abs=1e-10)
        assert res["observed"] == pytest.approx(float(neighborhood_similarity(w, (8, 8), n, b).mean()), abs=1e-10)
        assert res["n_permutations"] == 100


def test_fold_batchnorm_by_hand():
    bn = torch.nn.BatchNorm1d(2, eps=1.0)
    with torch.no_grad():
        bn.weight.copy_(torch.tensor([2.0, -1.0]))
        bn.running_var.copy_(torch.tensor([3.0, 0.0]))
    w = torch.ones(2, 1, 2)
    assert fold_batchnorm(w, bn).tolist() == [[[1.0, 1.0]], [[-1.0, -1.0]]]
    # a sign flip of one of two identical neighbours turns their cosine from +1 to -1
    model = SimpleNamespace(layer_names=("c",), blocks={"c": SimpleNamespace(norm=bn)}, weight=lambda n: w)
    folded = bn_folded_weights(model)
    assert set(folded) == {"c"} and math.isclose(float(torch.nn.functional.cosine_similarity(
        folded["c"][0].flatten(), folded["c"][1].flatten(), dim=0)), -1.0, rel_tol=1e-6)
    plain = SimpleNamespace(layer_names=("c",), blocks={"c": SimpleNamespace(norm=torch.nn.Identity())},
                            weight=lambda n: w)
    assert bn_folded_weights(plain) == {}
