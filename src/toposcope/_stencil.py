"""Neighbourhood tables of the topographic regularizer (docs/method.md § Regularizer, seed §2.1) and the fast kernel.

Private module: :mod:`toposcope.topography` is the public face. The neighbour pairs and weights
themselves come from :func:`toposcope.grid.neighbour_table` (one definition of the neighbourhoods).

The neighbourhood structure of a ``rows x cols`` grid is stored once as a sparse ``C x C`` pattern
in CSR order (``C = rows * cols``): row ``p`` holds every neighbour ``q`` of ``p`` with its weight
``w_pq`` (reciprocal grid distance, normalised to sum to 1 over the neighbourhood of ``p``) **and**
the diagonal entry ``(p, p)`` with weight 0. The diagonal is there so that one sampled matmul gives
both the neighbour dot products ``f_p . f_q`` and the squared norms ``f_p . f_p``, and so that one
weighted gather-sum gives the whole gradient including the "through the normalisation" term.

Cost per layer (``F`` = the ``(C, D)`` flattened weight): forward is one sampled dense-dense matmul
(``torch.sparse.sampled_addmm``: reads ``F``, writes only ``nnz`` numbers); backward is one
``embedding_bag`` weighted gather-sum (reads ``F``, writes the gradient). No temporary the size of
the weight is created besides the gradient itself.
"""

from __future__ import annotations

import functools
import warnings
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as Fn

from .grid import BOUNDARIES, Grid, neighbour_table  # noqa: F401  (neighbour_table: one definition, in grid)

__all__ = ["Stencil", "stencil", "check_neighborhood", "check_boundary", "BOUNDARIES", "neighbour_table"]


def check_boundary(boundary) -> str:
    if boundary not in BOUNDARIES:
        raise ValueError(f"unknown boundary {boundary!r}; allowed: 'clip' (window cut at the grid border) "
                         f"or 'wrap' (torus)")
    return boundary


def check_neighborhood(neighborhood, grid: Grid) -> int:
    """``n`` must be an odd integer, ``3 <= n <= 2 * max(rows, cols) - 1``.

    Larger windows reach no further cell than ``2 * max(rows, cols) - 1`` does, so they are
    rejected as a likely mistake (a 1x1 grid has no neighbours at all and is rejected for every n).
    """
    n = neighborhood
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)):
        raise ValueError(f"neighborhood must be an odd integer >= 3, got {n!r}")
    n = int(n)
    if n < 3 or n % 2 == 0:
        raise ValueError(f"neighborhood must be an odd integer >= 3 (3, 5, 7, ...), got {n}")
    largest = 2 * max(grid.rows, grid.cols) - 1
    if n > largest:
        if largest < 3:
            raise ValueError(f"a {grid} grid has no neighbours: no neighborhood size is allowed "
                             f"(got {n}); use a grid with at least 2 cells")
        raise ValueError(f"neighborhood {n} is too large for a {grid} grid; allowed: odd sizes "
                         f"3..{largest} (a larger window adds no cells)")
    return n


@dataclass(frozen=True)
class Stencil:
    """Sparse neighbourhood pattern of one grid, CSR order, diagonal included (weight 0).

    ``crow``: ``(C + 1,)`` row pointers; ``row``/``col``: ``(nnz,)`` entry ``(p, q)``;
    ``weight``: ``(nnz,)`` ``w_pq`` (0 on the diagonal); ``transpose``: ``(nnz,)`` position of entry
    ``(q, p)``; ``diag``: ``(C,)`` position of entry ``(p, p)``.
    ``upper_crow``/``upper_col``: CSR pattern of the entries with ``q >= p`` (dot products are
    symmetric, so only these are computed); ``from_upper``: ``(nnz,)`` position of ``(min(p, q),
    max(p, q))`` of each entry in that upper pattern; ``upper_zeros``: placeholder values for it.
    """

    size: int
    crow: torch.Tensor
    row: torch.Tensor
    col: torch.Tensor
    weight: torch.Tensor
    transpose: torch.Tensor
    diag: torch.Tensor
    upper_crow: torch.Tensor
    upper_col: torch.Tensor
    from_upper: torch.Tensor
    upper_zeros: torch.Tensor

    @property
    def nnz(self) -> int:
        return int(self.col.numel())


