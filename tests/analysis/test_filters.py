"""Filter close-ups and neighbour-similarity maps (toposcope.filters, Fig. 1A) and the input plots."""

from __future__ import annotations

import json
import math

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from toposcope.filters import (block_bounds, block_means, choose_neighborhoods, filter_block,  # noqa: E402
                               neighborhood_block, similarity_map)
from toposcope.grid import Grid  # noqa: E402
from toposcope.plot_inputs import (plot_filter_neighborhood, plot_region_inputs, plot_similarity_map,  # noqa: E402
                                   plot_spectrogram)


def test_blocks_hand_computed():
    g = Grid(5, 4)
    assert neighborhood_block(g, (2, 1)).tolist() == [[4, 5, 6], [8, 9, 10], [12, 13, 14]]
    # at the border the block shifts inwards and stays 3x3
    assert block_bounds(g, (0, 3)) == (0, 2, 1, 3)
    assert neighborhood_block(g, (4, 0)).tolist() == [[8, 9, 10], [12, 13, 14], [16, 17, 18]]
    with pytest.raises(ValueError, match="does not fit"):
        block_bounds(Grid(2, 8), (1, 1))
    with pytest.raises(ValueError, match="outside"):
        block_bounds(g, (5, 0))
    w = torch.arange(20 * 2 * 3, dtype=torch.float32).reshape(20, 2, 3)
    fb = filter_block(w, neighborhood_block(g, (2, 1)))
    assert fb.shape == (3, 3, 2, 3) and np.array_equal(fb[1, 1], w[9].numpy())


def test_similarity_map_hand_computed():
    # 3x3 grid of 2-d filters: centre e0, edge neighbours e0, diagonal neighbours -e0:
    # S_centre = 4 * w_edge - 4 * w_diag with w_edge = 1 / (4 + 4/sqrt 2), w_diag = w_edge / sqrt 2
    e0 = torch.tensor([1.0, 0.0])
    w = torch.stack([-e0, e0, -e0, e0, e0, e0, -e0, e0, -e0]).reshape(9, 2, 1)
    s = similarity_map(w, (3, 3))
    w_edge = 1 / (4 + 4 / math.sqrt(2))
    assert s.shape == (3, 3)
    assert s[1, 1] == pytest.approx(4 * w_edge - 4 * w_edge / math.sqrt(2), abs=1e-5)  # 0.1716
    assert s[0, 0] == pytest.approx(-1.0, abs=1e-5)  # corner: its 3 neighbours are e0, e0, e0 vs -e0
    ones = torch.ones(16, 3, 2)
    assert np.allclose(similarity_map(ones, (4, 4)), 1.0, atol=1e-6)


def test_choose_neighborhoods_top_and_contrast():
    s = np.zeros((8, 8))
    s[5:8, 0:3] = 1.0  # a coherent block at the bottom left
    s[0:3, 5:8] = 0.5
    s[3, 3] = -3.0  # an incoherent spot
    assert block_means(s, 3).shape == (6, 6)
    assert choose_neighborhoods(s, 3, 2) == [(6, 1), (1, 6)]
    top, low = choose_neighborhoods(s, 3, 2, mode="contrast")
    assert top == (6, 1) and abs(low[0] - 3) <= 1 and abs(low[1] - 3) <= 1
    many = choose_neighborhoods(s, 3, 10)
    boxes = [block_bounds(Grid(8, 8), c) for c in many]
    cells = [(r, c) for r0, r1, c0, c1 in boxes for r in range(r0, r1 + 1) for c in range(c0, c1 + 1)]
    assert len(cells) == len(set(cells))  # never overlapping


def test_plot_functions_return_artists():
    rng = np.random.default_rng(0)
    im = plot_spectrogram(rng.normal(size=(16, 30)), frame_seconds=0.01, freqs=np.linspace(50, 7000, 16))
    assert im.get_array().shape == (16, 30) and im.axes.get_xlabel() == "time (s)"
    plt.close(im.axes.figure)
    singles = [rng.normal(size=(16, 30)) for _ in range(6)]
    pos = [(r, c) for r in range(2) for c in range(3)]  # a region clipped at the grid border: 2x3
    art = plot_region_inputs(singles, pos, rng.normal(size=(16, 30)), frame_seconds=0.01)
    assert len(art["images"]) == 7 and set(art["axes"]) == set(pos) and art["joint_ax"] is not None
    lims = {img.get_clim() for img in art["images"]}
    assert len(lims) == 1  # one colour scale for every panel
    plt.close(art["fig"])
    nb = plot_filter_neighborhood(rng.normal(size=(3, 3, 16, 5)), indices=np.arange(9).reshape(3, 3))
    arr = np.ma.getdata(nb["image"].get_array())
    assert arr.shape == (3 * 16 + 2 * 1, 3 * 5 + 2) and np.isnan(arr).sum() > 0  # tiles separated by gaps
    assert np.nanmax(np.abs(arr)) == pytest.approx(1.0)  # per-filter scaling
    plt.close(nb["ax"].figure)
    sm = plot_similarity_map(rng.uniform(size=(8, 8)), boxes=[(0, 2, 0, 2)])
    assert len(sm["boxes"]) == 1 and sm["image"].get_array().shape == (8, 8)
    plt.close(sm["ax"].figure)
    with pytest.raises(ValueError, match="positions"):
        plot_region_inputs(singles, pos[:2])


def test_filters_cli_on_trained_run(tiny_run, tmp_path):
    from toposcope.filters import write_filters

    s = write_filters(tiny_run, out=tmp_path / "filters")
    assert s["layer"] == "conv1" and len(s["neighborhoods"]) == 2
    for name in s["files"]:
        assert (tmp_path / "filters" / name).stat().st_size > 1000
    sims = np.load(tmp_path / "filters" / "similarity.npz")
    assert set(sims.files) == {"conv1", "conv2", "conv3"} and sims["conv1"].shape == (8, 8)
    assert s["mean_similarity"]["conv1"] == pytest.approx(float(sims["conv1"].mean()))
    h = s["neighborhoods"][0]
    r0, r1, c0, c1 = h["box"]
    assert h["mean_similarity"] == pytest.approx(float(sims["conv1"][r0:r1 + 1, c0:c1 + 1].mean()))
    assert json.loads((tmp_path / "filters" / "summary.json").read_text())["n"] == 3
