"""Plotting: arrays in, artists out; colour scale centred at 0; region outline on the right cells."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from toposcope.maps import find_region, smooth_map  # noqa: E402
from toposcope.plotting import plot_map_pair, plot_overview, plot_topomap  # noqa: E402
from toposcope.viz.maps import update_map_pair, update_topomap  # noqa: E402


def test_plot_topomap_artists_and_scale():
    v = np.array([[0.0, -2.0, 1.0], [0.5, 0.0, 0.0]])
    fig, ax = plt.subplots()
    art = plot_topomap(v, ax=ax, title="x")
    im = art["image"]
    assert im.axes is ax and im.get_clim() == (-2.0, 2.0)  # symmetric around 0 at max |v|
    assert im.get_cmap().name == "RdBu_r" and art["colorbar"] is not None and art["region"] is None
    np.testing.assert_array_equal(im.get_array(), v)  # drawn as given: nothing computed
    assert art["title"].get_text() == "x"
    art2 = plot_topomap(v, ax=ax, vmax=5.0, interpolate=True, colorbar=False)
    assert art2["image"].get_clim() == (-5.0, 5.0) and art2["image"].get_interpolation() == "bicubic"
    plt.close(fig)
    with pytest.raises(ValueError):
        plot_topomap(np.zeros(4))


def test_region_outline_covers_region_cells():
    m = np.zeros((6, 5))
    m[0, 0] = 3.0
    reg = find_region(m)  # corner: clipped 2x2 block
    art = plot_topomap(m, region=reg)
    rect = art["region"]
    assert rect.get_xy() == (-0.5, -0.5) and rect.get_width() == 2 and rect.get_height() == 2
    plt.close(art["image"].figure)


def test_pair_and_overview(tmp_path):
    rng = np.random.default_rng(0)
    maps = rng.normal(size=(5, 8, 4))
    sm = smooth_map(maps)
    fig, art = plot_map_pair(maps[0], sm[0], find_region(maps[0]), title="conv1 /aa/")
    big = float(np.abs(maps[0]).max())
    assert art["on_grid"]["image"].get_clim() == (-big, big)  # each panel: its own symmetric scale
    assert art["smoothed"]["image"].get_clim() == (-float(np.abs(sm[0]).max()), float(np.abs(sm[0]).max()))
    assert art["on_grid"]["region"] is not None and art["suptitle"].get_text() == "conv1 /aa/"
    fig.savefig(tmp_path / "pair.png")
    plt.close(fig)
    fig, art = plot_overview(sm, ["/aa/", "/b/", "/s/", "/t/", "/sil/"], regions=[find_region(s, smoothed=True) for s in sm])
    assert len(art["panels"]) == 5 and art["colorbar"] is not None
    assert [p["title"].get_text() for p in art["panels"]] == ["/aa/", "/b/", "/s/", "/t/", "/sil/"]
    fig.savefig(tmp_path / "overview.png")
    plt.close(fig)
    with pytest.raises(ValueError, match="groups"):
        plot_overview(sm, ["aa"])


def _pixels(fig) -> np.ndarray:
    import io

    from PIL import Image

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=40)
    return np.asarray(Image.open(buf))


def test_update_map_pair_draws_what_a_fresh_figure_draws():
    """One figure redrawn for several groups (what write_maps does) gives, pixel for pixel, the PNG that a
    fresh plot_map_pair gives: values, colour range (the colour bars' ticks too), region box and titles."""
    rng = np.random.default_rng(1)
    maps = rng.normal(size=(3, 8, 4)) * np.array([1.0, 40.0, 0.01])[:, None, None]  # very different ranges
    maps[1, 0, 0] = 200.0  # region in a corner: a clipped box
    sm = smooth_map(maps)
    fig, art = plot_map_pair(maps[0], sm[0], find_region(maps[0]), title="t0")
    for i in (1, 2, 0):
        fresh, _ = plot_map_pair(maps[i], sm[i], find_region(maps[i]), title=f"t{i}")
        update_map_pair(fig, art, maps[i], sm[i], find_region(maps[i]), title=f"t{i}")
        np.testing.assert_array_equal(_pixels(fig), _pixels(fresh))
        plt.close(fresh)
    assert art["on_grid"]["image"].get_clim() == (-float(np.abs(maps[0]).max()), float(np.abs(maps[0]).max()))
    plt.close(fig)


def test_update_topomap_region_and_shape():
    m = np.zeros((6, 5))
    m[5, 4] = 1.0
    art = plot_topomap(np.ones((6, 5)))
    assert art["region"] is None
    update_topomap(art, m, region=find_region(m), title="new")
    rect = art["region"]  # the outline appears where the new map's region is (clipped bottom-right 2x2)
    assert rect.get_xy() == (2.5, 3.5) and rect.get_width() == 2 and rect.get_height() == 2
    assert art["title"].get_text() == "new" and art["image"].get_clim() == (-1.0, 1.0)
    update_topomap(art, m, region=None)  # and goes again
    assert art["region"] is None and rect.axes is None
    with pytest.raises(ValueError, match="6, 5"):
        update_topomap(art, np.zeros((5, 6)))
    plt.close(art["image"].figure)
