"""Filter grids: where each conv filter sits on the 2D topographic map (docs/method.md § Features and model).

Filter ``i`` of a layer with ``C = rows * cols`` filters sits at ``(i // cols, i % cols)``
(row-major). The default grid is the most square factorisation with ``rows >= cols``
(256 -> 16x16, 512 -> 32x16, 2048 -> 64x32), as in the seed's §2.1.

Neighbourhoods live here, once (``docs/method.md`` § Regularizer, § Maps, § Statistics):

* :func:`window_offsets` -- the ``n x n`` window offsets around a cell (centre left out);
* :func:`neighbour_table` -- the regularizer's weighted neighbour pairs ``(p, q, w_pq)``, reciprocal
  grid distance normalised per neighbourhood, clipped at the border or wrapped on a torus;
* :data:`ADJACENCY` -- the binary adjacencies of Moran's I (``queen`` = the 3x3 window, ``rook``);
* :func:`window_bounds` -- the block of cells around a centre, clipped (regions) or shifted inwards
  to stay whole (filter close-ups); :func:`window_mean` -- the clipped-window mean (smoothed maps).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence, Union

import numpy as np
import torch

__all__ = ["Grid", "GridLike", "as_grid", "BOUNDARIES", "ADJACENCY", "window_offsets", "adjacency_offsets",
           "neighbour_table", "window_bounds", "window_mean"]


@dataclass(frozen=True)
class Grid:
    """A ``rows x cols`` layout of ``rows * cols`` filters, row-major."""

    rows: int
    cols: int

    def __post_init__(self) -> None:
        for name in ("rows", "cols"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise ValueError(f"Grid.{name} must be a positive integer, got {v!r}")
        object.__setattr__(self, "rows", int(self.rows))
        object.__setattr__(self, "cols", int(self.cols))

    @property
    def size(self) -> int:
        """Number of cells (= number of filters)."""
        return self.rows * self.cols

    @property
    def shape(self) -> tuple[int, int]:
        return (self.rows, self.cols)

    @classmethod
    def for_channels(cls, channels: int) -> "Grid":
        """Most square factorisation ``rows * cols == channels`` with ``rows >= cols``."""
        if isinstance(channels, bool) or not isinstance(channels, (int, np.integer)) or channels < 1:
            raise ValueError(f"number of channels must be a positive integer, got {channels!r}")
        cols = int(math.isqrt(int(channels)))
        while channels % cols:
            cols -= 1
        return cls(int(channels) // cols, cols)

    def position(self, index: int) -> tuple[int, int]:
        """Grid position ``(row, col)`` of filter ``index``."""
        if not 0 <= index < self.size:
            raise ValueError(f"filter index {index} outside a {self.rows}x{self.cols} grid")
        return (index // self.cols, index % self.cols)

    def index(self, row: int, col: int) -> int:
        """Filter index at ``(row, col)``."""
        if not (0 <= row < self.rows and 0 <= col < self.cols):
            raise ValueError(f"position ({row}, {col}) outside a {self.rows}x{self.cols} grid")
        return row * self.cols + col

    def to_map(self, values):
        """``(..., C)`` values -> ``(..., rows, cols)`` map (numpy or torch)."""
        if values.shape[-1] != self.size:
            raise ValueError(
                f"expected {self.size} values for a {self.rows}x{self.cols} grid, got {values.shape[-1]}"
            )
        return values.reshape(*values.shape[:-1], self.rows, self.cols)

    def check(self, channels: int, what: str = "layer") -> None:
        """Raise ``ValueError`` unless the grid holds exactly ``channels`` filters."""
        if channels != self.size:
            raise ValueError(
                f"{what} has {channels} filters but grid {self.rows}x{self.cols} holds {self.size}; "
                f"rows * cols must equal the number of filters"
            )

    def __str__(self) -> str:
        return f"{self.rows}x{self.cols}"


GridLike = Union[Grid, Sequence[int]]


def as_grid(grid: GridLike) -> Grid:
    """Accept a :class:`Grid` or a ``(rows, cols)`` pair."""
    if isinstance(grid, Grid):
        return grid
    if isinstance(grid, torch.Size) or isinstance(grid, (tuple, list)):
        if len(grid) != 2:
            raise ValueError(f"grid must be (rows, cols), got {tuple(grid)!r}")
        return Grid(int(grid[0]), int(grid[1]))
    raise ValueError(f"grid must be a toposcope.Grid or a (rows, cols) tuple, got {grid!r}")


# --------------------------------------------------------------------------------------------------
# neighbourhoods
# --------------------------------------------------------------------------------------------------
#: Border handling of the regularizer's neighbourhoods: window cut at the border, or a torus.
BOUNDARIES = ("clip", "wrap")


def window_offsets(n: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Row and column offsets ``(dr, dc)``, each ``(n * n - 1,)``, of the ``n x n`` window around a
    cell without the cell itself, in row-major order ((-1, -1), (-1, 0), ... for ``n = 3``)."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1 or n % 2 == 0:
        raise ValueError(f"window size must be an odd integer >= 1, got {n!r}")
    h = int(n) // 2
    dr, dc = np.meshgrid(np.arange(-h, h + 1), np.arange(-h, h + 1), indexing="ij")
    dr, dc = dr.ravel(), dc.ravel()
    keep = (dr != 0) | (dc != 0)
    return dr[keep], dc[keep]


#: Binary grid adjacencies (offsets; each unordered pair appears in both directions): ``queen`` is
#: the 3x3 window of the regularizer and the smoothing, ``rook`` its 4 edge neighbours.
ADJACENCY = {
    "queen": tuple((int(r), int(c)) for r, c in zip(*window_offsets(3))),
    "rook": tuple((int(r), int(c)) for r, c in zip(*window_offsets(3)) if abs(r) + abs(c) == 1),
}


def adjacency_offsets(adjacency: str) -> tuple[tuple[int, int], ...]:
    """Offsets of a named binary adjacency (:data:`ADJACENCY`); ``ValueError`` for unknown names."""
    try:
        return ADJACENCY[adjacency]
    except (KeyError, TypeError):
        raise ValueError(f"adjacency must be one of {', '.join(ADJACENCY)}, got {adjacency!r}") from None


def neighbour_table(rows: int, cols: int, n: int, boundary: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All ``(p, q, w_pq)`` of the regularizer's neighbourhoods (no diagonal), as numpy arrays sorted by
    ``(p, q)`` (``docs/method.md`` § Regularizer).

    ``clip``: the ``n x n`` window is cut at the grid border and the reciprocal-distance weights are
    renormalised over the neighbours that exist (a corner of a 3x3 window has 3 neighbours).
    ``wrap``: the window wraps around a torus. On a torus smaller than ``n`` in some dimension, several
    window offsets can land on the same cell: that cell counts **once**, at the shortest distance
    among those offsets, and ``p`` is never its own neighbour (documented choice). E.g. 2x2 with n=3
    wraps to the same three neighbours as the clipped window.
    """
    if boundary not in BOUNDARIES:
        raise ValueError(f"unknown boundary {boundary!r}; allowed: 'clip' (window cut at the grid border) "
                         f"or 'wrap' (torus)")
    dr, dc = window_offsets(n)                                    # (K,) offsets
    dist = np.sqrt(dr.astype(np.float64) ** 2 + dc.astype(np.float64) ** 2)
    C = rows * cols
    pr, pc = np.divmod(np.arange(C), cols)                        # (C,)
    qr, qc = pr[:, None] + dr[None, :], pc[:, None] + dc[None, :]  # (C, K)
    p = np.broadcast_to(np.arange(C)[:, None], qr.shape)
    d = np.broadcast_to(dist[None, :], qr.shape)
    if boundary == "clip":
        ok = (qr >= 0) & (qr < rows) & (qc >= 0) & (qc < cols)
        p, q, d = p[ok], (qr * cols + qc)[ok], d[ok]
    else:
        q = (qr % rows) * cols + (qc % cols)
        ok = q != p
        p, q, d = p[ok], q[ok], d[ok]
        # keep each (p, q) once, at its shortest distance: sort by (p, q, d), take the first
        order = np.lexsort((d, q, p))
        p, q, d = p[order], q[order], d[order]
        first = np.ones(p.shape, dtype=bool)
        first[1:] = (p[1:] != p[:-1]) | (q[1:] != q[:-1])
        p, q, d = p[first], q[first], d[first]
    order = np.lexsort((q, p))
    p, q, d = p[order], q[order], d[order]
    inv = 1.0 / d
    total = np.bincount(p, weights=inv, minlength=C)
    w = inv / total[p]
    return p.astype(np.int64), q.astype(np.int64), w


