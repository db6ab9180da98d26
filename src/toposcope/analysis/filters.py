"""Filter close-ups (seed §2.1, Fig. 1A; docs/method.md § Figures) and per-filter neighbour similarity maps.

* :func:`neighborhood_block` -- the ``n x n`` block of filter indices around a grid position
  (shifted inwards at the border so the block is always complete, unlike the clipped neighbourhoods
  of the regularizer: a close-up shows ``n x n`` filters).
* :func:`filter_block` -- those filters' weights ``(n, n, C_in, k)``: for the first layer each filter
  is an image of mel x kernel time.
* :func:`similarity_map` -- ``S_p`` (docs/method.md § Regularizer, :func:`toposcope.topography.neighborhood_similarity`)
  of every filter on its grid, ``(rows, cols)``.
* :func:`choose_neighborhoods` -- which blocks to show. The seed shows "two exemplary
  neighborhoods" without saying how they were picked; ours: ``mode="top"`` (default) takes the
  ``count`` non-overlapping blocks with the highest mean ``S_p`` (greedy), ``mode="contrast"`` the
  most and the least coherent block.
* :func:`closeups` / :func:`write_filters` -- everything for ``toposcope filters``.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from .._util import atomic_write, write_json_atomic
from ..grid import Grid, GridLike, as_grid, window_bounds

__all__ = ["block_bounds", "neighborhood_block", "filter_block", "similarity_map", "block_means",
           "choose_neighborhoods", "closeups", "write_filters"]


def block_bounds(grid: GridLike, center: tuple[int, int], n: int = 3) -> tuple[int, int, int, int]:
    """Inclusive ``(r0, r1, c0, c1)`` of the ``n x n`` block centred at ``center``, shifted to fit
    (:func:`toposcope.grid.window_bounds` with ``fit=True``)."""
    return window_bounds(grid, center, n, fit=True)


def neighborhood_block(grid: GridLike, center: tuple[int, int], n: int = 3) -> np.ndarray:
    """``(n, n)`` filter indices of the block around ``center`` (row-major grid order)."""
    g = as_grid(grid)
    r0, r1, c0, c1 = block_bounds(g, center, n)
    rows = np.arange(r0, r1 + 1)[:, None]
    cols = np.arange(c0, c1 + 1)[None, :]
    return rows * g.cols + cols


def filter_block(weight, indices) -> np.ndarray:
    """``weight (C, C_in, k)`` and ``indices (n, n)`` -> ``(n, n, C_in, k)`` float array."""
    w = torch.as_tensor(weight).detach().cpu().numpy()
    idx = np.asarray(indices, dtype=int)
    if w.ndim != 3:
        raise ValueError(f"expected a Conv1d weight (C, C_in, k), got shape {w.shape}")
    if idx.min() < 0 or idx.max() >= w.shape[0]:
        raise ValueError(f"filter indices outside 0..{w.shape[0] - 1}")
    return w[idx]


def similarity_map(weight, grid: GridLike, neighborhood: int = 3, boundary: str = "clip") -> np.ndarray:
    """``S_p`` of every filter as a ``(rows, cols)`` array (docs/method.md § Regularizer)."""
    from ..topography import neighborhood_similarity

    g = as_grid(grid)
    with torch.no_grad():
        s = neighborhood_similarity(torch.as_tensor(weight).detach(), g, neighborhood, boundary)
    return g.to_map(s.double().cpu().numpy())


def block_means(sim2d, n: int = 3) -> np.ndarray:
    """Mean of ``sim2d (rows, cols)`` over every complete ``n x n`` block: ``(rows - n + 1, cols - n + 1)``,
    entry ``[r0, c0]`` for the block whose top-left cell is ``(r0, c0)``."""
    s = np.asarray(sim2d, dtype=np.float64)
    if s.ndim != 2 or n > min(s.shape):
        raise ValueError(f"need a (rows, cols) map of at least {n}x{n}, got shape {s.shape}")
    return np.lib.stride_tricks.sliding_window_view(s, (n, n)).mean(axis=(-2, -1))


def choose_neighborhoods(sim2d, n: int = 3, count: int = 2, mode: str = "top") -> list[tuple[int, int]]:
    """Centres of ``count`` non-overlapping ``n x n`` blocks (see module docstring for ``mode``)."""
    if mode not in ("top", "contrast"):
        raise ValueError(f"mode must be 'top' or 'contrast', got {mode!r}")
    if count < 1:
        raise ValueError(f"count must be >= 1, got {count}")
    m = block_means(sim2d, n)
    taken = np.zeros(np.asarray(sim2d).shape, dtype=bool)
    h = n // 2
    out = []
    order = list(np.argsort(-m, axis=None, kind="stable"))
    if mode == "contrast":  # most coherent, least coherent, then alternate inwards
        lo, hi, order2 = 0, len(order) - 1, []
        while lo <= hi:
            order2.append(order[lo])
            if lo != hi:
                order2.append(order[hi])
            lo, hi = lo + 1, hi - 1
        order = order2
    for flat in order:
        r0, c0 = np.unravel_index(flat, m.shape)
        if taken[r0:r0 + n, c0:c0 + n].any():
            continue
        taken[r0:r0 + n, c0:c0 + n] = True
        out.append((int(r0 + h), int(c0 + h)))
        if len(out) == count:
            break
    return out


def closeups(model, layer: str | None = None, *, n: int = 3, count: int = 2, centers=None, mode: str = "top",
             neighborhood: int = 3, boundary: str = "clip") -> dict:
    """Figure 1A data for ``layer`` (default: the first) and similarity maps of every layer.

    Returns ``{"layer", "n", "neighborhoods": [{"center", "box", "indices" (n, n), "filters"
    (n, n, C_in, k), "mean_similarity"}], "similarity": {layer: (rows, cols)}, "mean_similarity":
    {layer: S̄}}``.
    """
    layer = layer or model.layer_names[0]
    if layer not in model.layer_names:
        raise ValueError(f"no gridded layer {layer!r}; layers: {', '.join(model.layer_names)}")
    sims = {l: similarity_map(model.weight(l), model.grids[l], neighborhood, boundary) for l in model.layer_names}
    grid: Grid = model.grids[layer]
    if centers is None:
        centers = choose_neighborhoods(sims[layer], n, count, mode)
    hoods = []
    for c in centers:
        box = block_bounds(grid, c, n)
        idx = neighborhood_block(grid, c, n)
        hoods.append({"center": (int(c[0]), int(c[1])), "box": box, "indices": idx,
                      "filters": filter_block(model.weight(layer), idx),
                      "mean_similarity": float(sims[layer][box[0]:box[1] + 1, box[2]:box[3] + 1].mean())})
    return {"layer": layer, "n": n, "neighborhoods": hoods, "similarity": sims,
            "mean_similarity": {l: float(s.mean()) for l, s in sims.items()}}


def write_filters(run_dir, **kw) -> dict:
    """``RUN/filters/`` (see :func:`_write_filters`), holding the run folder's lock (``toposcope.runlock``)."""
    from ..runlock import run_lock

    with run_lock(run_dir, "filters"):
        return _write_filters(run_dir, **kw)