@functools.lru_cache(maxsize=256)
def _stencil_cpu(rows: int, cols: int, n: int, boundary: str) -> tuple[np.ndarray, ...]:
    p, q, w = neighbour_table(rows, cols, n, boundary)
    C = rows * cols
    # add the diagonal with weight 0, then CSR order (by p, then q)
    p = np.concatenate([p, np.arange(C)])
    q = np.concatenate([q, np.arange(C)])
    w = np.concatenate([w, np.zeros(C)])
    order = np.lexsort((q, p))
    p, q, w = p[order], q[order], w[order]
    crow = np.zeros(C + 1, dtype=np.int64)
    crow[1:] = np.cumsum(np.bincount(p, minlength=C))
    key = p * C + q                                    # sorted ascending
    transpose = np.searchsorted(key, q * C + p)
    if not np.array_equal(key[transpose], q * C + p):  # the neighbour relation is symmetric
        raise AssertionError("internal error: asymmetric neighbourhood pattern")
    diag = np.searchsorted(key, np.arange(C) * C + np.arange(C))
    # the upper half (q >= p) is enough for the dot products: cos is symmetric
    up = q >= p
    up_crow = np.zeros(C + 1, dtype=np.int64)
    up_crow[1:] = np.cumsum(np.bincount(p[up], minlength=C))
    up_col = q[up]
    up_key = key[up]
    from_upper = np.searchsorted(up_key, np.minimum(p, q) * C + np.maximum(p, q))
    return crow, p, q, w, transpose, diag, up_crow, up_col, from_upper


@functools.lru_cache(maxsize=256)
def _stencil(rows: int, cols: int, n: int, boundary: str, device: torch.device, dtype: torch.dtype) -> Stencil:
    crow, p, q, w, transpose, diag, up_crow, up_col, from_upper = _stencil_cpu(rows, cols, n, boundary)
    as_long = lambda a: torch.as_tensor(a, dtype=torch.int64, device=device)  # noqa: E731
    return Stencil(rows * cols, as_long(crow), as_long(p), as_long(q),
                   torch.as_tensor(w, dtype=dtype, device=device), as_long(transpose), as_long(diag),
                   as_long(up_crow), as_long(up_col), as_long(from_upper),
                   torch.zeros(len(up_col), dtype=dtype, device=device))


def stencil(grid: Grid, n: int, boundary: str, device, dtype: torch.dtype) -> Stencil:
    """Cached :class:`Stencil` for ``(grid, n, boundary, device, dtype)`` (arguments already checked)."""
    return _stencil(grid.rows, grid.cols, int(n), boundary, torch.device(device), dtype)


# --------------------------------------------------------------------------------------------
# the kernel


