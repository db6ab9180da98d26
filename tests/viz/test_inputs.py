"""Plots of inputs and filters (toposcope.viz.inputs): arrays in (with an optional ax or fig), artists out,
and the pixels drawn are the arrays given (orientation, layout, scaling)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.image import AxesImage  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402

from toposcope.viz.inputs import (plot_exemplars, plot_filter_neighborhood, plot_region_inputs,  # noqa: E402
                                  plot_similarity_map, plot_spectrogram)


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def test_spectrogram_on_a_given_ax_and_on_its_own():
    spec = np.arange(12, dtype=float).reshape(3, 4)  # (n_mels, T)
    fig, ax = plt.subplots()
    im = plot_spectrogram(spec, ax, frame_seconds=0.01, freqs=[100.0, 900.0, 2500.0], title="x")
    assert isinstance(im, AxesImage) and im.axes is ax and len(fig.axes) == 1
    assert np.array_equal(im.get_array(), spec) and im.origin == "lower"  # low mel bins at the bottom
    assert im.get_extent() == pytest.approx([-0.005, 0.035, -0.5, 2.5])  # 4 frames of 10 ms
    assert ax.get_xlabel() == "time (s)" and ax.get_ylabel() == "mel band (Hz)" and ax.get_title() == "x"
    assert [t.get_text() for t in ax.get_yticklabels()] == ["100", "900", "2.5k"]
    own = plot_spectrogram(spec)  # no ax: makes its own figure
    assert own.axes is not ax and own.axes.get_xlabel() == "frame" and own.axes.get_ylabel() == "mel bin"
    with pytest.raises(ValueError, match=r"\(n_mels, frames\), got shape \(4,\)"):
        plot_spectrogram(np.zeros(4))


def test_region_inputs_sit_in_their_region_positions_on_one_colour_scale():
    singles = [np.full((2, 3), float(v)) for v in (1, 2, 3)]
    res = plot_region_inputs(singles, [(0, 0), (0, 1), (1, 1)], joint=np.full((2, 3), 5.0), titles=["a", "b", "c"])
    assert set(res["axes"]) == {(0, 0), (0, 1), (1, 1)} and res["joint_ax"] is not None
    assert len(res["images"]) == 4 and all(isinstance(i, AxesImage) for i in res["images"])
    for (r, c), v in zip([(0, 0), (0, 1), (1, 1)], (1, 2, 3)):
        assert np.all(res["axes"][(r, c)].images[0].get_array() == v)
    assert all(im.get_clim() == (1.0, 5.0) for im in res["images"])  # min/max over all inputs
    assert res["axes"][(0, 1)].get_title() == "b" and res["joint_ax"].get_title() == "joint"
    fig = plt.figure()
    res2 = plot_region_inputs(singles[:1], [(0, 0)], fig=fig, vmin=-1, vmax=1)
    assert res2["fig"] is fig and res2["joint_ax"] is None and res2["images"][0].get_clim() == (-1, 1)
    with pytest.raises(ValueError, match="3 inputs but 2 positions"):
        plot_region_inputs(singles, [(0, 0), (0, 1)])
    with pytest.raises(ValueError, match="distinct"):
        plot_region_inputs(singles[:2], [(0, 0), (0, 0)])
    with pytest.raises(ValueError, match="nothing to draw"):
        plot_region_inputs([], [])


def test_filter_neighbourhood_mosaic_places_each_filter_at_its_grid_cell():
    n, M, K = 2, 3, 2
    w = np.zeros((n, n, M, K))
    w[0, 1, 0, 1] = -2.0  # filter at grid (0, 1): lowest mel bin, second kernel tap
    w[0, 1, 2, 0] = 1.0
    w[1, 0] = 0.5
    fig, ax = plt.subplots()
    res = plot_filter_neighborhood(w, ax, indices=np.array([[10, 11], [26, 27]]), gap=1)
    assert res["ax"] is ax and isinstance(res["image"], AxesImage)
    mosaic = np.asarray(res["image"].get_array().filled(np.nan))
    assert mosaic.shape == (n * M + 1, n * K + 1)
    tile01 = mosaic[0:M, K + 1:2 * K + 1]  # grid row 0 at the top, column 1 on the right
    assert tile01[M - 1, 1] == -1.0 and tile01[0, 0] == 0.5  # per-filter scale: divided by max |w| = 2
    assert np.all(mosaic[M + 1:, 0:K] == 1.0)  # filter (1, 0), scaled to its own max
    assert np.isnan(mosaic[M, 0]) and np.isnan(mosaic[0, K])  # the gaps
    assert res["image"].get_clim() == (-1.0, 1.0)
    assert sorted(t.get_text() for t in ax.texts) == ["10", "11", "26", "27"]
    raw = plot_filter_neighborhood(w, per_filter_scale=False)
    assert raw["image"].get_clim() == (-2.0, 2.0) and raw["ax"] is not ax
    with pytest.raises(ValueError, match=r"\(n, n, n_mels, kernel\)"):
        plot_filter_neighborhood(np.zeros((2, 3, 4)))


def test_similarity_map_with_boxes():
    s = np.linspace(-1, 1, 12).reshape(3, 4)
    fig, ax = plt.subplots()
    res = plot_similarity_map(s, ax, boxes=[(0, 1, 1, 3)], vmin=-1, vmax=1, title="conv1")
    assert res["ax"] is ax and np.array_equal(res["image"].get_array(), s)
    (box,) = res["boxes"]
    assert isinstance(box, Rectangle) and box in ax.patches
    assert (box.get_x(), box.get_y(), box.get_width(), box.get_height()) == (0.5, -0.5, 3, 2)
    assert res["colorbar"] is not None and res["image"].get_clim() == (-1, 1)
    assert plot_similarity_map(s, colorbar=False)["colorbar"] is None
    with pytest.raises(ValueError, match=r"\(rows, cols\)"):
        plot_similarity_map(np.zeros(3))


def test_exemplars_grid_and_mean_panel():
    crops = np.stack([np.full((2, 3), float(i)) for i in range(5)])  # (k, n_mels, F)
    res = plot_exemplars(crops, [f"u{i}" for i in range(5)], mean=crops.mean(0), cols=3, suptitle="t")
    assert len(res["axes"]) == 5 and res["mean_ax"] is not None and len(res["images"]) == 6
    assert [ax.get_title() for ax in res["axes"]] == [f"u{i}" for i in range(5)]
    assert np.all(res["images"][0].get_array() == 2.0)  # the mean panel comes first
    assert all(im.get_clim() == (0.0, 4.0) for im in res["images"][1:])  # one colour scale for the crops
    fig = plt.figure()
    assert plot_exemplars(crops[:1], fig=fig)["fig"] is fig
    with pytest.raises(ValueError, match="5 crops but 2 labels"):
        plot_exemplars(crops, ["a", "b"])
    with pytest.raises(ValueError, match="k >= 1"):
        plot_exemplars(np.zeros((0, 2, 3)))
