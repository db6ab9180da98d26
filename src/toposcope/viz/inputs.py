"""Plots of optimal inputs (docs/method.md § Figures, Fig. 1B bottom) and filter close-ups (Fig. 1A). Arrays in, artists out.

Nothing here computes: callers pass the spectrograms / filter weights / similarity maps.

* :func:`plot_spectrogram` -- one ``(n_mels, T)`` input, mel x time, labelled axes.
* :func:`plot_region_inputs` -- single-filter inputs laid out like the grid region, plus the joint one.
* :func:`plot_filter_neighborhood` -- an ``n x n`` block of first-layer filters, each ``(n_mels, k)``
  drawn as an image (mel x kernel time) in its grid position.
* :func:`plot_exemplars` -- the top-k real windows of a target (spectrogram crops with labels) and their mean.
* :func:`plot_similarity_map` -- a layer's per-filter neighbour similarity ``S_p`` on its grid, with
  optional boxes around neighbourhoods.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

__all__ = ["plot_spectrogram", "plot_region_inputs", "plot_filter_neighborhood", "plot_similarity_map",
           "plot_exemplars", "INPUT_CMAP", "FILTER_CMAP"]

INPUT_CMAP = "magma"
FILTER_CMAP = "RdBu_r"


def _mel_ticks(ax, freqs, n_mels: int, n_ticks: int = 5, axis: str = "y") -> None:
    """Label mel-bin positions with their centre frequencies (Hz) when ``freqs`` is given."""
    if freqs is None:
        return
    freqs = np.asarray(freqs)
    pos = np.unique(np.linspace(0, n_mels - 1, n_ticks).round().astype(int))
    labels = [f"{freqs[p] / 1000:.1f}k" if freqs[p] >= 1000 else f"{freqs[p]:.0f}" for p in pos]
    if axis == "y":
        ax.set_yticks(pos)
        ax.set_yticklabels(labels)
    else:
        ax.set_xticks(pos)
        ax.set_xticklabels(labels)


def plot_spectrogram(spec, ax=None, *, frame_seconds: float | None = None, freqs=None, vmin=None, vmax=None,
                     title: str | None = None, cmap: str = INPUT_CMAP, xlabel: bool = True, ylabel: bool = True,
                     colorbar: bool = False):
    """Draw ``spec (n_mels, T)`` (low frequencies at the bottom); returns the ``AxesImage``.

    ``frame_seconds``: time axis in seconds (else frames); ``freqs``: ``(n_mels,)`` centre frequencies
    in Hz for the y tick labels (else mel bin indices).
    """
    import matplotlib.pyplot as plt

    s = np.asarray(spec, dtype=float)
    if s.ndim != 2:
        raise ValueError(f"spectrogram must be (n_mels, frames), got shape {s.shape}")
    if ax is None:
        _, ax = plt.subplots(figsize=(4, 3))
    n_mels, T = s.shape
    extent = None
    if frame_seconds:
        extent = (-0.5 * frame_seconds, (T - 0.5) * frame_seconds, -0.5, n_mels - 0.5)
    im = ax.imshow(s, origin="lower", aspect="auto", cmap=cmap, vmin=vmin, vmax=vmax, extent=extent,
                   interpolation="nearest")
    _mel_ticks(ax, freqs, n_mels)
    if xlabel:
        ax.set_xlabel("time (s)" if frame_seconds else "frame")
    if ylabel:
        ax.set_ylabel("mel band (Hz)" if freqs is not None else "mel bin")
    if title:
        ax.set_title(title, fontsize=9)
    if colorbar:
        ax.figure.colorbar(im, ax=ax, fraction=0.046, pad=0.02)
    return im


def plot_region_inputs(singles: Sequence, positions: Sequence[tuple[int, int]], joint=None, *, fig=None,
                       titles: Sequence[str] | None = None, joint_title: str = "joint",
                       frame_seconds: float | None = None, freqs=None, vmin=None, vmax=None,
                       suptitle: str | None = None, cmap: str = INPUT_CMAP) -> dict:
    """Single-filter inputs in their grid positions (left) and the joint input (right).

    ``singles``: ``(n_mels, T)`` arrays; ``positions``: their ``(row, col)`` *within the region*
    (``0..rows-1``, ``0..cols-1``); ``joint``: ``(n_mels, T)`` or ``None``. One colour scale for all
    panels (``vmin``/``vmax``, default the min/max over all inputs). Returns ``{"fig", "axes"
    ({(row, col): ax}), "joint_ax", "images" (list, singles then joint), "colorbar"}``.
    """
    import matplotlib.pyplot as plt

    if len(singles) != len(positions):
        raise ValueError(f"{len(singles)} inputs but {len(positions)} positions")
    if not len(singles) and joint is None:
        raise ValueError("nothing to draw: no single-filter inputs and no joint input")
    pos = [(int(r), int(c)) for r, c in positions]
    if len(set(pos)) != len(pos) or any(r < 0 or c < 0 for r, c in pos):
        raise ValueError(f"positions must be distinct non-negative (row, col) pairs, got {positions}")
    rows = max((r for r, _ in pos), default=0) + 1
    cols = max((c for _, c in pos), default=0) + 1
    arrays = [np.asarray(s, dtype=float) for s in singles] + ([np.asarray(joint, dtype=float)] if joint is not None else [])
    if vmin is None:
        vmin = float(min(a.min() for a in arrays))
    if vmax is None:
        vmax = float(max(a.max() for a in arrays))
    extra = 1 if joint is not None else 0
    if fig is None:
        fig = plt.figure(figsize=(2.3 * (cols + 1.6 * extra) + 0.8, 1.9 * rows + 0.9), constrained_layout=True)
    width_ratios = [1] * cols + ([0.15, 1.6] if extra else [])
    gs = fig.add_gridspec(rows, cols + 2 * extra, width_ratios=width_ratios)
    axes, images = {}, []
    for k, (s, (r, c)) in enumerate(zip(arrays[:len(pos)], pos)):
        ax = fig.add_subplot(gs[r, c])
        im = plot_spectrogram(s, ax, frame_seconds=frame_seconds, freqs=freqs if c == 0 else None, vmin=vmin,
                              vmax=vmax, cmap=cmap, title=titles[k] if titles else None,
                              xlabel=(r == rows - 1), ylabel=(c == 0))
        if c != 0:
            ax.set_yticks([])
        if r != rows - 1:
            ax.set_xticklabels([])
        axes[(r, c)] = ax
        images.append(im)
    joint_ax = None
    if joint is not None:
        joint_ax = fig.add_subplot(gs[:, cols + 1])
        images.append(plot_spectrogram(arrays[-1], joint_ax, frame_seconds=frame_seconds, freqs=freqs, vmin=vmin,
                                       vmax=vmax, cmap=cmap, title=joint_title))
    cbar = fig.colorbar(images[-1], ax=[joint_ax] if joint_ax is not None else list(axes.values()),
                        fraction=0.05, pad=0.02, label="normalised log-mel")
    if suptitle:
        fig.suptitle(suptitle, fontsize=10)
    return {"fig": fig, "axes": axes, "joint_ax": joint_ax, "images": images, "colorbar": cbar}


def plot_filter_neighborhood(filters, ax=None, *, fig=None, indices=None, vmax: float | None = None,
                             title: str | None = None, cmap: str = FILTER_CMAP, per_filter_scale: bool = True,
                             gap: int | None = None) -> dict:
    """An ``n x n`` block of first-layer filters as one mosaic image (Fig. 1A).

    ``filters``: ``(n, n, n_mels, k)`` weights in grid order (``[i, j]`` sits at row ``i``, column
    ``j`` of the block); each tile is mel (up) x kernel time (right). ``per_filter_scale``: divide
    each filter by its own max ``|w|`` (shapes comparable; the paper's close-ups show shape, not
    gain), else one symmetric scale ``vmax``. ``indices``: ``(n, n)`` filter numbers written on the
    tiles. ``gap``: blank (NaN) pixels between tiles (default: 1 column, ~8 % of the tile height
    between rows). Returns ``{"ax", "image"}``.
    """
    import matplotlib.pyplot as plt

    w = np.asarray(filters, dtype=float)
    if w.ndim != 4:
        raise ValueError(f"filters must be (n, n, n_mels, kernel), got shape {w.shape}")
    nr, nc, M, K = w.shape
    if per_filter_scale:
        s = np.abs(w).reshape(nr, nc, -1).max(axis=2)[:, :, None, None]
        w = w / np.where(s > 0, s, 1.0)
        vmax = 1.0
    elif vmax is None:
        vmax = float(np.abs(w).max()) or 1.0
    gy = max(1, round(0.08 * M)) if gap is None else int(gap)
    gx = 1 if gap is None else int(gap)
    H, W = nr * M + (nr - 1) * gy, nc * K + (nc - 1) * gx
    mosaic = np.full((H, W), np.nan)
    for i in range(nr):
        for j in range(nc):
            # row i of the grid goes to the top: image row 0 is drawn at the top (origin="upper"),
            # and each tile is flipped so low mel bins are at the tile's bottom.
            y0, x0 = i * (M + gy), j * (K + gx)
            mosaic[y0:y0 + M, x0:x0 + K] = w[i, j][::-1]
    if ax is None:
        if fig is None:
            fig = plt.figure(figsize=(1.2 * nc * max(1.0, K / M * 2) + 1, 1.4 * nr + 0.6))
        ax = fig.add_subplot(1, 1, 1)
    im = ax.imshow(mosaic, cmap=cmap, vmin=-vmax, vmax=vmax, aspect="auto", interpolation="nearest",
                   origin="upper")
    ax.set_xticks([j * (K + gx) + (K - 1) / 2 for j in range(nc)])
    ax.set_yticks([i * (M + gy) + (M - 1) / 2 for i in range(nr)])
    if indices is not None:
        idx = np.asarray(indices)
        ax.set_xticklabels([str(j) for j in range(nc)])
        ax.set_yticklabels([str(i) for i in range(nr)])
        for i in range(nr):
            for j in range(nc):
                ax.text(j * (K + gx) - 0.3, i * (M + gy) + 0.3, str(int(idx[i, j])), fontsize=6, va="top",
                        ha="left", color="k", bbox=dict(boxstyle="square,pad=0.1", fc="w", ec="none", alpha=0.7))
    ax.set_xlabel("kernel time (per tile) / grid column")
    ax.set_ylabel("mel (per tile, low at bottom) / grid row")
    if title:
        ax.set_title(title, fontsize=9)
    return {"ax": ax, "image": im}


def plot_similarity_map(sim2d, ax=None, *, boxes: Sequence[tuple[int, int, int, int]] = (), title: str | None = None,
                        vmin: float | None = None, vmax: float | None = None, cmap: str = "viridis",
                        colorbar: bool = True) -> dict:
    """Per-filter neighbour similarity ``S_p`` as a ``(rows, cols)`` image; ``boxes``: inclusive
    ``(r0, r1, c0, c1)`` rectangles to outline (e.g. the close-up neighbourhoods); ``vmin``/``vmax``
    default to the map's range (``S_p`` lies in [-1, 1]; pass a shared range to compare layers). Returns
    ``{"ax", "image", "boxes" (patches), "colorbar"}``."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    s = np.asarray(sim2d, dtype=float)
    if s.ndim != 2:
        raise ValueError(f"similarity map must be (rows, cols), got shape {s.shape}")
    if ax is None:
        _, ax = plt.subplots(figsize=(3.2, 3.2 * s.shape[0] / s.shape[1] + 0.4))
    im = ax.imshow(s, cmap=cmap, vmin=vmin, vmax=vmax, origin="upper", interpolation="nearest")
    patches = []
    for r0, r1, c0, c1 in boxes:
        p = Rectangle((c0 - 0.5, r0 - 0.5), c1 - c0 + 1, r1 - r0 + 1, fill=False, ec="red", lw=1.5)
        ax.add_patch(p)
        patches.append(p)
    ax.set_xlabel("grid column")
    ax.set_ylabel("grid row")
    if title:
        ax.set_title(title, fontsize=9)
    cbar = ax.figure.colorbar(im, ax=ax, fraction=0.046, pad=0.03, label="neighbour similarity $S_p$") if colorbar else None
    return {"ax": ax, "image": im, "boxes": patches, "colorbar": cbar}


