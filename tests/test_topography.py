"""The topographic regularizer (docs/method.md § Regularizer, seed §2.1): hand-computed values, gradients, the object, the null."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import toposcope
from toposcope.grid import Grid
from toposcope.topography import (TopographicRegularizer, neighbor_weights, neighborhood_similarity,
                                  permutation_null, topographic_loss)

R2 = math.sqrt(2.0)
EDGE3 = 1 / (4 + 4 / R2)            # 0.1464: interior edge neighbour, n=3
DIAG3 = (1 / R2) / (4 + 4 / R2)     # 0.1036: interior diagonal
CORNER_EDGE = 1 / (2 + 1 / R2)      # 0.3694: corner of a clipped 3x3 window
CORNER_DIAG = (1 / R2) / (2 + 1 / R2)


def dense_reference(weight: torch.Tensor, grid, n=3, boundary="clip") -> torch.Tensor:
    """S_p from the dense weight matrix and the full cosine matrix (autograd-differentiable)."""
    f = weight.reshape(weight.shape[0], -1)
    u = f / f.norm(dim=1, keepdim=True)
    return (neighbor_weights(grid, n, boundary).to(f.dtype) * (u @ u.t())).sum(1)


# -- the weights of docs/method.md § Regularizer ------------------------------------------------------------------


def test_public_names_come_from_topography():
    assert toposcope.neighborhood_similarity is neighborhood_similarity
    assert toposcope.topographic_loss is topographic_loss
    assert toposcope.TopographicRegularizer is TopographicRegularizer
    assert toposcope.permutation_null is permutation_null


def test_interior_weights_3x3_match_spec():
    w = neighbor_weights((3, 3))
    assert round(EDGE3, 4) == 0.1464 and round(DIAG3, 4) == 0.1036
    expected = torch.tensor([DIAG3, EDGE3, DIAG3, EDGE3, 0.0, EDGE3, DIAG3, EDGE3, DIAG3], dtype=torch.float64)
    torch.testing.assert_close(w[4], expected, rtol=0, atol=1e-12)


def test_clipped_border_renormalises_over_existing_neighbours():
    w = neighbor_weights((3, 3), 3, "clip")
    # corner (0,0): neighbours (0,1), (1,0) at distance 1 and (1,1) at sqrt 2
    corner = torch.zeros(9, dtype=torch.float64)
    corner[[1, 3]] = CORNER_EDGE
    corner[4] = CORNER_DIAG
    torch.testing.assert_close(w[0], corner, rtol=0, atol=1e-12)
    # edge (0,1): (0,0), (0,2), (1,1) at 1; (1,0), (1,2) at sqrt 2 -> total 3 + sqrt 2
    edge = torch.zeros(9, dtype=torch.float64)
    edge[[0, 2, 4]] = 1 / (3 + R2)
    edge[[3, 5]] = (1 / R2) / (3 + R2)
    torch.testing.assert_close(w[1], edge, rtol=0, atol=1e-12)
    torch.testing.assert_close(w.sum(1), torch.ones(9, dtype=torch.float64))
    assert torch.all(w.diagonal() == 0)


def test_wrap_is_a_torus():
    w = neighbor_weights((3, 3), 3, "wrap")
    # every cell of a 3x3 torus has 8 distinct neighbours with the interior weights
    assert torch.count_nonzero(w, dim=1).tolist() == [8] * 9
    assert w[0, 8] == pytest.approx(DIAG3)       # (0,0) -> (2,2) across the corner
    assert w[0, 2] == pytest.approx(EDGE3)       # (0,0) -> (0,2) across the left edge
    assert neighbor_weights((3, 3), 3, "clip")[0, 8] == 0
    # a 2x2 torus: each other cell is reached by several offsets but counted once, at its
    # shortest distance, so it is the same as the clipped window
    torch.testing.assert_close(neighbor_weights((2, 2), 3, "wrap"), neighbor_weights((2, 2), 3, "clip"))
    # a 4x4 torus with n=5: +2 and -2 land on the same cell, counted once
    w44 = neighbor_weights((4, 4), 5, "wrap")
    assert torch.count_nonzero(w44[0]).item() == 15
    torch.testing.assert_close(w44.sum(1), torch.ones(16, dtype=torch.float64))


def test_row_grid_and_larger_neighbourhood():
    w = neighbor_weights((1, 4))
    assert w[0].tolist() == [0.0, 1.0, 0.0, 0.0]
    assert w[1].tolist() == [0.5, 0.0, 0.5, 0.0]
    w5 = neighbor_weights((5, 5), 5)
    centre = w5[12].reshape(5, 5)
    dist = torch.tensor([[math.hypot(r - 2, c - 2) for c in range(5)] for r in range(5)], dtype=torch.float64)
    inv = torch.where(dist > 0, 1 / dist.clamp_min(1e-9), torch.zeros_like(dist))
    torch.testing.assert_close(centre, inv / inv.sum())
    assert centre[2, 3] / centre[2, 4] == pytest.approx(2.0)    # reciprocal distance: d=1 vs d=2


# -- S_p and L by hand -----------------------------------------------------------------------


def test_2x2_by_hand():
    # positions 0 (0,0), 1 (0,1), 2 (1,0), 3 (1,1)
    f = torch.tensor([[1.0, 0.0], [0.0, 1.0], [2.0, 0.0], [1.0, 1.0]], dtype=torch.float64)
    a, b = CORNER_EDGE, CORNER_DIAG
    c = 1 / R2
    expected = torch.tensor([
        a * 0 + a * 1 + b * c,        # 0: with 1 (cos 0), 2 (cos 1), 3 (cos 1/sqrt2)
        a * 0 + a * c + b * 0,        # 1: with 0 (0), 3 (1/sqrt2), 2 (diagonal, 0)
        a * 1 + a * c + b * 0,        # 2: with 0 (1), 3 (1/sqrt2), 1 (diagonal, 0)
        a * c + a * c + b * c,        # 3: with 1, 2 (1/sqrt2 each), 0 (diagonal, 1/sqrt2)
    ], dtype=torch.float64)
    S = neighborhood_similarity(f, (2, 2))
    torch.testing.assert_close(S, expected, rtol=0, atol=1e-12)
    torch.testing.assert_close(topographic_loss(f, (2, 2)), (4 - expected.sum()), rtol=0, atol=1e-12)
    torch.testing.assert_close(topographic_loss(f, Grid(2, 2), reduction="mean"), 1 - expected.mean(),
                               rtol=0, atol=1e-12)
    torch.testing.assert_close(neighborhood_similarity(f, (2, 2), boundary="wrap"), expected, rtol=0, atol=1e-12)


def test_3x3_corner_clip_vs_wrap_by_hand():
    # filters 0 (corner), 4 (centre), 8 (opposite corner) point along e0; all others are orthogonal
    f = torch.zeros(9, 10, dtype=torch.float64)
    f[0, 0], f[4, 0], f[8, 0] = 1.0, 2.0, 3.0
    for i in (1, 2, 3, 5, 6, 7):
        f[i, i] = 1.0
    S_clip = neighborhood_similarity(f, (3, 3), boundary="clip")
    S_wrap = neighborhood_similarity(f, (3, 3), boundary="wrap")
    assert S_clip[0].item() == pytest.approx(CORNER_DIAG)      # only the centre, diagonal of a clipped corner
    assert S_clip[8].item() == pytest.approx(CORNER_DIAG)
    assert S_wrap[0].item() == pytest.approx(2 * DIAG3)        # on the torus (2,2) is a diagonal of (0,0) too
    assert S_wrap[8].item() == pytest.approx(2 * DIAG3)
    assert S_clip[4].item() == pytest.approx(2 * DIAG3)        # centre: both corners are diagonals
    assert S_clip[1].item() == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("shape,grid", [((16, 3, 5), (4, 4)), ((12, 2, 3, 3), (4, 3)), ((6, 7), (3, 2)),
                                        ((20,), (5, 4))])
@pytest.mark.parametrize("boundary", ["clip", "wrap"])
def test_identical_filters_give_zero_loss_and_unit_similarity(shape, grid, boundary):
    base = torch.randn(*shape[1:]) if len(shape) > 1 else torch.tensor(1.0)
    scale = torch.rand(shape[0]) + 0.5       # same direction, different norms
    w = scale.reshape(-1, *[1] * (len(shape) - 1)) * base.expand(*shape)
    S = neighborhood_similarity(w, grid, boundary=boundary)
    torch.testing.assert_close(S, torch.ones(shape[0]), atol=1e-6, rtol=0)
    assert abs(topographic_loss(w, grid, boundary=boundary).item()) < 1e-5


@pytest.mark.parametrize("grid,n,boundary", [((4, 4), 3, "clip"), ((4, 4), 5, "wrap"), ((6, 5), 5, "clip"),
                                             ((3, 7), 3, "wrap"), ((2, 2), 3, "wrap"), ((8, 4), 7, "clip")])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_matches_dense_reference(grid, n, boundary, dtype):
    g = torch.Generator().manual_seed(1)
    C = grid[0] * grid[1]
    w = torch.randn(C, 3, 4, generator=g, dtype=dtype)
    tol = 1e-5 if dtype == torch.float32 else 1e-12
    S = neighborhood_similarity(w, grid, n, boundary)
    assert S.dtype == dtype and S.shape == (C,)
    torch.testing.assert_close(S, dense_reference(w, grid, n, boundary), atol=tol, rtol=0)
    # gradients of the loss against autograd through the dense reference
    a = w.clone().requires_grad_(True)
    b = w.clone().requires_grad_(True)
    topographic_loss(a, grid, n, boundary).backward()
    (C - dense_reference(b, grid, n, boundary).sum()).backward()
    torch.testing.assert_close(a.grad, b.grad, atol=10 * tol, rtol=1e-4)


@pytest.mark.parametrize("grid,n,boundary", [((3, 3), 3, "clip"), ((3, 3), 3, "wrap"), ((2, 2), 3, "clip"),
                                             ((4, 3), 5, "wrap"), ((1, 5), 3, "clip")])
def test_gradcheck_float64(grid, n, boundary):
    g = torch.Generator().manual_seed(0)
    C = grid[0] * grid[1]
    w = torch.randn(C, 2, 3, generator=g, dtype=torch.float64, requires_grad=True)
    # the (C,) output: gradcheck uses arbitrary upstream gradients, not only the loss's uniform one
    assert torch.autograd.gradcheck(lambda x: neighborhood_similarity(x, grid, n, boundary), (w,))
    assert torch.autograd.gradcheck(lambda x: topographic_loss(x, grid, n, boundary, "mean"), (w,))


def test_zero_filter_is_finite():
    w = torch.randn(9, 4)
    w[4] = 0.0
    w.requires_grad_(True)
    S = neighborhood_similarity(w, (3, 3))
    assert torch.isfinite(S).all()
    assert S[4].item() == 0.0               # cos with a zero vector is 0
    S.sum().backward()
    assert torch.isfinite(w.grad).all()


def test_non_contiguous_and_low_precision_weights():
    w = torch.randn(5, 12).t()               # (12, 5) non-contiguous view
    torch.testing.assert_close(neighborhood_similarity(w, (4, 3)), dense_reference(w.contiguous(), (4, 3)),
                               atol=1e-5, rtol=0)
    h = torch.randn(12, 5).to(torch.bfloat16).requires_grad_(True)
    S = neighborhood_similarity(h, (4, 3))   # computed in float32
    S.sum().backward()
    assert S.dtype == torch.float32 and h.grad.dtype == torch.bfloat16


def test_gradient_steps_raise_similarity():
    torch.manual_seed(0)
    w = torch.randn(64, 8, 5, requires_grad=True)
    opt = torch.optim.SGD([w], lr=5.0)
    before = neighborhood_similarity(w, (8, 8)).mean().item()
    history = [before]
    for _ in range(10):
        opt.zero_grad()
        topographic_loss(w, (8, 8)).backward()
        opt.step()
        history.append(neighborhood_similarity(w, (8, 8)).mean().item())
    assert abs(before) < 0.2                         # random filters: S̄ near 0
    assert history[-1] > before + 0.5
    assert all(b >= a - 1e-6 for a, b in zip(history, history[1:]))   # monotone for this step size


# -- bad input -----------------------------------------------------------------------------


@pytest.mark.parametrize("kwargs,match", [
    (dict(grid=(3, 3)), r"16 filters.*3x3"),
    (dict(grid=(4, 4), neighborhood=4), r"odd integer.*got 4"),
    (dict(grid=(4, 4), neighborhood=1), r"odd integer.*got 1"),
    (dict(grid=(4, 4), neighborhood=9), r"neighborhood 9 is too large.*4x4.*3\.\.7"),
    (dict(grid=(4, 4), neighborhood=3.0), r"odd integer.*3\.0"),
    (dict(grid=(4, 4), boundary="reflect"), r"'reflect'.*'clip'.*'wrap'"),
    (dict(grid=(4, 4, 1)), r"\(rows, cols\)"),
])
def test_bad_input_raises_value_error(kwargs, match):
    with pytest.raises(ValueError, match=match):
        neighborhood_similarity(torch.randn(16, 3), **kwargs)


def test_bad_reduction_and_weight():
    with pytest.raises(ValueError, match=r"'avg'.*'sum'.*'mean'"):
        topographic_loss(torch.randn(4, 3), (2, 2), reduction="avg")
    with pytest.raises(ValueError, match="floating-point"):
        neighborhood_similarity(torch.ones(4, 3, dtype=torch.long), (2, 2))
    with pytest.raises(ValueError, match="1x1 grid has no neighbours"):
        neighborhood_similarity(torch.randn(1, 3), (1, 1))


# -- the regularizer object ------------------------------------------------------------------


def test_regularizer_on_a_model(tiny_model):
    m = tiny_model
    reg = TopographicRegularizer(m, weight=0.25)
    assert reg.names == m.layer_names
    expected = sum(topographic_loss(m.weight(n), m.grids[n]) for n in m.layer_names)
    torch.testing.assert_close(reg(), 0.25 * expected)
    sims = reg.similarities()
    for n in m.layer_names:
        assert sims[n] == pytest.approx(neighborhood_similarity(m.weight(n), m.grids[n]).mean().item())
    m.zero_grad(set_to_none=True)
    reg.loss().backward()
    assert all(m.weight(n).grad is not None and m.weight(n).grad.abs().sum() > 0 for n in m.layer_names)
    assert m.conv("output").weight.grad is None      # only gridded layers
    m.zero_grad(set_to_none=True)
    mean = TopographicRegularizer(m, weight=1.0, reduction="mean", layers=["conv2"])
    torch.testing.assert_close(mean(), 1 - torch.tensor(sims["conv2"]), atol=1e-6, rtol=0)


def test_regularizer_zero_weight_computes_nothing(tiny_model):
    reg = TopographicRegularizer(tiny_model, weight=0.0)
    z = reg()
    assert z.item() == 0.0 and z.dim() == 0 and not z.requires_grad


def test_regularizer_from_config(tiny_model):
    from toposcope.config import TrainConfig

    reg = TopographicRegularizer.from_config(tiny_model, TrainConfig(topo_weight=0.5, neighborhood=5,
                                                                     boundary="wrap"))
    assert (reg.weight, reg.neighborhood, reg.boundary) == (0.5, 5, "wrap")
    w, g = tiny_model.weight("conv1"), tiny_model.grids["conv1"]
    assert reg.layer_losses()["conv1"].item() == pytest.approx(topographic_loss(w, g, 5, "wrap").item(), rel=1e-6)


def test_regularizer_on_any_model():
    net = nn.Sequential(nn.Conv2d(3, 12, 3), nn.ReLU(), nn.Flatten(), nn.Linear(12, 6))
    reg = TopographicRegularizer({"conv": (net[0], (4, 3)), "fc": net[3].weight}, weight=1.0)
    assert reg.grids == {"conv": Grid(4, 3), "fc": Grid(3, 2)}      # fc: default most-square grid
    expected = topographic_loss(net[0].weight, (4, 3)) + topographic_loss(net[3].weight, (3, 2))
    torch.testing.assert_close(reg(), expected)
    by_name = TopographicRegularizer(net, weight=1.0, layers=["0", "3"])
    torch.testing.assert_close(by_name(), expected)
    with pytest.raises(ValueError, match=r"12 filters.*5x5"):
        TopographicRegularizer({"conv": (net[0], (5, 5))})
    with pytest.raises(ValueError, match="neighborhood must be an odd"):
        TopographicRegularizer(net, layers=["0"], neighborhood=2)
    with pytest.raises(ValueError, match="'median'"):
        TopographicRegularizer(net, layers=["0"], reduction="median")
    with pytest.raises(ValueError, match="'inputs'"):
        TopographicRegularizer(net, layers=["0"], on="inputs")
    with pytest.raises(ValueError, match=r"λ.*-1"):
        TopographicRegularizer(net, layers=["0"], weight=-1)
    with pytest.raises(ValueError, match="layers="):
        TopographicRegularizer(net)


def test_activation_variant(tiny_model):
    from toposcope.hooks import record

    m = tiny_model
    reg = TopographicRegularizer(m, weight=1.0, on="activations", layers=["conv1", "conv2"])
    x = torch.randn(2, 32, 40)
    with record(m, reg.names, detach=False) as rec:
        m(x)
    a1 = rec.acts["conv1"]                                  # (batch, C, frames)
    series = a1.transpose(0, 1).reshape(a1.shape[1], -1)    # filter i's time series over the batch
    expected = topographic_loss(series, m.grids["conv1"]) + topographic_loss(rec.acts["conv2"].transpose(0, 1)
                                                                             .reshape(64, -1), m.grids["conv2"])
    loss = reg(rec.acts)
    torch.testing.assert_close(loss, expected)
    m.zero_grad(set_to_none=True)
    loss.backward()
    assert m.weight("conv1").grad.abs().sum() > 0           # flows back through the activations
    assert set(reg.similarities(rec.acts)) == {"conv1", "conv2"}
    with pytest.raises(ValueError, match="needs loss"):
        reg()
    with pytest.raises(ValueError, match="takes no activations"):
        TopographicRegularizer(m, weight=1.0)(rec.acts)
    m.zero_grad(set_to_none=True)


# -- permutation null ------------------------------------------------------------------------


def smooth_map_weights(rows=8, cols=8, dim=6, seed=0) -> torch.Tensor:
    """Filters that vary smoothly over the grid: strongly topographic."""
    g = torch.Generator().manual_seed(seed)
    basis = torch.randn(4, dim, generator=g, dtype=torch.float64)
    r, c = torch.meshgrid(torch.arange(rows), torch.arange(cols), indexing="ij")
    t = torch.stack([torch.cos(r / 3.0), torch.sin(r / 3.0), torch.cos(c / 3.0), torch.sin(c / 3.0)], -1)
    return (t.reshape(-1, 4).double() @ basis)


def test_permutation_null_detects_topography():
    w = smooth_map_weights()
    res = permutation_null(w, (8, 8), n_permutations=200, seed=0)
    assert res["observed"] == pytest.approx(neighborhood_similarity(w, (8, 8)).mean().item(), abs=1e-9)
    assert res["n_permutations"] == 200
    assert res["observed"] > res["mean"] + 5 * res["sd"]
    assert res["z"] == pytest.approx((res["observed"] - res["mean"]) / res["sd"])
    assert res["p"] == pytest.approx(1 / 201)
    # the null is S̄ of the same filters shuffled: check one permutation by hand
    perm = torch.rand(100, 64, generator=torch.Generator().manual_seed(0)).argsort(1)
    manual = torch.stack([neighborhood_similarity(w[p], (8, 8)).mean() for p in perm])
    res100 = permutation_null(w, (8, 8), n_permutations=100, seed=0)
    assert res100["mean"] == pytest.approx(manual.mean().item(), abs=1e-9)
    assert res100["sd"] == pytest.approx(manual.std().item(), abs=1e-9)


def test_permutation_null_random_and_degenerate():
    w = torch.randn(64, 6, generator=torch.Generator().manual_seed(3))
    res = permutation_null(w, (8, 8), n_permutations=300, seed=1)
    assert permutation_null(w, (8, 8), n_permutations=300, seed=1) == res     # seeded, deterministic
    assert abs(res["z"]) < 4 and res["p"] > 0.01
    same = torch.ones(16, 3)
    deg = permutation_null(same, (4, 4))
    assert deg["observed"] == pytest.approx(1.0) and deg["sd"] == pytest.approx(0.0, abs=1e-12)
    assert math.isnan(deg["z"]) and deg["p"] == 1.0
    with pytest.raises(ValueError, match=">= 100.*50"):
        permutation_null(w, (8, 8), n_permutations=50)


def test_regularizer_statistics(tiny_model):
    reg = TopographicRegularizer(tiny_model, weight=0.1)
    stats = reg.statistics(n_permutations=100)
    assert set(stats) == set(tiny_model.layer_names)
    sims = reg.similarities()
    for n, s in stats.items():
        assert s["observed"] == pytest.approx(sims[n], abs=1e-5)


# -- torch.compile -----------------------------------------------------------------------------


def test_custom_op_registrations_are_consistent():
    from toposcope import _stencil

    x = torch.randn(12, 5, dtype=torch.float64, requires_grad=True)
    torch.library.opcheck(_stencil._similarity_op, (x, 4, 3, 3, "wrap", 1e-12))


def test_compiles_as_one_graph():
    w = torch.randn(12, 2, 3, requires_grad=True)
    fn = torch.compile(lambda x: topographic_loss(x, (4, 3), 3, "clip", "mean"), backend="aot_eager",
                       fullgraph=True)
    loss = fn(w)
    loss.backward()
    ref = w.detach().clone().requires_grad_(True)
    expected = topographic_loss(ref, (4, 3), 3, "clip", "mean")
    expected.backward()
    torch.testing.assert_close(loss, expected)
    torch.testing.assert_close(w.grad, ref.grad)
