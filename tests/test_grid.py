"""Filter grids (docs/method.md § Features and model): most square factorisation, row-major positions."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from toposcope.grid import Grid, as_grid


@pytest.mark.parametrize("channels, shape", [(256, (16, 16)), (512, (32, 16)), (2048, (64, 32)), (12, (4, 3)),
                                             (7, (7, 1)), (1, (1, 1)), (96, (12, 8)), (29 * 31, (31, 29))])
def test_for_channels_most_square(channels, shape):
    g = Grid.for_channels(channels)
    assert g.shape == shape and g.size == channels and g.rows >= g.cols


def test_positions_are_row_major():
    g = Grid(3, 4)
    assert g.position(0) == (0, 0) and g.position(3) == (0, 3) and g.position(4) == (1, 0)
    assert g.position(11) == (2, 3)
    assert all(g.index(*g.position(i)) == i for i in range(12))
    with pytest.raises(ValueError, match="outside a 3x4 grid"):
        g.position(12)
    with pytest.raises(ValueError, match=r"position \(3, 0\) outside a 3x4 grid"):
        g.index(3, 0)


def test_to_map_numpy_and_torch():
    g = Grid(2, 3)
    v = np.arange(6)
    m = g.to_map(v)
    assert m.tolist() == [[0, 1, 2], [3, 4, 5]]
    t = g.to_map(torch.arange(12).reshape(2, 6))
    assert t.shape == (2, 2, 3) and t[1, 1, 0].item() == 9
    with pytest.raises(ValueError, match="expected 6 values for a 2x3 grid, got 5"):
        g.to_map(np.zeros(5))


def test_validation_and_as_grid():
    for bad in (0, -1, 2.0, True, "3"):
        with pytest.raises(ValueError, match="Grid.rows must be a positive integer"):
            Grid(bad, 2)
    with pytest.raises(ValueError, match="positive integer"):
        Grid.for_channels(0)
    assert as_grid((4, 2)) == Grid(4, 2) and as_grid([4, 2]) == Grid(4, 2)
    assert as_grid(torch.Size([3, 3])) == Grid(3, 3)
    g = Grid(16, 16)
    assert as_grid(g) is g and str(g) == "16x16"
    with pytest.raises(ValueError, match=r"grid must be \(rows, cols\)"):
        as_grid((1, 2, 3))
    with pytest.raises(ValueError, match="toposcope.Grid or a"):
        as_grid(16)
    g.check(256)
    with pytest.raises(ValueError, match="layer has 255 filters but grid 16x16 holds 256"):
        g.check(255)


# -- neighbourhoods (one definition, used by the regularizer, Moran's I, smoothing and close-ups) --------
def test_window_offsets_and_adjacency():
    from toposcope.grid import ADJACENCY, adjacency_offsets, window_offsets

    dr, dc = window_offsets(3)
    assert list(zip(dr.tolist(), dc.tolist())) == [(-1, -1), (-1, 0), (-1, 1), (0, -1), (0, 1), (1, -1), (1, 0), (1, 1)]
    assert len(window_offsets(5)[0]) == 24 and len(window_offsets(1)[0]) == 0
    assert ADJACENCY["queen"] == tuple(zip(dr.tolist(), dc.tolist()))
    assert sorted(adjacency_offsets("rook")) == [(-1, 0), (0, -1), (0, 1), (1, 0)]
    with pytest.raises(ValueError, match="adjacency must be one of"):
        adjacency_offsets("king")
    with pytest.raises(ValueError, match="odd"):
        window_offsets(4)


def test_neighbour_table_weights_clip_and_wrap():
    from toposcope.grid import neighbour_table

    p, q, w = neighbour_table(4, 4, 3, "clip")
    inner = p == 5  # (1, 1): 8 neighbours, 1/d normalised
    assert sorted(np.round(w[inner], 4).tolist()) == [0.1036] * 4 + [0.1464] * 4
    corner = p == 0  # 3 neighbours: 1, 1, 1/sqrt(2)
    s = 2 + 1 / np.sqrt(2)
    assert sorted(w[corner].tolist()) == pytest.approx(sorted([1 / s, 1 / s, 1 / np.sqrt(2) / s]))
    assert np.bincount(p, weights=w).tolist() == pytest.approx([1.0] * 16)
    pw, qw, ww = neighbour_table(4, 4, 3, "wrap")
    assert np.bincount(pw).tolist() == [8] * 16 and set(qw[pw == 0].tolist()) == {1, 3, 4, 12, 5, 7, 13, 15}
    with pytest.raises(ValueError, match="boundary"):
        neighbour_table(4, 4, 3, "reflect")


def test_window_bounds_and_mean():
    from toposcope.grid import window_bounds, window_mean

    g = Grid(5, 4)
    assert window_bounds(g, (0, 0), 3) == (0, 1, 0, 1)             # clipped
    assert window_bounds(g, (0, 0), 3, fit=True) == (0, 2, 0, 2)   # shifted inwards
    assert window_bounds(g, (4, 3), 3, fit=True) == (2, 4, 1, 3)
    assert window_bounds(g, (2, 1), 3) == (1, 3, 0, 2)
    with pytest.raises(ValueError, match="does not fit"):
        window_bounds(g, (0, 0), 5, fit=True)
    with pytest.raises(ValueError, match="outside"):
        window_bounds(g, (5, 0), 3)
    m = np.arange(9.0).reshape(3, 3)
    assert window_mean(m)[0, 0] == pytest.approx((0 + 1 + 3 + 4) / 4) and window_mean(m)[1, 1] == 4.0
    assert window_mean(m, 1).tolist() == m.tolist()
