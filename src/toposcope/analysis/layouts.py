"""Post-hoc layouts: a grid for any layer of any trained model (``docs/method.md`` § Layouts).

A :class:`Layout` is a permutation unit -> grid cell (``cell_of_unit[u] = row * cols + col``), fitted
from the units' response profiles after training, for a model trained with or without the
topographic regularizer. Two methods, both ending in an exact one-unit-per-cell assignment
(``scipy.optimize.linear_sum_assignment``):

* ``som``: a self-organizing map with one neuron per grid cell (``minisom``; PCA-initialised,
  Gaussian neighbourhood whose width shrinks linearly from ``max(rows, cols) / 2`` to 1, learning
  rate linearly to 0, ``5 * units`` updates by default), then each unit goes to one neuron by the
  assignment of least total squared distance unit -> neuron weight (Krug et al. 2023's best layout);
* ``assign``: a 2D embedding of the units (Isomap by default: geodesic distances on the
  10-nearest-neighbour graph, then classical MDS; or ``embedding="pca"``, the first two principal
  components), each axis rank-normalised onto one grid axis (the longer grid axis gets the first
  embedding axis), then the assignment of least total squared distance to the cells.

Unit features (``features=``): ``gradnap``: unit ``u``'s GradNAP vector over the groups
(``values[:, u]``, ``(G,)``); ``activations``: row ``u`` of the activation correlation matrix
(from the profile's Gram matrix, ``(C,)``). Features are centred per dimension and divided by one
global standard deviation (so relative magnitudes, which the maps show, are kept); more than
``max_dims`` dimensions are reduced by PCA first.

Determinism and symmetry: the units are first put in a canonical order (lexicographic in their
feature vectors), so a layout depends only on the set of profiles, never on unit indices: shuffling
a model's units gives the same maps (a fitted SOM has no other preferred orientation than what
PCA signs fix; those are pinned too). ``seed`` drives the SOM's sample order.

A layout is fitted on one split and judged on another (:func:`check_fit_split`): judged on the
data it was fitted to, its maps are smooth by construction. The JSON file
``RUN/layouts/<layer>-<method>.json`` holds ``{"layer", "method", "features", "grid": [rows, cols],
"cell_of_unit", "fit_split"}`` plus ``fingerprint`` (a hash of the layer's weights: a layout of
another model, or of another checkpoint, is refused), ``checkpoint``, ``profile``, ``seed`` and
``quality`` (trustworthiness of the grid positions against the feature space).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Iterable, Mapping

import numpy as np

from .._util import read_json, write_json_atomic
from ..grid import Grid, as_grid

__all__ = ["Layout", "LayoutConfig", "LayoutError", "METHODS", "FEATURES", "EMBEDDINGS", "fit_cells", "fit_layout",
           "unit_features", "trustworthiness", "layer_fingerprint", "weight_fingerprint", "load_layouts",
           "load_layout", "apply_layout", "check_fit_split", "identity_layout", "layout_path", "region_in_units",
           "layout_run", "LAYOUT_DIR"]

METHODS = ("som", "assign")
FEATURES = ("gradnap", "activations")
EMBEDDINGS = ("isomap", "pca")
LAYOUT_DIR = "layouts"
#: Per-unit axes of the :class:`~toposcope.analysis.profiles.LayerProfile` arrays that a layout moves.
_UNIT_AXES = {"values": (-1,), "raw": (-1,), "epochs": (1,), "seg_sums": (-1,), "gram": (0, 1), "act_sum": (0,)}


class LayoutError(ValueError):
    """A layout cannot be fitted, read or applied as asked (the message names the file or layer)."""


# ---------------------------------------------------------------------------------------------------
# the layout
# ---------------------------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class Layout:
    """Unit ``u`` of ``layer`` sits at cell ``cell_of_unit[u]`` (``(C,)``, a permutation of
    ``range(grid.size)``; cell ``row * cols + col``)."""

    layer: str
    method: str
    features: str
    grid: Grid
    cell_of_unit: np.ndarray
    fit_split: str | None
    fingerprint: str | None = None
    checkpoint: str | None = None
    profile: str | None = None
    seed: int = 0
    quality: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        grid = as_grid(self.grid)
        object.__setattr__(self, "grid", grid)
        c = np.asarray(self.cell_of_unit)
        if c.ndim != 1 or (c.size and not np.issubdtype(c.dtype, np.integer)):
            raise LayoutError(f"layout of {self.layer!r}: cell_of_unit must be a 1-D list of integers")
        c = c.astype(np.int64)
        if len(c) > grid.size:
            raise LayoutError(f"layout of {self.layer!r}: grid {grid} too small for {len(c)} units "
                              f"(rows * cols must equal the number of units)")
        if len(c) < grid.size:
            raise LayoutError(f"layout of {self.layer!r}: grid {grid} has {grid.size} cells for {len(c)} units "
                              f"(rows * cols must equal the number of units)")
        if not np.array_equal(np.sort(c), np.arange(grid.size)):
            raise LayoutError(f"layout of {self.layer!r}: cell_of_unit is not a permutation of range({grid.size})")
        c.setflags(write=False)
        object.__setattr__(self, "cell_of_unit", c)

    @property
    def units(self) -> int:
        return len(self.cell_of_unit)

    @property
    def unit_of_cell(self) -> np.ndarray:
        """``(C,)``: the unit sitting at each cell (the inverse permutation)."""
        return np.argsort(self.cell_of_unit)

    def positions(self) -> np.ndarray:
        """``(C, 2)`` grid ``(row, col)`` of every unit."""
        return np.stack([self.cell_of_unit // self.grid.cols, self.cell_of_unit % self.grid.cols], axis=1)

    def permute(self, x, axis: int = -1):
        """``x`` with its unit axis ``axis`` (length ``C``) put in cell order (numpy or torch)."""
        if x.shape[axis] != self.units:
            raise LayoutError(f"layout of {self.layer!r} has {self.units} units, the array has "
                              f"{x.shape[axis]} along axis {axis}")
        idx = self.unit_of_cell
        if isinstance(x, np.ndarray):
            return np.take(x, idx, axis=axis)
        import torch

        return torch.index_select(x, axis % x.ndim, torch.as_tensor(idx, device=x.device))

    def permute_weight(self, w, *, check: bool = True):
        """Weight ``(C, ...)`` with its rows in cell order: row ``cell`` is the filter sitting there
        (what the weight ``S̄`` of this layout is computed from). ``check``: refuse a weight whose
        fingerprint differs from the one the layout was fitted to (another model or checkpoint)."""
        if check and self.fingerprint is not None and self.fingerprint.startswith("w:") \
                and weight_fingerprint(w) != self.fingerprint:
            raise LayoutError(f"layout of {self.layer!r} was fitted to other weights (fingerprint "
                              f"{self.fingerprint}, this weight {weight_fingerprint(w)}): a layout of another "
                              f"model or checkpoint")
        return self.permute(w, axis=0)

    def to_dict(self) -> dict:
        return {"layer": self.layer, "method": self.method, "features": self.features,
                "grid": [self.grid.rows, self.grid.cols], "cell_of_unit": self.cell_of_unit.tolist(),
                "fit_split": self.fit_split, "fingerprint": self.fingerprint, "checkpoint": self.checkpoint,
                "profile": self.profile, "seed": self.seed, "quality": self.quality}

    @classmethod
    def from_dict(cls, d: Mapping, where: str = "layout") -> "Layout":
        if not isinstance(d, Mapping):
            raise LayoutError(f"{where}: a layout must be a JSON object")
        missing = [k for k in ("layer", "method", "features", "grid", "cell_of_unit", "fit_split") if k not in d]
        if missing:
            raise LayoutError(f"{where}: not a toposcope layout (missing {', '.join(missing)})")
        try:
            grid = as_grid(d["grid"])
            cells = np.asarray(d["cell_of_unit"])
            return cls(layer=str(d["layer"]), method=str(d["method"]), features=str(d["features"]), grid=grid,
                       cell_of_unit=cells, fit_split=d["fit_split"], fingerprint=d.get("fingerprint"),
                       checkpoint=d.get("checkpoint"), profile=d.get("profile"), seed=int(d.get("seed", 0)),
                       quality=dict(d.get("quality") or {}))
        except LayoutError as e:
            raise LayoutError(f"{where}: {e}") from None
        except (ValueError, TypeError) as e:
            raise LayoutError(f"{where}: bad layout ({e})") from None

    def save(self, path) -> Path:
        return write_json_atomic(path, self.to_dict())


def identity_layout(layer: str, grid, **kw) -> Layout:
    """Unit ``u`` at cell ``u``: the trained (or default) grid, as a layout."""
    g = as_grid(grid)
    return Layout(layer=layer, method="identity", features="none", grid=g, cell_of_unit=np.arange(g.size),
                  fit_split=None, **kw)


# ---------------------------------------------------------------------------------------------------
# fingerprints
# ---------------------------------------------------------------------------------------------------
def _digest(tensors: Iterable) -> str:
    h = hashlib.sha256()
    for t in tensors:
        a = t.detach().cpu().float().contiguous().numpy() if hasattr(t, "detach") else np.asarray(t, np.float32)
        h.update(str(a.shape).encode())
        h.update(np.ascontiguousarray(a, dtype=np.float32).tobytes())
    return h.hexdigest()[:16]


def weight_fingerprint(w) -> str:
    """``"w:<16 hex>"``: a hash of a layer's weight (float32 bytes and shape)."""
    return "w:" + _digest([w])