def plot_exemplars(crops, labels: Sequence[str] = (), *, mean=None, fig=None, frame_seconds: float | None = None,
                   freqs=None, cols: int = 4, suptitle: str | None = None, cmap: str = INPUT_CMAP) -> dict:
    """Exemplar crops ``(k, n_mels, F)`` in a grid of ``cols`` columns (one colour scale), each titled with
    ``labels[i]``, and their ``mean`` ``(n_mels, F)`` (the "mean spectrogram of the top-k") in its own panel
    on the left. Returns ``{"fig", "axes" (crops), "mean_ax", "images"}``."""
    import matplotlib.pyplot as plt

    c = np.asarray(crops, dtype=float)
    if c.ndim != 3 or c.shape[0] == 0:
        raise ValueError(f"crops must be (k >= 1, n_mels, frames), got shape {c.shape}")
    if labels and len(labels) != c.shape[0]:
        raise ValueError(f"{c.shape[0]} crops but {len(labels)} labels")
    k = c.shape[0]
    cols = max(1, min(int(cols), k))
    rows = -(-k // cols)
    extra = 1 if mean is not None else 0
    if fig is None:
        fig = plt.figure(figsize=(2.4 * (cols + 1.4 * extra) + 0.6, 2.0 * rows + 0.8), constrained_layout=True)
    gs = fig.add_gridspec(rows, cols + extra, width_ratios=([1.4] if extra else []) + [1] * cols)
    vmin, vmax = float(np.nanmin(c)), float(np.nanmax(c))
    images, axes, mean_ax = [], [], None
    if mean is not None:
        mean_ax = fig.add_subplot(gs[:, 0])
        images.append(plot_spectrogram(np.asarray(mean, dtype=float), mean_ax, frame_seconds=frame_seconds,
                                       freqs=freqs, cmap=cmap, title=f"mean of the top {k}"))
    for i in range(k):
        r, col = divmod(i, cols)
        ax = fig.add_subplot(gs[r, col + extra])
        images.append(plot_spectrogram(c[i], ax, frame_seconds=frame_seconds, vmin=vmin, vmax=vmax, cmap=cmap,
                                       xlabel=(r == rows - 1), ylabel=False))
        ax.set_yticks([])
        if labels:
            ax.set_title(labels[i], fontsize=7)
        axes.append(ax)
    if suptitle:
        fig.suptitle(suptitle, fontsize=10)
    return {"fig": fig, "axes": axes, "mean_ax": mean_ax, "images": images}
