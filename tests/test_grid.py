"""Filter grids (SPEC §3): most square factorisation, row-major positions."""

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
