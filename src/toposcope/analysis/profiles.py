"""NAPs and GradNAPs: per-group mean responses of every gridded layer (``docs/method.md`` § Profiles, seed §2.2).

For every utterance the model runs once forward; for GradNAPs a target score ``s`` is
backpropagated once to the activations ``A`` (``(batch, C, T_l)``) of all gridded layers at the
same time, giving ``G = ds/dA``. Only the activation gradients are computed
(``torch.autograd.grad(s, [A_1, ..., A_L])``): no weight gradients, so a profile pass is cheaper
than a training step (see ``docs/benchmarks/profiles.md``).

What is summed is decided by three small objects from :mod:`toposcope.analysis.profile_parts`,
chosen by name here at the edge: the **adjustment** (``method=``: ``gradnap`` ``A * G``, ``nap`` ``A``,
``absgrad`` ``|G| * A``; :data:`ADJUSTMENTS`), the **score target** (``target=``: ``predicted`` or
``ctc``; :data:`SCORE_TARGETS`) and the **frame labeller** (``grouping=``: ``phone``, the manifest
segment containing the layer frame's centre time at that layer's own stride, or ``predicted``, the
argmax grapheme at the nearest output frame; :data:`LABELLERS`). :class:`ProfileAccumulator` only sums.

* profile ``P_g[c]`` = mean adjusted activation of channel ``c`` over the frames labelled ``g``,
  from streaming sums and counts (float64). Frames past an utterance's length (batch padding) and
  unlabelled frames are left out.
* baseline ``B[c] = mean_g P_g[c]`` (``baseline="uniform"``, default) or the frame-weighted mean
  (``baseline="frames"``, i.e. the mean over all labelled frames); ``values = P - B``.
* groups: those present (count > 0) at every layer, in :data:`toposcope.phones.PHONES` order
  (or alphabet order); groups seen at some layers only are dropped and listed in ``meta``.
* ERP epochs (``epochs=k > 0``; *ERP epochs of +-k layer frames*, nothing to do with training
  epochs): for every segment (phone segment, or run of one predicted grapheme) the ``2k+1`` layer
  frames around the frame nearest its centre time are averaged per group, giving ``P_g[c, tau]``
  (``L.epochs``, baseline-subtracted, ``L.epoch_counts``); then the map value (``raw``/``values``) is
  its time average and ``counts`` counts segments.
* per-segment sums (grouping ``phone``, with or without ERP epochs): ``Profiles.segments`` (a
  :class:`SegmentTable`: utterance, speaker, label, start, end of each of the ``S`` manifest
  segments of the profiled utterances, in manifest order) and per layer ``seg_sums (S, C)`` (sum of
  the adjusted activation over the layer's valid frames whose centre lies in the segment) and
  ``seg_counts (S,)``. For ``k = 0``, ``raw[g] = seg_sums[label == g].sum(0) /
  seg_counts[label == g].sum()``: maps under relabelled segments need no model pass. This is the only
  state that grows with the corpus: ``S x C x 8`` bytes per layer (e.g. 20 000 segments x 256
  channels = 41 MB per layer).
* activation statistics (every grouping): per layer ``gram (C, C) = sum_t a_t a_t^T`` over the valid
  labelled frames of the *raw* post-ReLU activations ``A``, ``act_sum (C,)``, ``act_count``;
  :func:`activation_correlation` turns them into the Pearson correlation of the channels. Per batch
  the Gram matrix of the batch-centred activations is computed in float32 and merged across batches
  in float64 (Chan, Golub & LeVeque's pairwise update), so correlations keep float32 precision
  relative to the channel variances, not to their (possibly much larger) means.
* batch invariance: the model runs as ``model(feats, lengths)``, which zeroes every layer's
  activations beyond each utterance's valid length before the hook point, so each utterance's
  recorded ``A`` and ``G`` are exactly those it gets when run alone, and a profile does not depend on
  the batching (up to float32 rounding).
* DDP: when ``torch.distributed`` is initialised, each process takes ``utterances[rank::world]``
  (``shard=True``) and every sum and count is ``all_reduce``-d before dividing (the segment table is
  registered from the full utterance list first, so its rows agree across processes).
"""

from __future__ import annotations

import json
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator, Protocol, Sequence, runtime_checkable

import numpy as np
import torch
from torch import nn

from .._util import atomic_write, progress_enabled
from ..grid import Grid
from ..labels import frame_times, label_frames
from .profile_parts import (ADJUSTMENTS, GRAPHEME_GROUPS, LABELLERS, SCORE_TARGETS, Adjustment, FrameLabeller,
                            ProfileError, ScoreTarget, output_frame_times, pick)

__all__ = ["LayerProfile", "Profiles", "SegmentTable", "ProfileAccumulator", "ProfileableModel", "ProfileError",
           "compute_profiles", "profile_run", "load_profiles", "activation_correlation", "subtract_baseline",
           "layer_lengths", "layer_frame_groups", "pick_split", "profile_path", "METHODS", "GROUPINGS",
           "SCORE_TARGETS", "ADJUSTMENTS", "LABELLERS", "BASELINES", "GRAPHEME_GROUPS", "profile_name"]

METHODS = tuple(ADJUSTMENTS)
GROUPINGS = tuple(LABELLERS)
BASELINES = ("uniform", "frames")
CHECKPOINTS = ("best", "last")


def profile_name(method: str, grouping: str) -> str:
    """Default file stem ``<method>-<grouping>`` (e.g. ``gradnap-phone``)."""
    return f"{method}-{grouping}"