def _write_filters(run_dir, *, layer: str | None = None, n: int = 3, count: int = 2, centers=None,
                  mode: str = "top", checkpoint: str = "best", out=None, dpi: int = 120) -> dict:
    """``RUN/filters/``: ``closeup_<layer>.png`` (the neighbourhoods + that layer's similarity map),
    ``similarity.png`` (every layer), ``similarity.npz`` and ``summary.json``. Returns the summary."""
    import matplotlib

    if not os.environ.get("MPLBACKEND"):
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..checkpoint import load_run
    from ..viz.inputs import plot_filter_neighborhood, plot_similarity_map

    run = load_run(run_dir, checkpoint)
    model = run.model
    out = Path(out) if out is not None else Path(run.path or run_dir) / "filters"
    out.mkdir(parents=True, exist_ok=True)
    d = closeups(model, layer, n=n, count=count, centers=centers, mode=mode)
    layer = d["layer"]
    hoods = d["neighborhoods"]
    first = layer == model.layer_names[0]
    if first and model.frontend is not None:  # conv1 reads the 2-D front end, not mel bins
        unit = "front-end band"  # channel c * (n_mels // pool) + m: filter c at pooled mel band m
    else:
        unit = "mel" if first else "input channel"

    fig = plt.figure(figsize=(3.4 * len(hoods) + 3.8, 4.0), constrained_layout=True)
    gs = fig.add_gridspec(1, len(hoods) + 1, width_ratios=[1] * len(hoods) + [1.1])
    for k, h in enumerate(hoods):
        ax = fig.add_subplot(gs[0, k])
        plot_filter_neighborhood(h["filters"], ax, indices=h["indices"],
                                 title=f"{layer} block at {h['center']}: mean $S_p$ = {h['mean_similarity']:.2f}")
        ax.set_ylabel(f"grid row (tiles: {unit} x kernel time)" if k == 0 else "")
        ax.set_xlabel("grid column")
    ax = fig.add_subplot(gs[0, len(hoods)])
    plot_similarity_map(d["similarity"][layer], ax, boxes=[h["box"] for h in hoods],
                        title=f"{layer}: neighbour similarity $S_p$ (mean {d['mean_similarity'][layer]:.2f})")
    fig.suptitle(f"Filter close-ups ({model.grids[layer]} grid, {n}x{n} blocks; each tile scaled to its own max |w|)",
                 fontsize=10)
    fig.savefig(out / f"closeup_{layer}.png", dpi=dpi)
    plt.close(fig)

    lo = min(float(v.min()) for v in d["similarity"].values())
    hi = max(float(v.max()) for v in d["similarity"].values())
    L = len(model.layer_names)
    cols = min(L, 4)
    rows = -(-L // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.3 * cols, 3.3 * rows), constrained_layout=True, squeeze=False)
    for ax, l in zip(axes.flat, model.layer_names):
        plot_similarity_map(d["similarity"][l], ax, vmin=lo, vmax=hi,
                            title=f"{l} ({model.grids[l]}): mean {d['mean_similarity'][l]:.2f}",
                            boxes=[h["box"] for h in hoods] if l == layer else ())
    for ax in list(axes.flat)[L:]:
        ax.axis("off")
    fig.suptitle("Each filter's weighted cosine similarity to its grid neighbours ($S_p$, docs/method.md § Regularizer)", fontsize=10)
    fig.savefig(out / "similarity.png", dpi=dpi)
    plt.close(fig)

    atomic_write(out / "similarity.npz", lambda f: np.savez(f, **{l: s for l, s in d["similarity"].items()}))
    summary = {"run": str(run.path or run_dir), "layer": layer, "n": n, "mode": mode if centers is None else "given",
               "neighborhoods": [{"center": list(h["center"]), "box": list(h["box"]),
                                  "filters": h["indices"].tolist(), "mean_similarity": h["mean_similarity"]}
                                 for h in hoods],
               "mean_similarity": d["mean_similarity"],
               "files": [f"closeup_{layer}.png", "similarity.png", "similarity.npz"]}
    write_json_atomic(out / "summary.json", summary)
    return summary
