"""Topographic maps of profiles: on grid, smoothed, most responsive region (SPEC §6, seed §3).

* on grid: ``values (C,)`` -> ``(rows, cols)`` with filter ``i`` at ``(i // cols, i % cols)``;
* smoothed (:func:`smooth_map`): non-strided ``3 x 3`` average pooling, same size; a border window
  averages only the cells that exist (a corner averages 4 cells, an edge cell 6);
* region (:func:`find_region`): the argmax of the smoothed map (ties: first in row-major order)
  and the ``3 x 3`` block of filters around it, clipped at the border.

:func:`write_maps` writes ``RUN/maps/<layer>/<group>.png`` (on grid beside smoothed, region
outlined), ``RUN/maps/<layer>/overview.png`` (all groups as small multiples) and
``RUN/maps/regions.json`` ``{layer: {group: {"center": [r, c], "filters": [...], "value": v}}}``.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .._util import progress_enabled, write_json_atomic
from ..grid import window_bounds, window_mean

__all__ = ["Region", "smooth_map", "find_region", "compute_regions", "write_maps", "safe_filename"]


@dataclass(frozen=True)
class Region:
    """Most responsive block: ``center (r, c)``, ``filters`` (row-major indices), smoothed ``value``,
    and its inclusive bounds ``box = (r0, r1, c0, c1)`` on the grid."""

    center: tuple[int, int]
    filters: tuple[int, ...]
    value: float
    box: tuple[int, int, int, int]

    def to_dict(self) -> dict:
        return {"center": [int(self.center[0]), int(self.center[1])], "filters": [int(i) for i in self.filters],
                "value": float(self.value)}


def smooth_map(map2d, size: int = 3) -> np.ndarray:
    """Non-strided ``size x size`` mean pooling of ``(..., rows, cols)``; same shape; border windows
    average only existing cells (sum of the cells in the window / number of them)."""
    m = np.asarray(map2d, dtype=np.float64)
    if m.ndim < 2:
        raise ValueError(f"smooth_map needs a (rows, cols) map, got shape {m.shape}")
    return window_mean(m, size)


def find_region(map2d, *, smoothed: bool = False, size: int = 3) -> Region:
    """Most responsive ``size x size`` region of an on-grid map (smoothed here), or of an already
    smoothed map (``smoothed=True``). ``map2d``: ``(rows, cols)``."""
    m = np.asarray(map2d, dtype=np.float64)
    if m.ndim != 2:
        raise ValueError(f"find_region needs one (rows, cols) map, got shape {m.shape}")
    if not np.isfinite(m).all():
        raise ValueError("find_region: the map holds NaN or infinite values")
    s = m if smoothed else smooth_map(m, size)
    rows, cols = s.shape
    r, c = np.unravel_index(int(np.argmax(s)), s.shape)
    r0, r1, c0, c1 = window_bounds((rows, cols), (int(r), int(c)), size)
    filters = tuple(int(i * cols + j) for i in range(r0, r1 + 1) for j in range(c0, c1 + 1))
    return Region(center=(int(r), int(c)), filters=filters, value=float(s[r, c]), box=(r0, r1, c0, c1))


def compute_regions(profiles) -> dict:
    """``{layer: {group: Region}}`` for every layer and group of a :class:`toposcope.analysis.profiles.Profiles`."""
    out = {}
    for name, lp in profiles.layers.items():
        maps = lp.maps()
        sm = smooth_map(maps)
        out[name] = {g: find_region(sm[i], smoothed=True) for i, g in enumerate(profiles.groups)}
    return out


def safe_filename(label: str) -> str:
    """A group label as a file name (labels are ARPAbet phones / graphemes; anything else is escaped)."""
    s = re.sub(r"[^A-Za-z0-9_.-]", lambda m: f"_{ord(m.group()):x}", str(label))
    return s if s and s not in (".", "..") else f"_{s}"


def write_maps(profiles, out_dir, *, interpolate: bool = False, plots: bool = True, overview: bool = True,
               dpi: int = 100, progress: bool = True) -> dict:
    """Write PNGs and ``regions.json`` under ``out_dir`` (usually ``RUN/maps``); returns the regions dict.

    Colour scales, always symmetric around 0: a group's PNG scales each panel to its own largest
    ``|value|`` (to show that group's structure); the overview shares one scale across the layer's
    groups (to compare groups).
    """
    from tqdm.auto import tqdm

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    regions = compute_regions(profiles)
    if plots:
        import matplotlib

        if not os.environ.get("MPLBACKEND"):
            matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        from ..viz.maps import plot_map_pair, plot_overview

        def label(g: str) -> str:  # /phone/, 'grapheme'
            return f"/{g}/" if profiles.grouping == "phone" else f"'{g}'"

        show = progress_enabled(progress)
        total = len(profiles.layers) * len(profiles.groups)
        bar = tqdm(total=total, desc="maps", unit="map", disable=not show, leave=False)
        for name, lp in profiles.layers.items():
            d = out_dir / name
            d.mkdir(parents=True, exist_ok=True)
            maps = lp.maps()
            sm = smooth_map(maps)
            for i, g in enumerate(profiles.groups):
                fig, _ = plot_map_pair(maps[i], sm[i], regions[name][g], interpolate=interpolate,
                                       title=f"{name} · {label(g)} · {profiles.method} (n={int(lp.counts[i])})")
                fig.savefig(d / f"{safe_filename(g)}.png", dpi=dpi)
                plt.close(fig)
                bar.update()
            if overview:
                fig, _ = plot_overview(sm, [label(g) for g in profiles.groups], regions=[regions[name][g] for g in profiles.groups],
                                       vmax=float(np.abs(sm).max()) or 1.0, interpolate=interpolate,
                                       title=f"{name}: smoothed {profiles.method} maps, {lp.grid} grid")
                fig.savefig(d / "overview.png", dpi=dpi)
                plt.close(fig)
        bar.close()
    data = {layer: {g: r.to_dict() for g, r in rs.items()} for layer, rs in regions.items()}
    write_json_atomic(out_dir / "regions.json", data)
    return regions