def profile_path(run_dir, name: str) -> Path:
    """``RUN/profiles/<name>.npz``."""
    return Path(run_dir) / "profiles" / f"{name}.npz"


# ---------------------------------------------------------------------------------------------------
# what a model must offer
# ---------------------------------------------------------------------------------------------------
@runtime_checkable
class ProfileableModel(Protocol):
    """A model profiles (and maps, layouts, optimal inputs) can work with.

    :class:`toposcope.model.Wav2Letter` satisfies it; the layouts' adapter wraps any ``nn.Module``
    into it. ``geometry(name)`` lists ``(kernel, stride, left_pad)`` of every conv from the input up to
    and including ``name`` (``"output"`` included), from which frame times and valid lengths follow.
    """

    layer_names: tuple[str, ...]  # gridded layers, input to output
    grids: dict[str, Grid]

    def site(self, name: str) -> nn.Module:
        """Hook point whose forward output is the layer's activation ``(batch, C, T_l)``."""

    def geometry(self, name: str) -> list[tuple[int, int, int]]:
        """``[(kernel, stride, left_pad), ...]`` from the input to layer ``name`` (or ``"output"``)."""

    def forward(self, feats: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """``feats (B, n_mels, T)``, ``lengths (B,)`` -> log-probs ``(B, T_out, K)``; with ``lengths``,
        activations beyond each utterance's valid length are zero at every layer (batch invariance)."""


# ---------------------------------------------------------------------------------------------------
# typed result
# ---------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SegmentTable:
    """The ``S`` manifest segments behind per-segment sums, index-aligned with ``seg_sums`` rows.

    ``utt``, ``speaker``, ``label``: ``(S,)`` str; ``start``, ``end``: ``(S,)`` float seconds."""

    utt: np.ndarray
    speaker: np.ndarray
    label: np.ndarray
    start: np.ndarray
    end: np.ndarray

    def __post_init__(self):
        for k in ("utt", "speaker", "label"):
            object.__setattr__(self, k, np.asarray(getattr(self, k), dtype=str).reshape(-1))
        for k in ("start", "end"):
            object.__setattr__(self, k, np.asarray(getattr(self, k), dtype=np.float64).reshape(-1))
        n = {k: len(getattr(self, k)) for k in ("utt", "speaker", "label", "start", "end")}
        if len(set(n.values())) != 1:
            raise ProfileError(f"segment table columns differ in length: {n}")

    def __len__(self) -> int:
        return len(self.label)

    @classmethod
    def from_utterances(cls, utterances: Iterable) -> "SegmentTable":
        """Every phone segment of ``utterances``, in order."""
        rows = [(u.id, getattr(u, "speaker", ""), lab, s, e) for u in utterances for s, e, lab in u.phones]
        cols = list(zip(*rows)) if rows else [[]] * 5
        return cls(*(np.asarray(c) for c in cols))


@dataclass
class LayerProfile:
    """One layer's profiles. ``values``/``raw``: ``(G, C)``; ``counts``: ``(G,)``;
    ``epochs``: ``(G, C, 2k+1)`` baseline-subtracted, ``epoch_counts``: ``(G, 2k+1)`` (ERP epochs only);
    ``seg_sums``: ``(S, C)`` float64, ``seg_counts``: ``(S,)`` layer frames (grouping ``phone``);
    ``gram``: ``(C, C)`` float64 ``sum a a^T`` of the raw activations over the valid labelled frames,
    ``act_sum``: ``(C,)``, ``act_count``: frames. Fields of data a file lacks (older files) are ``None``."""

    values: np.ndarray
    raw: np.ndarray
    counts: np.ndarray
    grid: Grid
    epochs: np.ndarray | None = None
    epoch_counts: np.ndarray | None = None
    seg_sums: np.ndarray | None = None
    seg_counts: np.ndarray | None = None
    gram: np.ndarray | None = None
    act_sum: np.ndarray | None = None
    act_count: int | None = None

    def maps(self, which: str = "values") -> np.ndarray:
        """``(G, rows, cols)`` on-grid maps of ``values`` (or ``raw``)."""
        return self.grid.to_map(getattr(self, which))


def activation_correlation(lp: LayerProfile) -> np.ndarray:
    """``(C, C)`` Pearson correlation of the layer's channels over the profiled frames (from ``gram``,
    ``act_sum``, ``act_count``). A constant channel (variance <= 1e-12 of its mean square, or never
    seen) correlates 0 with every other channel; the diagonal is 1."""
    if lp.gram is None or lp.act_sum is None or lp.act_count is None:
        raise ProfileError("these profiles hold no activation Gram matrix (written by an older version); "
                           "re-run `toposcope profile` to compute activation correlations")
    C = len(lp.act_sum)
    n = int(lp.act_count)
    if n <= 0:
        return np.eye(C)
    mean = np.asarray(lp.act_sum, dtype=np.float64) / n
    second = np.asarray(lp.gram, dtype=np.float64) / n
    cov = second - np.outer(mean, mean)
    var = np.diag(cov).copy()
    live = var > 1e-12 * np.maximum(np.diag(second), np.finfo(np.float64).tiny)
    sd = np.where(live, np.sqrt(np.where(live, var, 1.0)), np.inf)
    corr = np.clip(cov / np.outer(sd, sd), -1.0, 1.0)
    corr[~live, :] = 0.0
    corr[:, ~live] = 0.0
    np.fill_diagonal(corr, 1.0)
    return corr


@dataclass
class Profiles:
    """Profiles of every gridded layer for one method/grouping (the ``profiles/<name>.npz`` file).

    ``segments``: the :class:`SegmentTable` of the per-segment sums (grouping ``phone``), else ``None``.
    ``meta``: ``run``, ``corpus``, ``split``, ``checkpoint`` (``"best"``/``"last"``), ``n_utterances``,
    ``epochs_k``, ``dropped_groups`` (and more)."""

    groups: tuple[str, ...]
    method: str
    grouping: str
    layers: dict[str, LayerProfile]
    target: str = "predicted"
    baseline: str = "uniform"
    meta: dict = field(default_factory=dict)
    segments: SegmentTable | None = None

    @property
    def name(self) -> str:
        return profile_name(self.method, self.grouping)

    @property
    def layer_names(self) -> tuple[str, ...]:
        return tuple(self.layers)

    def __getitem__(self, layer: str) -> LayerProfile:
        try:
            return self.layers[layer]
        except KeyError:
            raise KeyError(f"no layer {layer!r} in these profiles; layers: {', '.join(self.layers)}") from None

    def group_index(self, group: str) -> int:
        try:
            return self.groups.index(group)
        except ValueError:
            raise KeyError(f"no group {group!r}; groups: {', '.join(self.groups)}") from None

    def map(self, layer: str, group: str, which: str = "values") -> np.ndarray:
        """``(rows, cols)`` on-grid map of one group."""
        return self[layer].maps(which)[self.group_index(group)]

    def save(self, path) -> Path:
        """Write the ``.npz`` contract atomically (temp file + rename)."""
        path = Path(path)
        arrays: dict[str, np.ndarray] = {
            "groups": np.array(self.groups, dtype=str), "method": np.array(self.method),
            "grouping": np.array(self.grouping), "target": np.array(self.target),
            "baseline": np.array(self.baseline), "layers": np.array(list(self.layers), dtype=str),
            "meta": np.array(json.dumps(self.meta)),
        }
        if self.segments is not None:
            for k in ("utt", "speaker", "label", "start", "end"):
                arrays[f"segments.{k}"] = getattr(self.segments, k)
        for n, lp in self.layers.items():
            arrays[f"{n}.values"] = np.asarray(lp.values, dtype=np.float64)
            arrays[f"{n}.raw"] = np.asarray(lp.raw, dtype=np.float64)
            arrays[f"{n}.counts"] = np.asarray(lp.counts, dtype=np.int64)
            arrays[f"{n}.grid"] = np.array([lp.grid.rows, lp.grid.cols], dtype=np.int64)
            if lp.epochs is not None:
                arrays[f"{n}.epochs"] = np.asarray(lp.epochs, dtype=np.float64)
                arrays[f"{n}.epoch_counts"] = np.asarray(lp.epoch_counts, dtype=np.int64)
            if lp.seg_sums is not None:
                arrays[f"{n}.seg_sums"] = np.asarray(lp.seg_sums, dtype=np.float64)
                arrays[f"{n}.seg_counts"] = np.asarray(lp.seg_counts, dtype=np.int64)
            if lp.gram is not None:
                arrays[f"{n}.gram"] = np.asarray(lp.gram, dtype=np.float64)
                arrays[f"{n}.act_sum"] = np.asarray(lp.act_sum, dtype=np.float64)
                arrays[f"{n}.act_count"] = np.array(int(lp.act_count), dtype=np.int64)
        atomic_write(path, lambda f: np.savez(f, **arrays))
        return path


def load_profiles(path) -> Profiles:
    """Read a ``profiles/<name>.npz`` written by :meth:`Profiles.save` (clear errors otherwise).

    Files written before per-segment sums and Gram matrices existed load with those fields ``None``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: profiles file not found (run `toposcope profile` first)")
    try:
        with np.load(path, allow_pickle=False) as z:
            d = {k: z[k] for k in z.files}
    except Exception as e:  # zip/format errors of several kinds
        raise ProfileError(f"{path}: unreadable profiles file ({type(e).__name__}: {e})") from None
    for k in ("groups", "method", "grouping"):
        if k not in d:
            raise ProfileError(f"{path}: not a toposcope profiles file (missing {k!r})")
    groups = tuple(str(g) for g in d["groups"])
    if "layers" in d:
        names = [str(n) for n in d["layers"]]
    else:  # files written by other tools: every "<L>.values" key
        names = sorted({k[:-len(".values")] for k in d if k.endswith(".values")})
    segments = None
    if "segments.label" in d:
        try:
            segments = SegmentTable(*(d[f"segments.{k}"] for k in ("utt", "speaker", "label", "start", "end")))
        except KeyError as e:
            raise ProfileError(f"{path}: segment table lacks {e.args[0]!r}") from None
        except ProfileError as e:
            raise ProfileError(f"{path}: {e}") from None
    layers = {}
    for n in names:
        try:
            rows, cols = (int(v) for v in d[f"{n}.grid"])
            lp = LayerProfile(values=d[f"{n}.values"], raw=d[f"{n}.raw"], counts=d[f"{n}.counts"],
                              grid=Grid(rows, cols), epochs=d.get(f"{n}.epochs"),
                              epoch_counts=d.get(f"{n}.epoch_counts"), seg_sums=d.get(f"{n}.seg_sums"),
                              seg_counts=d.get(f"{n}.seg_counts"), gram=d.get(f"{n}.gram"),
                              act_sum=d.get(f"{n}.act_sum"),
                              act_count=int(d[f"{n}.act_count"]) if f"{n}.act_count" in d else None)
        except KeyError as e:
            raise ProfileError(f"{path}: layer {n!r} lacks {e.args[0]!r}") from None
        C = lp.grid.size
        if lp.values.shape != (len(groups), C) or lp.raw.shape != lp.values.shape \
                or lp.counts.shape != (len(groups),):
            raise ProfileError(f"{path}: layer {n!r} arrays do not match {len(groups)} groups x {C} filters")
        if lp.seg_sums is not None:
            S = len(segments) if segments is not None else -1
            if lp.seg_sums.shape != (S, C) or lp.seg_counts is None or lp.seg_counts.shape != (S,):
                raise ProfileError(f"{path}: layer {n!r} per-segment sums do not match the segment table "
                                   f"({S} segments x {C} filters)")
        if lp.gram is not None and (lp.gram.shape != (C, C) or lp.act_sum is None or lp.act_sum.shape != (C,)
                                    or lp.act_count is None):
            raise ProfileError(f"{path}: layer {n!r} Gram matrix is not {C} x {C} with act_sum and act_count")
        layers[n] = lp
    meta = json.loads(str(d["meta"])) if "meta" in d else {}
    return Profiles(groups=groups, method=str(d["method"]), grouping=str(d["grouping"]), layers=layers,
                    target=str(d.get("target", "predicted")), baseline=str(d.get("baseline", "uniform")),
                    meta=meta, segments=segments)


# ---------------------------------------------------------------------------------------------------
# small pieces (tested on their own)
# ---------------------------------------------------------------------------------------------------
def subtract_baseline(raw: np.ndarray, counts: np.ndarray, baseline: str = "uniform") -> np.ndarray:
    """``raw (G, C[, tau])`` minus ``B[c]``: mean over groups (``uniform``) or count-weighted (``frames``)."""
    raw = np.asarray(raw, dtype=np.float64)
    if baseline == "uniform":
        b = raw.mean(axis=0, keepdims=True)
    elif baseline == "frames":
        w = np.asarray(counts, dtype=np.float64)
        if w.sum() <= 0:
            raise ProfileError("frame-weighted baseline needs at least one counted frame")
        w = w.reshape((-1,) + (1,) * (raw.ndim - 1)) / w.sum()
        b = (w * raw).sum(axis=0, keepdims=True)
    else:
        raise ProfileError(f"baseline must be one of {', '.join(BASELINES)}, got {baseline!r}")
    return raw - b


def layer_lengths(lengths: torch.Tensor, geometry: Sequence[tuple[int, int, int]]) -> torch.Tensor:
    """Valid frames after the convs in ``geometry`` (``(kernel, stride, left_pad)``, symmetric padding)."""
    out = torch.as_tensor(lengths).clone()
    for k, s, p in geometry:
        out = torch.div(out + 2 * p - k, s, rounding_mode="floor") + 1
    return out.clamp_min(0)


def layer_frame_groups(n_frames: int, geometry, segments, groups, hop: int, sample_rate: int) -> np.ndarray:
    """Group index (or ``-1``) of each of ``n_frames`` layer frames: the segment containing its centre."""
    return label_frames(frame_times(n_frames, geometry, hop, sample_rate), segments, groups)


def _unwrap(model):
    return model.module if hasattr(model, "module") and not hasattr(model, "layer_names") else model


# ---------------------------------------------------------------------------------------------------
# the streaming accumulator
# ---------------------------------------------------------------------------------------------------
class ProfileAccumulator:
    """Streaming sums and counts of adjusted activations, for every gridded layer.

    ``adjustment``, ``target``, ``labeller``: objects of :mod:`toposcope.analysis.profile_parts` (or
    their registry names). ``epochs``: ERP epochs of ``+-k`` layer frames (0: off; not training epochs).
    ``update(feats (B, n_mels, T), lengths (B,), utterances)`` runs one forward (+ one backward for
    gradient adjustments) and adds, per layer ``L``, to ``sums[L] (G_all[*W], C)`` / ``counts[L]``,
    the per-segment sums (labellers with ``segment_rows``, unless ``segments=False``), the activation Gram
    matrix, sum and count (float64/int64, on the model's device); :meth:`result` reduces across processes
    (DDP) and divides.
    Per batch, frames are summed per *unit* (a segment, or a group) by one batched matmul of the
    ``(B, C, T)`` activations with a ``(B, T, U)`` one-hot (no Python loop over frames); units are then
    added to their groups and segment rows.
    """

    def __init__(self, model, *, hop: int, sample_rate: int, adjustment: Adjustment | str = "gradnap",
                 target: ScoreTarget | str = "predicted", labeller: FrameLabeller | str = "phone",
                 baseline: str = "uniform", epochs: int = 0, layers: Sequence[str] | None = None,
                 segments: bool = True):
        self.adjustment = pick(ADJUSTMENTS, adjustment, "method")
        self.target = pick(SCORE_TARGETS, target, "target")
        self.labeller = pick(LABELLERS, labeller, "grouping")
        self.keep_segments = bool(segments) and bool(self.labeller.segment_rows)  # per-segment sums kept
        if baseline not in BASELINES:
            raise ProfileError(f"baseline must be one of {', '.join(BASELINES)}, got {baseline!r}")
        if int(epochs) < 0:
            raise ProfileError(f"ERP epochs (+-k frames) must be >= 0, got {epochs}")
        self.model = _unwrap(model)
        self.layers = tuple(layers) if layers is not None else tuple(self.model.layer_names)
        for n in self.layers:
            if n not in self.model.grids:
                raise ProfileError(f"layer {n!r} has no grid; gridded layers: {', '.join(self.model.layer_names)}")
        self.hop, self.sr = int(hop), int(sample_rate)
        self.baseline = baseline
        self.k = int(epochs)
        self.all_groups = tuple(self.labeller.groups)
        self.geom = {n: list(self.model.geometry(n)) for n in self.layers}
        self.out_geom = list(self.model.geometry("output"))
        self._times: dict[tuple[str, int], np.ndarray] = {}
        self.device = next(self.model.parameters()).device
        G, W = len(self.all_groups), 2 * self.k + 1
        size = {n: self.model.grids[n].size for n in self.layers}
        f64, i64 = dict(dtype=torch.float64, device=self.device), dict(dtype=torch.int64, device=self.device)
        self.sums = {n: torch.zeros(G * W if self.k else G, size[n], **f64) for n in self.layers}
        self.counts = {n: torch.zeros(G * W if self.k else G, **i64) for n in self.layers}
        # activation statistics: centred Gram (merged in float64), sum, count
        self._cgram = {n: torch.zeros(size[n], size[n], **f64) for n in self.layers}
        self.act_sum = {n: torch.zeros(size[n], **f64) for n in self.layers}
        self.act_count = {n: 0 for n in self.layers}
        # per-segment sums (rows grow as utterances are registered)
        self._seg_rows: dict[str, tuple[int, int]] = {}  # utterance id -> (first row, n segments)
        self._seg_cols: list[list] = [[], [], [], [], []]  # utt, speaker, label, start, end
        self.seg_sums = {n: torch.zeros(0, size[n], **f64) for n in self.layers}
        self.seg_counts = {n: torch.zeros(0, **i64) for n in self.layers}
        self.n_utterances = 0
        self.target_left_out = 0

    # -- segments ---------------------------------------------------------------------------------
    @property
    def n_segments(self) -> int:
        return len(self._seg_cols[2])

    def register(self, utterances: Iterable) -> np.ndarray:
        """First segment-table row of each utterance (registering new ones, in order). Registering the
        full utterance list before sharding makes the table the same in every DDP process."""
        first = []
        for u in utterances:
            if u.id not in self._seg_rows:
                self._seg_rows[u.id] = (self.n_segments, len(u.phones))
                spk = getattr(u, "speaker", "")
                for s, e, lab in u.phones:
                    for col, v in zip(self._seg_cols, (u.id, spk, lab, s, e)):
                        col.append(v)
            first.append(self._seg_rows[u.id][0])
        S = self.n_segments
        for n in self.layers:
            cap = self.seg_sums[n].shape[0]
            if S > cap:  # grow geometrically: amortised O(S x C) copying
                new = max(S, 2 * cap, 256)
                grown = torch.zeros(new, self.seg_sums[n].shape[1], dtype=torch.float64, device=self.device)
                grown[:cap] = self.seg_sums[n]
                self.seg_sums[n] = grown
                c = torch.zeros(new, dtype=torch.int64, device=self.device)
                c[:cap] = self.seg_counts[n]
                self.seg_counts[n] = c
        return np.asarray(first, dtype=np.int64)

    def segment_table(self) -> SegmentTable:
        return SegmentTable(*(np.asarray(c) for c in self._seg_cols)) if self.n_segments else \
            SegmentTable(*(np.array([], dtype=t) for t in (str, str, str, float, float)))

    # -- per batch --------------------------------------------------------------------------------
    def _frame_times(self, name: str, n: int) -> np.ndarray:
        key = (name, n)
        if key not in self._times:
            self._times[key] = frame_times(n, self.geom[name], self.hop, self.sr)
        return self._times[key]

    def update(self, feats: torch.Tensor, lengths: torch.Tensor, utterances: Sequence) -> None:
        """Add one right-padded batch: ``feats (B, n_mels, T)``, ``lengths (B,)`` feature frames."""
        from ..hooks import record

        model = self.model
        feats = feats.to(self.device)
        lengths = torch.as_tensor(lengths).to(self.device)
        if feats.shape[0] != len(utterances) or lengths.shape[0] != len(utterances):
            raise ProfileError(f"batch of {feats.shape[0]} feature rows, {lengths.shape[0]} lengths and "
                               f"{len(utterances)} utterances")
        grad = self.adjustment.needs_grad
        with torch.enable_grad() if grad else torch.no_grad():
            if grad:
                feats = feats.detach().requires_grad_(True)  # a graph even if parameters are frozen
            with record(model, self.layers, detach=not grad) as rec:
                logp = model(feats, lengths)  # (B, T_o, K); padding masked at every layer
            acts = [rec.acts[n] for n in self.layers]
            out_len = layer_lengths(lengths, self.out_geom).clamp(max=logp.shape[1])
            grads = [None] * len(acts)
            if grad:
                score, left_out = self.target(logp, out_len, utterances)
                self.target_left_out += left_out
                grads = torch.autograd.grad(score, acts)
        if self.labeller.needs_prediction:
            out_times, step = output_frame_times(logp.shape[1], self.out_geom, self.hop, self.sr)
            pred = logp.detach().argmax(dim=-1).cpu().numpy()
        else:
            out_times, step, pred = None, 0.0, None
        labels = self.labeller.label(utterances, pred, out_len.cpu().numpy(), out_times, step)
        first_row = self.register(utterances) if self.keep_segments else None
        segments = labels.segments if self.k else None
        with torch.no_grad():
            for i, n in enumerate(self.layers):
                a = acts[i].detach()
                x = self.adjustment(a, None if grads[i] is None else grads[i].detach())
                B, C, T = x.shape
                n_len = layer_lengths(lengths, self.geom[n]).clamp(max=T).cpu().numpy()
                times = self._frame_times(n, T)
                units, unit_group = labels.frame_units(times, n_len)  # (B, T), (B, U)
                frame_group = np.where(units >= 0, np.take_along_axis(unit_group, np.maximum(units, 0), 1), -1)
                self._add_activation_stats(n, a, torch.from_numpy(frame_group >= 0).to(self.device))
                if self.k:
                    self._add_epochs(n, x.permute(0, 2, 1).reshape(B * T, C), T, times, n_len, segments)
                    if first_row is None:
                        continue
                # per-unit sums: (B, C, T) @ one-hot (B, T, U) in float32, accumulated in float64
                U = unit_group.shape[1]
                onehot = torch.zeros(B, T, U + 1, dtype=x.dtype, device=self.device)
                onehot.scatter_(2, (torch.from_numpy(units).to(self.device) % (U + 1))[..., None], 1.0)
                onehot = onehot[..., :U]  # unit -1 -> column U, dropped
                unit_sums = torch.bmm(x, onehot).permute(0, 2, 1).reshape(B * U, C).double()
                unit_counts = onehot.sum(1).round().long().reshape(B * U)
                if not self.k:
                    g = torch.from_numpy(np.ascontiguousarray(unit_group).reshape(B * U)).to(self.device)
                    keep = g >= 0
                    self.sums[n].index_add_(0, g[keep], unit_sums[keep])
                    self.counts[n].index_add_(0, g[keep], unit_counts[keep])
                if first_row is not None:
                    n_seg = np.array([self._seg_rows[u.id][1] for u in utterances])
                    u_idx = np.arange(U)[None, :]
                    row = np.where(u_idx < n_seg[:, None], first_row[:, None] + u_idx, -1).reshape(B * U)
                    row = torch.from_numpy(row).to(self.device)
                    keep = row >= 0
                    self.seg_sums[n].index_add_(0, row[keep], unit_sums[keep])
                    self.seg_counts[n].index_add_(0, row[keep], unit_counts[keep])
        self.n_utterances += len(utterances)

    def _add_activation_stats(self, n: str, a: torch.Tensor, labelled: torch.Tensor) -> None:
        """Merge one batch's ``(B, C, T)`` raw activations at the ``labelled (B, T)`` frames into the
        running centred Gram matrix (float32 per batch, float64 across batches), sum and count."""
        cols = torch.nonzero(labelled.reshape(-1)).squeeze(1)  # labelled frames of the (B*T) batch
        m = len(cols)
        if not m:
            return
        sel = a.permute(1, 0, 2).reshape(a.shape[1], -1)[:, cols]  # (C, m): only labelled frames
        s = sel.sum(1, dtype=torch.float64)  # (C,)
        mean_b = s / m
        sel -= mean_b.to(a.dtype)[:, None]
        cg = (sel @ sel.T).double()
        # the float32 centring used mean_b rounded to float32: correct the Gram for that offset
        r = sel.sum(1, dtype=torch.float64)  # = m * (mean_b - float32(mean_b)), tiny
        cg -= torch.outer(r, r) / m
        k = self.act_count[n]
        if k:
            d = mean_b - self.act_sum[n] / k
            cg += torch.outer(d, d) * (k * m / (k + m))
        self._cgram[n] += cg
        self.act_sum[n] += s
        self.act_count[n] = k + m

    def _add_epochs(self, n: str, flat: torch.Tensor, T: int, times: np.ndarray, n_len, segments) -> None:
        """ERP epochs: ``2k+1`` frames around the frame nearest each segment's centre time."""
        index = {g: i for i, g in enumerate(self.all_groups)}
        W = 2 * self.k + 1
        rows, slots = [], []
        taus = np.arange(-self.k, self.k + 1)
        for b, segs in enumerate(segments):
            L = int(n_len[b])
            if L == 0:
                continue
            for s, e, lab in segs:
                g = index.get(lab)
                if g is None:
                    continue
                t0 = int(np.argmin(np.abs(times[:L] - (s + e) / 2)))
                tt = t0 + taus
                ok = (tt >= 0) & (tt < L)
                rows.append(b * T + tt[ok])
                slots.append(g * W + (taus[ok] + self.k))
        if not rows:
            return
        r = torch.from_numpy(np.concatenate(rows)).to(self.device)
        sl = torch.from_numpy(np.concatenate(slots)).to(self.device)
        self.sums[n].index_add_(0, sl, flat[r].double())
        self.counts[n] += torch.bincount(sl, minlength=len(self.all_groups) * W)

    # -- result -----------------------------------------------------------------------------------
    def _gram(self, n: str) -> torch.Tensor:
        """``sum a a^T`` over the counted frames (from the centred Gram, the sum and the count)."""
        k = self.act_count[n]
        return self._cgram[n] + (torch.outer(self.act_sum[n], self.act_sum[n]) / k if k else 0.0)

    def reduce(self) -> None:
        """All-reduce sums and counts across processes when ``torch.distributed`` is initialised."""
        import torch.distributed as dist

        if not (dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
            return
        if self.keep_segments:  # every process must hold the same segment table
            key = zlib.crc32("\n".join(self._seg_rows).encode()) ^ (self.n_segments << 32)
            t = torch.tensor([key, -key], dtype=torch.int64, device=self.device)
            dist.all_reduce(t, op=dist.ReduceOp.MAX)
            if int(t[0]) != -int(t[1]):
                raise ProfileError("per-segment sums: the processes registered different utterances; call "
                                   "register(all utterances) in every process before sharding")
        for n in self.layers:
            dist.all_reduce(self.sums[n])
            dist.all_reduce(self.counts[n])
            if self.keep_segments:
                S = self.n_segments
                dist.all_reduce(self.seg_sums[n][:S])
                dist.all_reduce(self.seg_counts[n][:S])
            gram = self._gram(n)
            cnt = torch.tensor([self.act_count[n]], dtype=torch.int64, device=self.device)
            for t in (gram, self.act_sum[n], cnt):
                dist.all_reduce(t)
            k = self.act_count[n] = int(cnt[0])
            self._cgram[n] = gram - (torch.outer(self.act_sum[n], self.act_sum[n]) / k if k else 0.0)
        t = torch.tensor([self.n_utterances, self.target_left_out], dtype=torch.int64, device=self.device)
        dist.all_reduce(t)
        self.n_utterances, self.target_left_out = int(t[0]), int(t[1])

    def result(self, meta: dict | None = None, *, reduce: bool = True) -> Profiles:
        if reduce:
            self.reduce()
        G, W = len(self.all_groups), 2 * self.k + 1
        sums = {n: self.sums[n].cpu().numpy() for n in self.layers}
        counts = {n: self.counts[n].cpu().numpy() for n in self.layers}
        if self.k:
            sums = {n: s.reshape(G, W, -1).transpose(0, 2, 1) for n, s in sums.items()}  # (G, C, W)
            counts = {n: c.reshape(G, W) for n, c in counts.items()}
            seg_counts = {n: c[:, self.k] for n, c in counts.items()}  # every epoch has its centre frame
        else:
            seg_counts = counts
        present = np.all(np.stack([seg_counts[n] > 0 for n in self.layers]), axis=0)
        somewhere = np.any(np.stack([seg_counts[n] > 0 for n in self.layers]), axis=0)
        keep = np.flatnonzero(present)
        if not len(keep):
            raise ProfileError("no labelled frames: no group was seen at every layer (are the phone "
                               "alignments inside the audio, and is the data non-empty?)")
        S = self.n_segments
        layers = {}
        for n in self.layers:
            grid = self.model.grids[n]
            extra = dict(gram=self._gram(n).cpu().numpy(), act_sum=self.act_sum[n].cpu().numpy(),
                         act_count=int(self.act_count[n]))
            if self.keep_segments:
                extra.update(seg_sums=self.seg_sums[n][:S].cpu().numpy(),
                             seg_counts=self.seg_counts[n][:S].cpu().numpy())
            if self.k:
                c = counts[n][keep]  # (G', W)
                ep_raw = sums[n][keep] / np.maximum(c, 1)[:, None, :]
                ep_raw[np.broadcast_to((c == 0)[:, None, :], ep_raw.shape)] = np.nan
                raw = np.nanmean(ep_raw, axis=2)  # time average over the epoch
                base = raw - subtract_baseline(raw, seg_counts[n][keep], self.baseline)  # (1, C)
                layers[n] = LayerProfile(values=raw - base, raw=raw, counts=seg_counts[n][keep].astype(np.int64),
                                         grid=grid, epochs=ep_raw - base[..., None], epoch_counts=c.astype(np.int64),
                                         **extra)
            else:
                c = counts[n][keep]
                raw = sums[n][keep] / c[:, None]
                layers[n] = LayerProfile(values=subtract_baseline(raw, c, self.baseline), raw=raw,
                                         counts=c.astype(np.int64), grid=grid, **extra)
        m = dict(meta or {})
        m.update({"n_utterances": self.n_utterances, "epochs_k": self.k,
                  "dropped_groups": [self.all_groups[i] for i in np.flatnonzero(somewhere & ~present)]})
        key = getattr(self.target, "left_out_key", None)  # e.g. "ctc_infeasible_utterances"
        if key:
            m[key] = self.target_left_out
        return Profiles(groups=tuple(self.all_groups[i] for i in keep), method=self.adjustment.name,
                        grouping=self.labeller.name, layers=layers, target=self.target.name,
                        baseline=self.baseline, meta=m,
                        segments=self.segment_table() if self.keep_segments else None)


# ---------------------------------------------------------------------------------------------------
# the whole pass
# ---------------------------------------------------------------------------------------------------
def iter_batches(corpus, utterances: Sequence, features, batch_size: int = 8
                 ) -> Iterator[tuple[torch.Tensor, torch.Tensor, list]]:
    """Length-sorted padded batches ``(feats (B, n_mels, T), lengths (B,), utterances)``, features
    computed per batch on the fly (so memory does not grow with the corpus): the project's one analysis
    feature loader, :func:`toposcope.data.iter_feature_batches`."""
    from ..data import iter_feature_batches

    yield from iter_feature_batches(corpus, utterances, features, batch_size)


def compute_profiles(model, corpus, utterances: Iterable | None = None, *, features=None,
                     method: str | Adjustment = "gradnap", grouping: str | FrameLabeller = "phone",
                     target: str | ScoreTarget = "predicted", baseline: str = "uniform", epochs: int = 0,
                     layers: Sequence[str] | None = None, batch_size: int = 8, shard: bool = True,
                     progress: bool = True, meta: dict | None = None, segments: bool = True) -> Profiles:
    """Profiles of every gridded layer of ``model`` over ``utterances`` (default: all of ``corpus``).

    ``model``: a :class:`ProfileableModel` (e.g. :class:`toposcope.model.Wav2Letter`, or a DDP-wrapped
    one); run in eval mode (restored afterwards). ``features``: the :class:`FeatureConfig` (default
    ``model.cfg.features``). ``method``/``grouping``/``target``: names in :data:`ADJUSTMENTS`,
    :data:`LABELLERS`, :data:`SCORE_TARGETS` (or such objects). ``epochs``: ERP epochs of ``+-k`` layer
    frames around each segment centre (0: off; not training epochs). ``segments=False``: no per-segment sums
    (``S x C`` float64 per layer, held in memory during the pass; nothing else changes). Returns
    :class:`Profiles`; see the module docstring for the maths.
    """
    from tqdm.auto import tqdm

    base = _unwrap(model)
    if features is None:
        cfg = getattr(base, "cfg", None)
        if cfg is None or not hasattr(cfg, "features"):
            raise ProfileError("pass features=FeatureConfig(...): the model carries no feature config")
        features = cfg.features
    utts = list(corpus if utterances is None else utterances)
    if not utts:
        raise ProfileError("no utterances to profile")
    acc = ProfileAccumulator(base, hop=features.hop, sample_rate=features.sample_rate, adjustment=method,
                             target=target, labeller=grouping, baseline=baseline, epochs=epochs, layers=layers,
                             segments=segments)
    if acc.keep_segments:
        acc.register(utts)  # the full list, before sharding: the same segment table in every process
    import torch.distributed as dist

    if shard and dist.is_available() and dist.is_initialized():
        utts = utts[dist.get_rank()::dist.get_world_size()]
    was_training = base.training
    base.eval()
    try:
        bar = tqdm(total=len(utts), desc=f"profile {acc.adjustment.name}-{acc.labeller.name}", unit="utt",
                   disable=not progress_enabled(progress), leave=False)
        for x, lengths, chunk in iter_batches(corpus, utts, features, batch_size):
            acc.update(x, lengths, chunk)
            bar.update(len(chunk))
        bar.close()
    finally:
        base.train(was_training)
    return acc.result(meta)


def pick_split(corpus, split: str | None) -> tuple[str, list]:
    """``(name, utterances)``: the requested split (``"all"``: every utterance), or by default the first
    non-empty of test / valid / train."""
    if split == "all":
        return "all", list(corpus)
    if split is not None:
        utts = corpus.split(split)
        if not utts:
            have = [s for s in ("train", "valid", "test") if corpus.split(s)]
            raise ProfileError(f"{corpus.root}: split {split!r} is empty; non-empty splits: {', '.join(have)}")
        return split, utts
    for s in ("test", "valid", "train"):
        utts = corpus.split(s)
        if utts:
            return s, utts
    raise ProfileError(f"{corpus.root}: the corpus has no utterances")


def profile_run(run_dir, data, *, split: str | None = None, checkpoint: str = "best", method: str = "gradnap",
                grouping: str = "phone", target: str = "predicted", baseline: str = "uniform", epochs: int = 0,
                layers: Sequence[str] | None = None, batch_size: int = 8, max_utterances: int = 0,
                name: str | None = None, device: str = "cpu", progress: bool = True,
                keep_segments: bool = True) -> Profiles:
    """Profile a trained run on a corpus split and write ``RUN/profiles/<name>.npz`` (holding the run lock).

    ``data``: corpus directory or :class:`toposcope.corpus.Corpus`. ``split``: ``train``/``valid``/
    ``test``/``all``, default the first non-empty of test, valid, train (``meta["split"]`` says which).
    ``checkpoint``: ``"best"`` or ``"last"`` (recorded as ``meta["checkpoint"]``). ``epochs``: ERP
    epochs of ``+-k`` layer frames (0: off; not training epochs). ``max_utterances``: only the first N
    of the split (0: all). ``name``: file stem (default ``<method>-<grouping>``). ``keep_segments=False``
    computes, writes and returns them without per-segment sums (``compute_profiles(segments=False)``,
    ``meta["segments"] = "dropped"``; no label null from this file; e.g. a profile that only fits a layout,
    where the per-segment sums of a training split would be gigabytes). Returns the profiles.
    """
    from ..checkpoint import load_run
    from ..corpus import Corpus
    from ..runlock import run_lock

    run_dir = Path(run_dir)
    if checkpoint not in CHECKPOINTS:
        raise ProfileError(f"checkpoint must be one of {', '.join(CHECKPOINTS)}, got {checkpoint!r}")
    if not run_dir.is_dir():
        raise FileNotFoundError(f"{run_dir}: run directory not found (train one with `toposcope train`)")
    if int(batch_size) < 1 or int(max_utterances) < 0:
        raise ProfileError(f"batch_size must be >= 1 and max_utterances >= 0, got {batch_size} and "
                           f"{max_utterances}")
    with run_lock(run_dir, "profile"):
        r = load_run(run_dir, checkpoint, device=device)
        corpus = data if isinstance(data, Corpus) else Corpus.load(data)
        split_name, utts = pick_split(corpus, split)
        if max_utterances > 0:
            utts = utts[:max_utterances]
        meta = {"run": str(run_dir), "corpus": str(corpus.root), "split": split_name,
                "split_requested": split, "checkpoint": checkpoint,
                "checkpoint_path": r.meta.get("checkpoint"), **({} if keep_segments else {"segments": "dropped"})}
        prof = compute_profiles(r.model, corpus, utts, features=r.config.model.features, method=method,
                                grouping=grouping, target=target, baseline=baseline, epochs=epochs,
                                layers=layers, batch_size=batch_size, progress=progress, meta=meta,
                                segments=keep_segments)
        prof.save(profile_path(run_dir, name or profile_name(prof.method, prof.grouping)))
    return prof