def window_bounds(grid: GridLike, center: tuple[int, int], n: int = 3, *, fit: bool = False
                  ) -> tuple[int, int, int, int]:
    """Inclusive ``(r0, r1, c0, c1)`` of the ``n x n`` block around ``center``: clipped at the border
    (``fit=False``: a corner block of a 3x3 window has 2x2 cells), or shifted inwards so that it
    stays whole (``fit=True``; the grid must hold ``n x n`` cells)."""
    g = as_grid(grid)
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1 or n % 2 == 0:
        raise ValueError(f"block size must be an odd integer >= 1, got {n!r}")
    if fit and (n > g.rows or n > g.cols):
        raise ValueError(f"a {n}x{n} block does not fit a {g} grid")
    r, c = (int(v) for v in center)
    g.index(r, c)  # raises for positions outside the grid
    h = int(n) // 2
    if not fit:
        return max(r - h, 0), min(r + h, g.rows - 1), max(c - h, 0), min(c + h, g.cols - 1)
    r0 = min(max(r - h, 0), g.rows - n)
    c0 = min(max(c - h, 0), g.cols - n)
    return r0, r0 + n - 1, c0, c0 + n - 1


def window_mean(maps, n: int = 3) -> np.ndarray:
    """Mean over the clipped ``n x n`` window of every cell of ``(..., rows, cols)`` maps -> same shape
    (a border window averages only the cells that exist: 4 in a corner of a 3x3 window, 6 on an edge)."""
    m = np.asarray(maps, dtype=np.float64)
    if m.ndim < 2:
        raise ValueError(f"window_mean needs (rows, cols) maps, got shape {m.shape}")
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1 or n % 2 == 0:
        raise ValueError(f"window size must be odd and >= 1, got {n}")
    return _box_sum(m, int(n)) / _box_sum(np.ones(m.shape[-2:]), int(n))


def _box_sum(m: np.ndarray, n: int) -> np.ndarray:
    """Sum over the zero-padded ``n x n`` window of every cell of ``(..., rows, cols)``: separable, ``n``
    shifted slices per axis (fast on large stacks of maps)."""
    h = n // 2
    rows, cols = m.shape[-2:]
    p = np.pad(m, [(0, 0)] * (m.ndim - 2) + [(h, h), (h, h)])
    s = p[..., 0:rows, :].copy()
    for k in range(1, n):
        s += p[..., k:k + rows, :]
    out = s[..., :, 0:cols].copy()
    for k in range(1, n):
        out += s[..., :, k:k + cols]
    return out
