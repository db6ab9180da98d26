"""Drawing topographic maps (docs/method.md § Maps and regions). Functions take arrays and an optional ``ax``, return the
artists they made, and compute nothing (MNE ``plot_topomap`` style): smoothing and region-finding
live in :mod:`toposcope.analysis.maps`.

Colours: a diverging map (``RdBu_r``) centred at 0 (``vmin = -vmax``), with a colour bar. The
EEG-style view (``interpolate=True``) is matplotlib's bicubic image interpolation of the same
cells; the region outline is drawn in grid coordinates, so it sits right in both views.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

__all__ = ["plot_topomap", "plot_region", "plot_map_pair", "plot_overview", "update_topomap", "update_map_pair", "CMAP"]

CMAP = "RdBu_r"


def _ax(ax):
    if ax is None:
        import matplotlib.pyplot as plt

        _, ax = plt.subplots(figsize=(4, 4))
    return ax


def plot_region(ax, region, *, color: str = "k", linewidth: float = 2.0):
    """Outline a region (``region.box = (r0, r1, c0, c1)``, inclusive cells) -> ``Rectangle``."""
    from matplotlib.patches import Rectangle

    r0, r1, c0, c1 = region.box
    patch = Rectangle((c0 - 0.5, r0 - 0.5), c1 - c0 + 1, r1 - r0 + 1, fill=False, edgecolor=color,
                      linewidth=linewidth)
    ax.add_patch(patch)
    return patch


def _vmax(v: np.ndarray, vmax: float | None) -> float:
    if vmax is None:
        vmax = float(np.nanmax(np.abs(v))) if v.size and np.isfinite(v).any() else 1.0
    return vmax or 1.0


def plot_topomap(values2d, ax=None, region=None, vmax: float | None = None, title: str | None = None,
                 interpolate: bool = False, colorbar: bool = True, cmap: str = CMAP, ticks: bool = True) -> dict:
    """Draw one ``(rows, cols)`` map. Returns ``{"image", "region", "colorbar", "title"}`` artists
    (``None`` where not drawn). ``vmax`` defaults to ``max |values|`` (colour range ``[-vmax, vmax]``)."""
    ax = _ax(ax)
    v = np.asarray(values2d, dtype=np.float64)
    if v.ndim != 2:
        raise ValueError(f"plot_topomap needs a (rows, cols) array, got shape {v.shape}")
    vmax = _vmax(v, vmax)
    im = ax.imshow(v, cmap=cmap, vmin=-vmax, vmax=vmax, origin="upper",
                   interpolation="bicubic" if interpolate else "nearest",
                   extent=(-0.5, v.shape[1] - 0.5, v.shape[0] - 0.5, -0.5))
    out = {"image": im, "region": None, "colorbar": None, "title": None}
    if region is not None:
        out["region"] = plot_region(ax, region)
    if colorbar:
        out["colorbar"] = ax.figure.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    if title:
        out["title"] = ax.set_title(title, fontsize=9)
    if ticks:
        ax.set_xlabel("grid column", fontsize=8)
        ax.set_ylabel("grid row", fontsize=8)
        ax.tick_params(labelsize=7)
    else:
        ax.set_xticks([])
        ax.set_yticks([])
    return out


def plot_map_pair(on_grid, smoothed, region=None, axes=None, vmax: float | None = None, title: str | None = None,
                  interpolate: bool = False, vmax_smoothed: float | None = None):
    """The seed's Fig. 1B top: "on grid" beside "smoothed", region outlined on both.

    ``axes``: two axes, or ``None`` for a new figure. Returns ``(figure, {"on_grid": ..., "smoothed": ...,
    "suptitle": ...})`` with the :func:`plot_topomap` artists of each panel. Each panel has its own
    symmetric colour scale and colour bar (``vmax`` default ``max |on_grid|``, ``vmax_smoothed`` default
    ``max |smoothed|``): smoothing shrinks the values, and a shared scale would wash the smoothed map out.
    """
    if axes is None:
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(1, 2, figsize=(9.6, 4))  # fixed layout: much faster to save than constrained
        fig.subplots_adjust(left=0.06, right=0.91, bottom=0.12, top=0.84, wspace=0.42)
    else:
        fig = axes[0].figure
    a = plot_topomap(on_grid, axes[0], region=region, vmax=vmax, title="on grid", colorbar=True)
    b = plot_topomap(smoothed, axes[1], region=region, vmax=vmax_smoothed, interpolate=interpolate,
                     title="smoothed (3x3 mean)" + (", interpolated" if interpolate else ""), colorbar=True)
    sup = fig.suptitle(title, fontsize=10) if title else None
    return fig, {"on_grid": a, "smoothed": b, "suptitle": sup}


def update_topomap(artists: dict, values2d, region=None, vmax: float | None = None, title: str | None = None) -> dict:
    """Show ``values2d`` in a panel :func:`plot_topomap` drew (same shape; ``artists`` its return value), as
    :func:`plot_topomap` would draw it afresh: new values, colour range (``vmax`` as there), region outline and
    title. Redrawing one figure for many maps saves building its axes, ticks and colour bar each time.
    Returns ``artists``, updated in place."""
    im = artists["image"]
    v = np.asarray(values2d, dtype=np.float64)
    if v.shape != im.get_array().shape:
        raise ValueError(f"update_topomap needs a {im.get_array().shape} array, got shape {v.shape}")
    vmax = _vmax(v, vmax)
    im.set_data(v)
    im.set_clim(-vmax, vmax)  # the colour bar follows its image's norm
    patch = artists.get("region")
    if region is None:
        if patch is not None:
            patch.remove()
            artists["region"] = None
    elif patch is None:
        artists["region"] = plot_region(im.axes, region)
    else:
        r0, r1, c0, c1 = region.box
        patch.set_bounds(c0 - 0.5, r0 - 0.5, c1 - c0 + 1, r1 - r0 + 1)
    if title is not None:
        if artists.get("title") is None:
            artists["title"] = im.axes.set_title(title, fontsize=9)
        else:
            artists["title"].set_text(title)
    return artists


def update_map_pair(fig, artists: dict, on_grid, smoothed, region=None, vmax: float | None = None,
                    title: str | None = None, vmax_smoothed: float | None = None):
    """Redraw a figure of :func:`plot_map_pair` (``fig, artists`` its return value) with another group's maps,
    so that saving it gives the picture :func:`plot_map_pair` would draw afresh. Returns ``(fig, artists)``."""
    update_topomap(artists["on_grid"], on_grid, region=region, vmax=vmax)
    update_topomap(artists["smoothed"], smoothed, region=region, vmax=vmax_smoothed)
    if title is not None:
        if artists.get("suptitle") is None:
            artists["suptitle"] = fig.suptitle(title, fontsize=10)
        else:
            artists["suptitle"].set_text(title)
    return fig, artists


def plot_overview(maps, groups: Sequence[str], regions: Sequence | None = None, fig=None, vmax: float | None = None,
                  ncols: int | None = None, title: str | None = None, interpolate: bool = False):
    """Small multiples: one map per group, titled with ``groups`` as given (e.g. ``"/aa/"``).
    ``maps``: ``(G, rows, cols)``. Returns ``(figure, artists)``
    with ``artists = {"panels": [plot_topomap dicts], "colorbar": ..., "suptitle": ...}``."""
    import matplotlib.pyplot as plt

    maps = np.asarray(maps, dtype=np.float64)
    if maps.ndim != 3 or maps.shape[0] != len(groups):
        raise ValueError(f"plot_overview needs (groups, rows, cols) maps for {len(groups)} groups, got {maps.shape}")
    G, rows, cols = maps.shape
    ncols = ncols or max(1, math.ceil(math.sqrt(G * 1.3)))
    nrows = math.ceil(G / ncols)
    cell = 1.6
    aspect = rows / cols
    if fig is None:
        fig = plt.figure(figsize=(ncols * cell + 0.9, nrows * cell * aspect + 0.7), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False)
    if vmax is None:
        vmax = float(np.nanmax(np.abs(maps))) or 1.0
    panels = []
    for i, ax in enumerate(axes.flat):
        if i >= G:
            ax.set_axis_off()
            continue
        panels.append(plot_topomap(maps[i], ax, region=None if regions is None else regions[i], vmax=vmax,
                                   title=str(groups[i]), interpolate=interpolate, colorbar=False, ticks=False))
    cb = fig.colorbar(panels[0]["image"], ax=axes.ravel().tolist(), shrink=0.6) if panels else None
    sup = fig.suptitle(title, fontsize=11) if title else None
    return fig, {"panels": panels, "colorbar": cb, "suptitle": sup}