def _pair_dots(flat: torch.Tensor, st: Stencil) -> torch.Tensor:
    """``(nnz,)`` dot products ``f_p . f_q`` for every pattern entry; ``flat``: ``(C, D)``."""
    try:
        with warnings.catch_warnings():       # CSR is only a pattern here; its "beta" notice is noise
            warnings.simplefilter("ignore")
            pattern = torch.sparse_csr_tensor(st.upper_crow, st.upper_col, st.upper_zeros,
                                              (st.size, st.size), check_invariants=False)
        upper = torch.sparse.sampled_addmm(pattern, flat, flat.t(), beta=0.0).values()
    except (RuntimeError, NotImplementedError):  # backend without sampled_addmm: chunked gather
        upper_row = torch.repeat_interleave(torch.arange(st.size, device=flat.device),
                                            st.upper_crow.diff())
        upper = torch.empty(st.upper_col.numel(), dtype=flat.dtype, device=flat.device)
        step = max(1, (1 << 24) // max(1, flat.shape[1]))
        for a in range(0, upper.numel(), step):
            b = min(upper.numel(), a + step)
            upper[a:b] = (flat[upper_row[a:b]] * flat[st.upper_col[a:b]]).sum(1)
    return upper[st.from_upper]


# The kernel is a pair of custom ops (``torch.library``): eager mode calls them directly, and
# ``torch.compile`` sees them as single opaque nodes (no graph breaks, no tracing of the table
# building), so the glue around them compiles.
#
# Math (docs/method.md § Regularizer). With ``n_p = max(||f_p||, eps)``, ``c_pq = f_p.f_q / (n_p n_q)``, upstream
# ``g = dL/dS``, ``M_pq = g_p w_pq`` and ``K = M + M^T``:
#
#     dL/df_r = sum_q K_rq f_q / (n_r n_q)  -  (sum_q K_rq c_rq) f_r / n_r^2
#
# (the second term vanishes where the norm is clamped at ``eps``). Both terms together are one
# sparse ``(C, C) x (C, D)`` product over the stencil pattern, the second on its diagonal, evaluated
# as a weighted ``embedding_bag``.


@torch.library.custom_op("toposcope::neighborhood_similarity", mutates_args=())
def _similarity_op(flat: torch.Tensor, rows: int, cols: int, n: int, boundary: str,
                   eps: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """``flat`` ``(C, D)`` -> ``S (C,)``, and for the backward ``inv (C,)``, ``cos (nnz,)``, ``inv_active (C,)``."""
    st = stencil(Grid(rows, cols), n, boundary, flat.device, flat.dtype)
    dots = _pair_dots(flat.contiguous(), st)        # (nnz,)
    norm = dots[st.diag].clamp_min(0.0).sqrt()      # (C,) ||f_p||
    inv = 1.0 / norm.clamp_min(eps)
    cos = dots * inv[st.row] * inv[st.col]          # (nnz,)
    S = torch.zeros(st.size, dtype=flat.dtype, device=flat.device)
    S.index_add_(0, st.row, st.weight * cos)
    return S, inv, cos, inv * (norm > eps)


@_similarity_op.register_fake
def _(flat, rows, cols, n, boundary, eps):
    nnz = len(_stencil_cpu(rows, cols, n, boundary)[2])
    C = flat.shape[0]
    return flat.new_empty(C), flat.new_empty(C), flat.new_empty(nnz), flat.new_empty(C)


@torch.library.custom_op("toposcope::neighborhood_similarity_backward", mutates_args=())
def _similarity_backward_op(grad_s: torch.Tensor, flat: torch.Tensor, inv: torch.Tensor, cos: torch.Tensor,
                            inv_active: torch.Tensor, rows: int, cols: int, n: int,
                            boundary: str) -> torch.Tensor:
    """``dL/dflat`` ``(C, D)`` from ``grad_s = dL/dS`` ``(C,)`` (formula above)."""
    st = stencil(Grid(rows, cols), n, boundary, flat.device, flat.dtype)
    m = grad_s[st.row] * st.weight                  # (nnz,) g_p w_pq (0 on the diagonal)
    k = m + m[st.transpose]                         # K = M + M^T
    beta = torch.zeros_like(inv).index_add_(0, st.row, k * cos)
    vals = k * inv[st.row] * inv[st.col]
    vals[st.diag] = -beta * inv_active * inv_active
    return Fn.embedding_bag(st.col, flat.contiguous(), st.crow[:-1], mode="sum", per_sample_weights=vals)


@_similarity_backward_op.register_fake
def _(grad_s, flat, inv, cos, inv_active, rows, cols, n, boundary):
    return torch.empty_like(flat, memory_format=torch.contiguous_format)


def _setup_context(ctx, inputs, output):
    flat, rows, cols, n, boundary, _eps = inputs
    _S, inv, cos, inv_active = output
    ctx.save_for_backward(flat, inv, cos, inv_active)
    ctx.geometry = (rows, cols, n, boundary)


def _backward(ctx, grad_s, _g_inv, _g_cos, _g_inv_active):
    flat, inv, cos, inv_active = ctx.saved_tensors
    if grad_s is None:
        return None, None, None, None, None, None
    grad = _similarity_backward_op(grad_s.contiguous(), flat, inv, cos, inv_active, *ctx.geometry)
    return grad, None, None, None, None, None


_similarity_op.register_autograd(_backward, setup_context=_setup_context)


def similarity(flat: torch.Tensor, grid: Grid, n: int, boundary: str, eps: float) -> torch.Tensor:
    """``(C, D)`` -> ``(C,)`` ``S_p`` (differentiable once; arguments already checked)."""
    return _similarity_op(flat, grid.rows, grid.cols, int(n), boundary, float(eps))[0]


def similarity_matrix_null(unit: torch.Tensor, st: Stencil, perms: torch.Tensor) -> torch.Tensor:
    """``S̄`` for filters placed by each permutation. ``unit``: ``(C, D)`` unit rows; ``perms``: ``(P, C)``.

    Position ``p`` holds filter ``perms[k, p]``. Returns ``(P,)`` float64.
    """
    C = st.size
    off = st.row != st.col
    row, col, w = st.row[off], st.col[off], st.weight[off].double()
    if C * C <= (1 << 24):                               # Gram matrix of cosines fits: gather from it
        cosm = (unit @ unit.t()).double()                # (C, C)
        out = []
        for chunk in perms.split(max(1, (1 << 22) // max(1, row.numel()))):
            c = cosm[chunk[:, row], chunk[:, col]]       # (p, nnz')
            out.append((c * w).sum(1) / C)
        return torch.cat(out)
    out = []
    for perm in perms:                                   # large C: one sampled matmul per permutation
        u = unit[perm]
        c = _pair_dots(u, st)[off].double()
        out.append((c * w).sum() / C)
    return torch.stack(out)


def check_weight(weight, what: str = "weight") -> torch.Tensor:
    if not isinstance(weight, torch.Tensor):
        raise ValueError(f"{what} must be a torch.Tensor, got {type(weight).__name__}")
    if not weight.is_floating_point():
        raise ValueError(f"{what} must be a floating-point tensor, got dtype {weight.dtype}")
    if weight.dim() < 1 or weight.shape[0] < 1:
        raise ValueError(f"{what} must have shape (C, ...) with C >= 1 filters, got {tuple(weight.shape)}")
    return weight


def flatten(weight: torch.Tensor) -> torch.Tensor:
    """``(C, ...)`` -> ``(C, D)`` float32/float64 (other float dtypes are computed in float32)."""
    flat = weight.reshape(weight.shape[0], -1) if weight.dim() != 1 else weight.reshape(-1, 1)
    if flat.dtype not in (torch.float32, torch.float64):
        flat = flat.float()
    return flat


def default_eps(dtype: torch.dtype) -> float:
    return 1e-8 if dtype == torch.float32 else 1e-12