def layer_fingerprint(model, layer: str) -> str:
    """The fingerprint a layout of ``layer`` stores: its weight's (``model.weight(layer)``, or the
    parameters of ``model.site(layer)`` / of the module that owns it), else all of the model's parameters
    (``"m:<hex>"``)."""
    weight = getattr(model, "weight", None)
    if callable(weight):
        try:
            return weight_fingerprint(weight(layer))
        except (KeyError, AttributeError, LayoutError):
            pass
    params = list(model.site(layer).parameters()) if hasattr(model, "site") else []
    if len(params) == 1:
        return weight_fingerprint(params[0])
    return "m:" + _digest(params or list(model.parameters()))


# ---------------------------------------------------------------------------------------------------
# fitting
# ---------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class LayoutConfig:
    """How a layout is fitted. ``som_iterations``: SOM updates (default ``5 * units``, at least 1000);
    ``som_sigma``: initial neighbourhood width in cells (default ``max(rows, cols) / 2``);
    ``embedding`` (method ``assign``): ``isomap`` (default; ``neighbors``-nearest-neighbour geodesics)
    or ``pca`` (linear: misses curved profile manifolds); ``max_dims``: PCA reduction before fitting."""

    method: str = "som"
    features: str = "gradnap"
    seed: int = 0
    som_iterations: int | None = None
    som_sigma: float | None = None
    som_learning_rate: float = 0.5
    embedding: str = "isomap"
    neighbors: int = 10
    max_dims: int = 24

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise LayoutError(f"layout method must be one of {', '.join(METHODS)}, got {self.method!r}")
        if self.features not in FEATURES:
            raise LayoutError(f"layout features must be one of {', '.join(FEATURES)}, got {self.features!r}")
        if self.som_iterations is not None and int(self.som_iterations) < 1:
            raise LayoutError(f"som_iterations must be >= 1, got {self.som_iterations}")
        if self.som_sigma is not None and not float(self.som_sigma) > 0:
            raise LayoutError(f"som_sigma must be > 0, got {self.som_sigma}")
        if not 0 < float(self.som_learning_rate) <= 10:
            raise LayoutError(f"som_learning_rate must be in (0, 10], got {self.som_learning_rate}")
        if self.embedding not in EMBEDDINGS:
            raise LayoutError(f"layout embedding must be one of {', '.join(EMBEDDINGS)}, got {self.embedding!r}")
        if int(self.neighbors) < 2:
            raise LayoutError(f"neighbors must be >= 2, got {self.neighbors}")
        if int(self.max_dims) < 2:
            raise LayoutError(f"max_dims must be >= 2, got {self.max_dims}")


