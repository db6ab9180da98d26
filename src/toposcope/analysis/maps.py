"""Topographic maps of profiles: on grid, smoothed, most responsive region (docs/method.md § Maps and regions, seed §3).

* on grid: ``values (C,)`` -> ``(rows, cols)`` with filter ``i`` at ``(i // cols, i % cols)``;
* smoothed (:func:`smooth_map`): non-strided ``3 x 3`` average pooling, same size; a border window
  averages only the cells that exist (a corner averages 4 cells, an edge cell 6);
* region (:func:`find_region`): the argmax of the smoothed map (ties: first in row-major order)
  and the ``3 x 3`` block of filters around it, clipped at the border.

:func:`write_maps` writes ``RUN/maps/<layer>/<group>.png`` (on grid beside smoothed, region
outlined), ``RUN/maps/<layer>/overview.png`` (all groups as small multiples) and
``RUN/maps/regions.json`` ``{layer: {group: {"center": [r, c], "filters": [...], "value": v}}}``.

:func:`maps_run` is the library entry point of ``toposcope maps``: maps, regions and the statistics
(:func:`toposcope.analysis.stats.compute_stats`, ``docs/statistics.md``) of one run, optionally under a
post-hoc layout (``docs/method.md`` § Layouts), under the run lock.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .._util import progress_enabled, write_json_atomic
from ..grid import window_bounds, window_mean

__all__ = ["Region", "smooth_map", "find_region", "compute_regions", "write_maps", "safe_filename", "maps_run",
           "maps_dir", "MapsError", "DEFAULT_PROFILE"]

#: The profile ``maps`` reads by default (its outputs go to ``RUN/maps``).
DEFAULT_PROFILE = "gradnap-phone"


class MapsError(ValueError):
    """``maps`` cannot run as asked (missing profile, a layout judged on its fitting split, ...)."""


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
               dpi: int = 100, progress: bool = True, caption: str = "", jobs: int | None = None) -> dict:
    """Write PNGs and ``regions.json`` under ``out_dir`` (usually ``RUN/maps``); returns the regions dict.

    Colour scales, always symmetric around 0: a group's PNG scales each panel to its own largest
    ``|value|`` (to show that group's structure); the overview shares one scale across the layer's
    groups (to compare groups). The layers are drawn in ``jobs`` forked processes (default: the usable
    cores); each redraws one figure for all its groups (:func:`toposcope.viz.maps.update_map_pair`, the same
    pixels as a fresh figure). The files do not depend on ``jobs``.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    regions = compute_regions(profiles)
    if plots:
        _plot_layers(profiles, regions, out_dir, interpolate=interpolate, overview=overview, dpi=dpi,
                     progress=progress, caption=caption, jobs=jobs)
    data = {layer: {g: r.to_dict() for g, r in rs.items()} for layer, rs in regions.items()}
    write_json_atomic(out_dir / "regions.json", data)
    return regions


def _plot_layers(profiles, regions: dict, out_dir: Path, *, interpolate: bool, overview: bool, dpi: int,
                 progress: bool, caption: str, jobs: int | None) -> None:
    """One :func:`_plot_layer` task per layer, in ``jobs`` forked processes (in this one when 1)."""
    import multiprocessing as mp

    from .._util import progress as progress_bar
    from .._util import usable_cores

    def label(g: str) -> str:  # /phone/, 'grapheme'
        return f"/{g}/" if profiles.grouping == "phone" else f"'{g}'"

    tasks = []
    for name, lp in profiles.layers.items():
        maps = lp.maps()
        tasks.append(dict(
            folder=out_dir / name, maps=maps, smoothed=smooth_map(maps),
            regions=[regions[name][g] for g in profiles.groups],
            files=[f"{safe_filename(g)}.png" for g in profiles.groups], labels=[label(g) for g in profiles.groups],
            titles=[f"{name} · {label(g)} · {profiles.method} (n={int(lp.counts[i])}){caption}"
                    for i, g in enumerate(profiles.groups)],
            overview=f"{name}: smoothed {profiles.method} maps, {lp.grid} grid{caption}" if overview else None,
            interpolate=interpolate, dpi=dpi))
    jobs = min(len(tasks), usable_cores() if jobs is None else int(jobs))
    bar = progress_bar(total=sum(len(t["files"]) for t in tasks), enabled=progress, desc="maps",
                       unit="map")
    try:
        if jobs <= 1 or "fork" not in mp.get_all_start_methods():
            for t in tasks:
                bar.update(_plot_layer(t))
        else:
            with mp.get_context("fork").Pool(jobs) as pool:
                for n in pool.imap_unordered(_plot_layer, tasks):
                    bar.update(n)
    finally:
        bar.close()


def _plot_layer(task: dict) -> int:
    """Draw one layer's map pairs (one figure, redrawn per group) and its overview; returns the maps drawn."""
    import matplotlib

    if not os.environ.get("MPLBACKEND"):
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..viz.maps import plot_map_pair, plot_overview, update_map_pair

    d: Path = task["folder"]
    d.mkdir(parents=True, exist_ok=True)
    maps, sm, regions = task["maps"], task["smoothed"], task["regions"]
    fig = art = None
    try:
        for i, (file, title) in enumerate(zip(task["files"], task["titles"])):
            if fig is None:
                fig, art = plot_map_pair(maps[i], sm[i], regions[i], interpolate=task["interpolate"], title=title)
            else:
                update_map_pair(fig, art, maps[i], sm[i], regions[i], title=title)
            fig.savefig(d / file, dpi=task["dpi"])
    finally:
        if fig is not None:
            plt.close(fig)
    if task["overview"] is not None:
        fig, _ = plot_overview(sm, task["labels"], regions=regions, vmax=float(np.abs(sm).max()) or 1.0,
                               interpolate=task["interpolate"], title=task["overview"])
        try:
            fig.savefig(d / "overview.png", dpi=task["dpi"])
        finally:
            plt.close(fig)
    return len(task["files"])


def maps_dir(run_dir, profile: str = DEFAULT_PROFILE, layout: str | None = None) -> Path:
    """``RUN/maps`` (default profile), ``RUN/maps-<profile>``, and ``-<layout>`` appended under a layout
    (``RUN/maps-<layout>`` for the default profile)."""
    parts = ([] if profile == DEFAULT_PROFILE else [profile]) + ([layout] if layout else [])
    return Path(run_dir) / "-".join(["maps"] + parts)


def _run_model(run_dir: Path, checkpoint: str, notes: list):
    """``(model or None, neighborhood, boundary)`` of the run: the model of ``checkpoint``, and the
    regularizer's neighbourhood and boundary from the run's config (3 / clip when it has none)."""
    from ..checkpoint import load_run, read_run_config

    try:
        run = load_run(run_dir, checkpoint)
    except FileNotFoundError as e:
        notes.append(f"weight S̄ not computed: {e}")
        try:
            cfg = read_run_config(run_dir)
        except FileNotFoundError:
            notes.append("the run has no config.toml: neighbourhood 3, boundary clip assumed")
            return None, 3, "clip"
        return None, cfg.train.neighborhood, cfg.train.boundary
    return run.model, run.config.train.neighborhood, run.config.train.boundary


def maps_run(run_dir, *, profile: str = DEFAULT_PROFILE, layout: str | None = None, allow_fit_split: bool = False,
             n_permutations: int = 999, label_permutations: int = 999, alpha: float = 0.05, adjacency: str = "queen",
             threshold_sd: float = 1.0, seed: int = 0, plots: bool = True, interpolate: bool = False, out=None,
             progress: bool = True, checkpoint: str | None = None, dpi: int = 100) -> dict:
    """Maps, most responsive regions and statistics of ``RUN/profiles/<profile>.npz`` -> the stats dict.

    Writes ``RUN/maps/`` (or :func:`maps_dir`; ``out`` overrides): per layer and group PNGs (``plots``),
    ``regions.json`` and ``stats.json`` (keys: ``docs/statistics.md``), holding the run lock. The model
    (weight ``S̄``, BN-folded ``S̄``) is the checkpoint the profile was computed from
    (``meta["checkpoint"]``, ``"best"`` for older files; ``checkpoint``, when given, must agree), and
    every position null uses the run's own neighbourhood and boundary. ``layout``: a post-hoc layout
    method (``RUN/layouts/<layer>-<method>.json``, ``toposcope.analysis.layouts``) applied to the
    profile and the weights first; a layout fitted on the profile's split is refused unless
    ``allow_fit_split``, and then every output says "judged on the fitting split".
    """
    from ..runlock import run_lock
    from .profiles import load_profiles
    from .similarity import bn_folded_weights
    from .stats import compute_stats

    run_dir = Path(run_dir)
    path = run_dir / "profiles" / f"{profile}.npz"
    if not path.is_file():
        raise MapsError(f"{path}: profiles file not found (run `toposcope profile {run_dir}` first)")
    with run_lock(run_dir, "maps"):
        prof = load_profiles(path)
        which = prof.meta.get("checkpoint") or "best"
        if checkpoint is not None and checkpoint != which:
            raise MapsError(f"{path}: the profile was computed from the {which!r} checkpoint, not {checkpoint!r}; "
                            f"maps uses the profile's own checkpoint (re-run `toposcope profile --checkpoint "
                            f"{checkpoint}` for the other one)")
        notes: list[str] = []
        model, neighborhood, boundary = _run_model(run_dir, which, notes)
        weights = folded = None
        if model is not None:
            names = [n for n in prof.layers if n in getattr(model, "grids", {})]
            weights = {n: model.weight(n).detach() for n in names}
            folded = bn_folded_weights(model, names) or None
        layout_info = None
        if layout:
            try:
                from . import layouts as L
            except ImportError as e:
                raise MapsError(f"--layout {layout}: post-hoc layouts are not available in this installation "
                                f"(toposcope.analysis.layouts: {e})") from None
            lays = L.load_layouts(run_dir, layout, model=model)
            fitting = L.check_fit_split(lays, prof, allow_fit_split)
            prof = L.apply_layout(prof, lays)
            if weights is not None:
                weights = {n: (lays[n].permute_weight(w) if n in lays else w) for n, w in weights.items()}
            if folded is not None:
                folded = {n: (lays[n].permute_weight(w, check=False) if n in lays else w) for n, w in folded.items()}
            layout_info = {"method": layout, "layers": sorted(lays), "profile_split": prof.meta.get("split"),
                           "fit_split": sorted({str(x.fit_split) for x in lays.values()}),
                           "judged_on_fitting_split": bool(fitting)}
            if fitting:
                notes.append(f"layout {layout!r} judged on the fitting split ({prof.meta.get('split')}): maps laid "
                             f"out on the data the layout was fitted to are smooth by construction")
        st = compute_stats(prof, weights, n_permutations=n_permutations, alpha=alpha, adjacency=adjacency,
                           threshold_sd=threshold_sd, seed=seed, progress=progress,
                           label_permutations=label_permutations, neighborhood=neighborhood, boundary=boundary,
                           folded_weights=folded)
        st["notes"] = notes + st["notes"]
        st.update(run=str(run_dir), checkpoint=which, profile_split=prof.meta.get("split"), seed=int(seed))
        if layout_info is not None:
            st["layout"] = layout_info
        dest = Path(out) if out is not None else maps_dir(run_dir, profile, layout)
        caption = ""
        if layout_info is not None:
            caption = f" · layout {layout}" + (" (judged on the fitting split)" if layout_info["judged_on_fitting_split"]
                                                else "")
        write_maps(prof, dest, interpolate=interpolate, plots=plots, dpi=dpi, progress=progress, caption=caption)
        write_json_atomic(dest / "stats.json", st)
    return st
