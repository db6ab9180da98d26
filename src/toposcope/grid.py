"""Filter grids: where each conv filter sits on the 2D topographic map (SPEC §3).

Filter ``i`` of a layer with ``C = rows * cols`` filters sits at ``(i // cols, i % cols)``
(row-major). The default grid is the most square factorisation with ``rows >= cols``
(256 -> 16x16, 512 -> 32x16, 2048 -> 64x32), as in the seed's §2.1.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence, Union

import numpy as np
import torch

__all__ = ["Grid", "GridLike", "as_grid"]


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