def _pca(X: np.ndarray, k: int) -> np.ndarray:
    """``(N, k)`` scores of the centred ``X`` on its first ``k`` principal axes (eigenvectors of the
    ``D x D`` scatter matrix), each axis' sign fixed so that its largest-magnitude loading is positive."""
    Xc = X - X.mean(axis=0)
    k = max(1, min(k, *Xc.shape))
    D = Xc.shape[1]
    if D >= 400 and k < D // 4:  # a few leading eigenvectors: Lanczos on X^T X (never formed), full precision
        from scipy.sparse.linalg import LinearOperator, eigsh

        op = LinearOperator((D, D), matvec=lambda v: Xc.T @ (Xc @ v), dtype=np.float64)
        vals, vecs = eigsh(op, k=k, which="LA", tol=0, v0=np.ones(D))
    else:
        vals, vecs = np.linalg.eigh(Xc.T @ Xc)
    vt = vecs[:, np.argsort(vals)[::-1][:k]].T
    sign = np.sign(vt[np.arange(k), np.argmax(np.abs(vt), axis=1)])
    sign[sign == 0] = 1.0
    return Xc @ (vt * sign[:, None]).T


def _prepare(X: np.ndarray, max_dims: int) -> np.ndarray:
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2:
        raise LayoutError(f"unit features must be (units, dims), got shape {X.shape}")
    if not np.isfinite(X).all():
        raise LayoutError("unit features contain NaN or inf")
    X = X - X.mean(axis=0)
    if X.shape[1] > max_dims:
        X = _pca(X, max_dims)
    sd = X.std()
    return X / sd if sd > 0 else X


def _assign(cost: np.ndarray) -> np.ndarray:
    from scipy.optimize import linear_sum_assignment

    rows, cols = linear_sum_assignment(cost)
    out = np.empty(cost.shape[0], dtype=np.int64)
    out[rows] = cols
    return out


def _sqdist(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    d = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * a @ b.T
    return np.maximum(d, 0.0)


def _cells(grid: Grid) -> np.ndarray:
    r, c = np.divmod(np.arange(grid.size), grid.cols)
    return np.stack([r, c], axis=1).astype(np.float64)


def _isomap(X: np.ndarray, neighbors: int) -> np.ndarray:
    """``(N, 2)`` Isomap embedding: geodesic distances on the symmetric ``neighbors``-nearest-neighbour
    graph (Euclidean edge lengths), then classical MDS (top two eigenvectors of the double-centred
    squared distances). Pieces of a disconnected graph are kept apart at 1.5x the largest distance."""
    from scipy.sparse import csr_matrix
    from scipy.sparse.csgraph import shortest_path
    from scipy.sparse.linalg import eigsh

    n = len(X)
    k = min(int(neighbors), n - 1)
    d = _sqdist(X, X)
    np.fill_diagonal(d, np.inf)
    nn = np.argpartition(d, k - 1, axis=1)[:, :k]
    rows = np.repeat(np.arange(n), k)
    w = np.sqrt(d[rows, nn.ravel()]) + 1e-12  # an explicit zero would drop the edge
    A = csr_matrix((w, (rows, nn.ravel())), shape=(n, n))
    D = shortest_path(A.maximum(A.T), method="D", directed=False)
    finite = np.isfinite(D)
    if not finite.all():
        D[~finite] = 1.5 * D[finite].max()
    B = D * D
    B -= B.mean(axis=0, keepdims=True)
    B -= B.mean(axis=1, keepdims=True)
    B *= -0.5
    if n <= 600:
        vals, vecs = np.linalg.eigh(B)
        vals, vecs = vals[-2:], vecs[:, -2:]
    else:
        vals, vecs = eigsh(B, k=2, which="LA", v0=np.random.default_rng(0).standard_normal(n))
    order = np.argsort(vals)[::-1]
    vals, vecs = vals[order], vecs[:, order]
    sign = np.sign(vecs[np.argmax(np.abs(vecs), axis=0), np.arange(2)])
    sign[sign == 0] = 1.0
    return vecs * sign * np.sqrt(np.maximum(vals, 0.0))


def _fit_assign(X: np.ndarray, grid: Grid, cfg: LayoutConfig) -> np.ndarray:
    n = len(X)
    if X.shape[1] < 2:
        X = np.concatenate([X, np.zeros((n, 1))], axis=1)
    E = _isomap(X, cfg.neighbors) if cfg.embedding == "isomap" and n > 3 else _pca(X, 2)
    # rank-normalise each axis onto one grid axis (PC 1 along the longer one)
    u = (np.argsort(np.argsort(E, axis=0, kind="stable"), axis=0, kind="stable") + 0.5) / n
    ur, uc = (u[:, 0], u[:, 1]) if grid.rows >= grid.cols else (u[:, 1], u[:, 0])
    pos = np.stack([ur * grid.rows - 0.5, uc * grid.cols - 0.5], axis=1)
    return _assign(_sqdist(pos, _cells(grid)))


def _fit_som(X: np.ndarray, grid: Grid, cfg: LayoutConfig) -> np.ndarray:
    import warnings

    from minisom import MiniSom

    n = len(X)
    if X.shape[1] < 2:
        X = np.concatenate([X, np.zeros((n, 1))], axis=1)
    iterations = int(cfg.som_iterations) if cfg.som_iterations else max(1000, 5 * n)
    sigma = float(cfg.som_sigma) if cfg.som_sigma else max(1.0, max(grid.rows, grid.cols) / 2.0)
    som = MiniSom(grid.rows, grid.cols, X.shape[1], sigma=sigma, learning_rate=cfg.som_learning_rate,
                  decay_function="linear_decay_to_zero", sigma_decay_function="linear_decay_to_one",
                  neighborhood_function="gaussian", random_seed=int(cfg.seed))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # 1-wide grids: minisom warns that PCA init is degenerate
        som.pca_weights_init(X)
        som.train(X, iterations, random_order=True)
    W = som.get_weights().reshape(grid.size, -1)  # neuron (i, j) -> cell i * cols + j
    return _assign(_sqdist(X, W))


def _check_grid(n: int, grid: Grid) -> None:
    if grid.size < n:
        raise LayoutError(f"grid {grid} too small for {n} units (rows * cols must equal the number of units)")
    if grid.size > n:
        raise LayoutError(f"grid {grid} has {grid.size} cells for {n} units (rows * cols must equal the number "
                          f"of units)")


def fit_cells(X, grid, config: LayoutConfig | None = None) -> np.ndarray:
    """``cell_of_unit (C,)`` for unit features ``X (C, D)`` on ``grid`` (``rows * cols == C``)."""
    cfg = config or LayoutConfig()
    grid = as_grid(grid)
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2 or X.shape[0] < 1:
        raise LayoutError(f"unit features must be (units, dims) with at least one unit, got shape {X.shape}")
    n = X.shape[0]
    _check_grid(n, grid)
    if n == 1:
        return np.zeros(1, dtype=np.int64)
    return _fit_prepared(_prepare(X, int(cfg.max_dims)), grid, cfg)


def _fit_prepared(Xp: np.ndarray, grid: Grid, cfg: LayoutConfig) -> np.ndarray:
    n = len(Xp)
    order = np.lexsort(Xp.T[::-1])  # canonical unit order: the result depends on the profiles only
    Xs = Xp[order]
    cells_sorted = _fit_som(Xs, grid, cfg) if cfg.method == "som" else _fit_assign(Xs, grid, cfg)
    out = np.empty(n, dtype=np.int64)
    out[order] = cells_sorted
    return out


def trustworthiness(X, Y, k: int = 5) -> float:
    """Trustworthiness (Venna & Kaski 2001) of the embedding ``Y (N, d)`` of ``X (N, D)``: 1 when every
    ``k`` nearest neighbour in ``Y`` is among the ``k`` nearest in ``X``; penalties grow with the rank in
    ``X`` of intruders. Same formula as ``sklearn.manifold.trustworthiness``; distance ties are broken
    by unit index."""
    X = np.asarray(X, dtype=np.float64)
    Y = np.asarray(Y, dtype=np.float64)
    n = len(X)
    if len(Y) != n:
        raise ValueError(f"X has {n} points, Y has {len(Y)}")
    if not 1 <= k < n / 2:
        raise ValueError(f"k must be in [1, n/2) = [1, {n / 2}), got {k}")
    dx = _sqdist(X, X)
    np.fill_diagonal(dx, np.inf)
    dy = _sqdist(Y, Y)
    np.fill_diagonal(dy, np.inf)
    rank_x = np.empty((n, n), dtype=np.int64)
    ox = np.argsort(dx, axis=1, kind="stable")
    rank_x[np.arange(n)[:, None], ox] = np.arange(1, n + 1)[None, :]
    ny = np.argsort(dy, axis=1, kind="stable")[:, :k]
    r = rank_x[np.arange(n)[:, None], ny]
    t = np.maximum(r - k, 0).sum()
    return float(1.0 - 2.0 / (n * k * (2.0 * n - 3.0 * k - 1.0)) * t)


def unit_features(profiles, layer: str, features: str = "gradnap") -> np.ndarray:
    """``(C, D)`` feature vector of every unit of ``layer``: GradNAP over groups (``D = G``) or its row of
    the activation correlation matrix (``D = C``)."""
    if layer not in profiles.layers:
        raise LayoutError(f"no layer {layer!r} in the profile; layers: {', '.join(profiles.layers)}")
    lp = profiles.layers[layer]
    if features == "gradnap":
        return np.asarray(lp.values, dtype=np.float64).T
    if features == "activations":
        try:
            from .profiles import activation_correlation
        except ImportError:  # older checkouts: the statistics module's copy
            from .similarity import activation_correlation
        try:
            return activation_correlation(lp)
        except (ValueError, AttributeError) as e:
            raise LayoutError(f"layer {layer!r}: {e}") from None
    raise LayoutError(f"layout features must be one of {', '.join(FEATURES)}, got {features!r}")


def fit_layout(profiles, layer: str, config: LayoutConfig | None = None, *, grid=None, fit_split: str | None = None,
               fingerprint: str | None = None, checkpoint: str | None = None, profile: str | None = None) -> Layout:
    """Fit a :class:`Layout` of ``layer`` from a :class:`~toposcope.analysis.profiles.Profiles`.

    ``grid``: the target grid (default: the most square ``rows x cols = C``, rows >= cols);
    ``fit_split`` defaults to the profile's ``meta["split"]``. ``quality`` records the trustworthiness
    (k = 5) of the grid positions against the (prepared) feature space for layers up to 4096 units.
    """
    cfg = config or LayoutConfig()
    X = unit_features(profiles, layer, cfg.features)
    n = X.shape[0]
    g = Grid.for_channels(n) if grid is None else as_grid(grid)
    _check_grid(n, g)
    Xp = _prepare(X, int(cfg.max_dims))
    cells = _fit_prepared(Xp, g, cfg) if n > 1 else np.zeros(1, dtype=np.int64)
    quality: dict = {}
    if 12 <= n <= 4096:
        pos = np.stack([cells // g.cols, cells % g.cols], axis=1)
        quality = {"trustworthiness": trustworthiness(Xp, pos, 5), "k": 5}
    split = fit_split if fit_split is not None else profiles.meta.get("split")
    return Layout(layer=layer, method=cfg.method, features=cfg.features, grid=g, cell_of_unit=cells,
                  fit_split=split, fingerprint=fingerprint, checkpoint=checkpoint, profile=profile,
                  seed=int(cfg.seed), quality=quality)


# ---------------------------------------------------------------------------------------------------
# files
# ---------------------------------------------------------------------------------------------------
def layout_path(run_dir, layer: str, method: str) -> Path:
    return Path(run_dir) / LAYOUT_DIR / f"{layer}-{method}.json"


def load_layout(path) -> Layout:
    """One ``RUN/layouts/<layer>-<method>.json``."""
    path = Path(path)
    try:
        d = read_json(path)
    except FileNotFoundError:
        raise LayoutError(f"{path}: layout file not found (run `toposcope layout` first)") from None
    except ValueError as e:
        raise LayoutError(str(e)) from None
    return Layout.from_dict(d, where=str(path))


def load_layouts(run_dir, method: str, *, layers: Iterable[str] | None = None, model=None,
                 verify: bool = True) -> dict[str, Layout]:
    """``{layer: Layout}`` from ``RUN/layouts/<layer>-<method>.json``.

    ``verify``: compare each layout's fingerprint with the run's model (``model``, else the run's
    checkpoint named in the layout, when the run folder has one): a layout copied from another model
    or fitted to another checkpoint is refused with :class:`LayoutError`.
    """
    run_dir = Path(run_dir)
    folder = run_dir / LAYOUT_DIR
    suffix = f"-{method}.json"
    files = sorted(folder.glob(f"*{suffix}")) if folder.is_dir() else []
    out: dict[str, Layout] = {}
    for p in files:
        lay = load_layout(p)
        if f"{lay.layer}{suffix}" != p.name or lay.method != method:
            raise LayoutError(f"{p}: holds a {lay.method!r} layout of layer {lay.layer!r}; the file name says "
                              f"{p.name!r}")
        out[lay.layer] = lay
    if layers is not None:
        want = list(layers)
        missing = [n for n in want if n not in out]
        if missing:
            raise LayoutError(f"{folder}: no {method!r} layout for layer(s) {', '.join(missing)}; run "
                              f"`toposcope layout {run_dir} --layer {missing[0]} --method {method}`")
        out = {n: out[n] for n in want}
    if not out:
        have = sorted({p.stem.rsplit("-", 1)[-1] for p in folder.glob("*-*.json")}) if folder.is_dir() else []
        raise LayoutError(f"{folder}: no {method!r} layouts" + (f" (methods there: {', '.join(have)})" if have else "")
                          + f"; run `toposcope layout {run_dir} --method {method}`")
    if verify:
        _verify(run_dir, out, model)
    return out


def _verify(run_dir: Path, layouts: Mapping[str, Layout], model=None) -> None:
    from ..checkpoint import checkpoint_path, load_run

    models: dict = {}
    for n, lay in layouts.items():
        if lay.fingerprint is None:
            continue
        m = model
        if m is None:
            which = lay.checkpoint or "best"
            if which not in models:
                try:
                    if not checkpoint_path(run_dir, which).is_file():
                        models[which] = None
                    else:
                        models[which] = load_run(run_dir, which).model
                except (FileNotFoundError, ValueError):
                    models[which] = None
            m = models[which]
        if m is None:
            continue
        names = getattr(m, "layer_names", ())
        if n not in names:
            raise LayoutError(f"{layout_path(run_dir, n, lay.method)}: layer {n!r} is not a layer of this model "
                              f"(layers: {', '.join(names)})")
        fp = layer_fingerprint(m, n)
        if fp != lay.fingerprint:
            raise LayoutError(f"{layout_path(run_dir, n, lay.method)}: fitted to another model or checkpoint "
                              f"(fingerprint {lay.fingerprint}, this run's {lay.checkpoint or 'best'} checkpoint "
                              f"has {fp}); re-run `toposcope layout {run_dir} --layer {n} --method {lay.method}`")


# ---------------------------------------------------------------------------------------------------
# using a layout
# ---------------------------------------------------------------------------------------------------
def apply_layout(profiles, layouts):
    """A copy of ``profiles`` in which unit ``u`` of every laid-out layer sits at cell
    ``cell_of_unit[u]`` of the layout's grid: every per-unit axis moves (``values``/``raw`` ``(G, C)``,
    ``epochs`` ``(G, C, W)``, ``seg_sums`` ``(S, C)``, ``gram`` rows and columns, ``act_sum``), the
    layer's grid becomes the layout's, and ``meta["layout"]`` records method, features and fit split
    per layer. ``layouts``: ``{layer: Layout}`` or an iterable of layouts; other layers are unchanged.
    """
    if isinstance(layouts, Layout):
        layouts = [layouts]
    items = list(layouts.values()) if isinstance(layouts, Mapping) else list(layouts)
    layers = dict(profiles.layers)
    info = {}
    ck = profiles.meta.get("checkpoint")
    for lay in items:
        if lay.layer not in layers:
            raise LayoutError(f"layout of layer {lay.layer!r}: no such layer in the profile (layers: "
                              f"{', '.join(profiles.layers)})")
        lp = layers[lay.layer]
        C = np.asarray(lp.values).shape[-1]
        if C != lay.units:
            raise LayoutError(f"layout of layer {lay.layer!r} places {lay.units} units; the profile's layer has {C} "
                              f"(a layout of another model)")
        if lay.checkpoint in ("best", "last") and ck in ("best", "last") and ck != lay.checkpoint:
            raise LayoutError(f"layout of layer {lay.layer!r} was fitted to the {lay.checkpoint!r} checkpoint; the "
                              f"profile comes from {ck!r} (another model state)")
        changes = {"grid": lay.grid}
        for name, axes in _UNIT_AXES.items():
            a = getattr(lp, name, None)
            if a is None:
                continue
            a = np.asarray(a)
            for ax in axes:
                a = lay.permute(a, axis=ax)
            changes[name] = a
        layers[lay.layer] = replace(lp, **changes)
        info[lay.layer] = {"method": lay.method, "features": lay.features, "fit_split": lay.fit_split,
                           "grid": [lay.grid.rows, lay.grid.cols]}
    meta = dict(profiles.meta)
    meta["layout"] = {**dict(meta.get("layout") or {}), **info}
    return replace(profiles, layers=layers, meta=meta)


def check_fit_split(layouts, profiles, allow_fit_split: bool = False) -> bool:
    """``True`` when ``profiles`` were computed on (or include) a split some layout was fitted on; then
    :class:`LayoutError` unless ``allow_fit_split`` (and every output must say "judged on the fitting
    split"). A profile of split ``all`` contains every split."""
    items = list(layouts.values()) if isinstance(layouts, Mapping) else list(layouts)
    split = profiles.meta.get("split")
    same = [lay.layer for lay in items if lay.fit_split is not None and split is not None
            and (lay.fit_split == split or "all" in (lay.fit_split, split))]
    if same and not allow_fit_split:
        fits = sorted({str(lay.fit_split) for lay in items if lay.layer in same})
        raise LayoutError(f"layout(s) of {', '.join(same)} were fitted on split {'/'.join(fits)} and the profile is "
                          f"of split {split!r}: maps judged on the fitting split are smooth by construction; "
                          f"profile another split, or pass allow_fit_split (--allow-fit-split) to label the "
                          f"outputs 'judged on the fitting split'")
    return bool(same)


def region_in_units(region: Mapping, layout: Layout) -> dict:
    """A region found on a laid-out map (``region["filters"]``: cells of ``layout.grid``, as in
    ``RUN/maps-<method>/regions.json``) with ``filters`` replaced by the model's unit indices sitting at
    those cells (what an objective on the model needs) and the cells kept as ``cells`` (where to draw)."""
    cells = [int(c) for c in region["filters"]]
    bad = [c for c in cells if not 0 <= c < layout.units]
    if bad:
        raise LayoutError(f"region cells {bad} outside the {layout.grid} layout of {layout.layer!r}")
    units = layout.unit_of_cell[cells]
    return {**dict(region), "filters": [int(u) for u in units], "cells": cells}


# ---------------------------------------------------------------------------------------------------
# the run-folder entry point (``toposcope layout``)
# ---------------------------------------------------------------------------------------------------
def layout_run(run_dir, data=None, *, layer: str | Iterable[str] = "all", method: str = "som",
               features: str = "gradnap", fit_split: str = "train", seed: int = 0, checkpoint: str = "best",
               grid=None, embedding: str = "isomap", batch_size: int = 8, max_utterances: int = 0,
               device: str = "cpu", progress: bool = True) -> dict[str, Layout]:
    """Fit and write ``RUN/layouts/<layer>-<method>.json`` for ``layer`` (a name, a list, or ``"all"``).

    Unit features come from the profile ``RUN/profiles/gradnap-phone-<fit_split>.npz``, computed first
    (on ``data``, the corpus directory) when missing or older than the checkpoint, without per-segment sums
    (``profile_run(keep_segments=False)``: on a training split they would take gigabytes, and a fit does not
    read them). ``grid``: ``(rows,
    cols)`` for a single layer (default: the layer's own grid size, most square). Holds the run lock.
    """
    from ..checkpoint import checkpoint_path, load_run
    from ..runlock import run_lock

    cfg = LayoutConfig(method=method, features=features, seed=seed, embedding=embedding)
    run_dir = Path(run_dir)
    with run_lock(run_dir, "layout"):
        run = load_run(run_dir, checkpoint, device=device)
        model = run.model
        names = list(model.layer_names) if layer == "all" else ([layer] if isinstance(layer, str) else list(layer))
        unknown = [n for n in names if n not in model.layer_names]
        if unknown:
            raise LayoutError(f"{run_dir}: no layer {', '.join(map(repr, unknown))}; layers: "
                              f"{', '.join(model.layer_names)}")
        if grid is not None and len(names) != 1:
            raise LayoutError("a grid can be given for one layer at a time (--layer L)")
        which = run.meta.get("which", checkpoint)
        name = f"gradnap-phone-{fit_split}"
        prof = _fit_profile(run_dir, data, name, fit_split, which, checkpoint_path(run_dir, which),
                            batch_size=batch_size, max_utterances=max_utterances, device=device, progress=progress)
        out = {}
        for n in names:
            lay = fit_layout(prof, n, cfg, grid=grid, fit_split=fit_split, fingerprint=layer_fingerprint(model, n),
                             checkpoint=which, profile=name)
            lay.save(layout_path(run_dir, n, method))
            out[n] = lay
        return out


def _fit_profile(run_dir: Path, data, name: str, split: str, which: str, ckpt: Path, **kw):
    from .profiles import load_profiles

    path = run_dir / "profiles" / f"{name}.npz"
    if path.is_file() and (not ckpt.is_file() or path.stat().st_mtime >= ckpt.stat().st_mtime):
        prof = load_profiles(path)
        if prof.meta.get("split") not in (None, split):
            raise LayoutError(f"{path}: a profile of split {prof.meta.get('split')!r}, expected {split!r}")
        return prof
    if data is None:
        raise LayoutError(f"{path} is missing (or older than the checkpoint): pass the corpus (--data DIR) to "
                          f"compute it on the {split!r} split")
    from .profiles import profile_run

    return profile_run(run_dir, data, split=split, checkpoint=which, method="gradnap", grouping="phone", name=name,
                       batch_size=kw["batch_size"], max_utterances=kw["max_utterances"], device=kw["device"],
                       progress=kw["progress"],
                       keep_segments=False)  # a fit needs the profiles, not the S x C per-segment sums
