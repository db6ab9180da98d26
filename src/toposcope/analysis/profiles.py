"""NAPs and GradNAPs: per-group mean responses of every gridded layer (SPEC §5, seed §2.2).

For every utterance the model runs once forward; for GradNAPs a target score ``s`` is
backpropagated once to the activations ``A`` (``(batch, C, T_l)``) of all gridded layers at the
same time, giving ``G = ds/dA``. Only the activation gradients are computed
(``torch.autograd.grad(s, [A_1, ..., A_L])``): no weight gradients, so a profile pass is cheaper
than a training step (see ``docs/benchmarks/profiles.md``).

* target (``target=``): ``"predicted"`` (default) ``s = sum_t log p_t(y^_t)`` over the valid output
  frames of each utterance, ``y^_t`` the argmax grapheme; ``"ctc"``: the CTC log-likelihood of the
  reference transcript (``toposcope.text.encode(normalize_text(utt.text))``).
* adjustment (``method=``): ``"gradnap"`` ``A * G`` (default, our documented reading of the
  unpublished GradNAP adjustment), ``"nap"`` ``A`` (no backward pass), ``"absgrad"`` ``|G| * A``.
* grouping (``grouping=``): ``"phone"``: layer frame ``t`` gets the phone whose segment contains the
  frame's centre time (:func:`toposcope.labels.frame_times` with the layer's own stride/padding
  chain, so every layer is labelled at its own resolution); ``"predicted"``: the argmax grapheme at
  the output frame nearest in time (groups named :data:`GRAPHEME_GROUPS`: ``blank``, ``space``,
  ``apostrophe``, ``a`` .. ``z``).
* profile ``P_g[c]`` = mean adjusted activation of channel ``c`` over the frames labelled ``g``,
  from streaming sums and counts (float64; memory independent of corpus size). Frames past an
  utterance's length (batch padding) and unlabelled frames are left out.
* baseline ``B[c] = mean_g P_g[c]`` (``baseline="uniform"``, default) or the frame-weighted mean
  (``baseline="frames"``, i.e. the mean over all labelled frames); ``values = P - B``.
* groups: those present (count > 0) at every layer, in :data:`toposcope.phones.PHONES` order
  (or alphabet order); groups seen at some layers only are dropped and listed in ``meta``.
* ERP-style epochs (``epochs=k > 0``): for every segment (phone segment, or run of one predicted
  grapheme) the ``2k+1`` layer frames around the frame nearest its centre time are averaged per
  group, giving ``P_g[c, tau]`` (``L.epochs``, baseline-subtracted, ``L.epoch_counts``); then the
  map value (``raw``/``values``) is its time average and ``counts`` counts segments (SPEC §5).
* DDP: when ``torch.distributed`` is initialised, each process takes ``utterances[rank::world]``
  (``shard=True``) and sums and counts are ``all_reduce``-d before dividing.

Batching pads with zeros on the right (like training); a conv layer then sees, near the end of a
shorter utterance, the padded batch's activations instead of zero padding: a small deviation from
running utterances one by one, kept small by batching utterances of similar length.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from .._util import atomic_write, progress_enabled
from ..grid import Grid
from ..labels import frame_times, label_frames
from ..phones import PHONES
from ..text import ALPHABET, encode, normalize_text

__all__ = ["LayerProfile", "Profiles", "ProfileAccumulator", "compute_profiles", "load_profiles",
           "subtract_baseline", "layer_lengths", "layer_frame_groups", "METHODS", "GROUPINGS", "TARGETS",
           "BASELINES", "GRAPHEME_GROUPS", "profile_name"]

METHODS = ("gradnap", "nap", "absgrad")
GROUPINGS = ("phone", "predicted")
TARGETS = ("predicted", "ctc")
BASELINES = ("uniform", "frames")
#: Group names of the ``predicted`` grouping, index-aligned with :data:`toposcope.text.ALPHABET`.
GRAPHEME_GROUPS: tuple[str, ...] = ("blank", "space", "apostrophe") + tuple(ALPHABET[3:])


def profile_name(method: str, grouping: str) -> str:
    """Default file stem ``<method>-<grouping>`` (e.g. ``gradnap-phone``)."""
    return f"{method}-{grouping}"


# ---------------------------------------------------------------------------------------------------
# typed result
# ---------------------------------------------------------------------------------------------------
@dataclass
class LayerProfile:
    """One layer's profiles. ``values``/``raw``: ``(G, C)``; ``counts``: ``(G,)``;
    ``epochs``: ``(G, C, 2k+1)`` baseline-subtracted, ``epoch_counts``: ``(G, 2k+1)`` (epochs only)."""

    values: np.ndarray
    raw: np.ndarray
    counts: np.ndarray
    grid: Grid
    epochs: np.ndarray | None = None
    epoch_counts: np.ndarray | None = None

    def maps(self, which: str = "values") -> np.ndarray:
        """``(G, rows, cols)`` on-grid maps of ``values`` (or ``raw``)."""
        return self.grid.to_map(getattr(self, which))


@dataclass
class Profiles:
    """Profiles of every gridded layer for one method/grouping (the ``profiles/<name>.npz`` file)."""

    groups: tuple[str, ...]
    method: str
    grouping: str
    layers: dict[str, LayerProfile]
    target: str = "predicted"
    baseline: str = "uniform"
    meta: dict = field(default_factory=dict)

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
        for n, lp in self.layers.items():
            arrays[f"{n}.values"] = np.asarray(lp.values, dtype=np.float64)
            arrays[f"{n}.raw"] = np.asarray(lp.raw, dtype=np.float64)
            arrays[f"{n}.counts"] = np.asarray(lp.counts, dtype=np.int64)
            arrays[f"{n}.grid"] = np.array([lp.grid.rows, lp.grid.cols], dtype=np.int64)
            if lp.epochs is not None:
                arrays[f"{n}.epochs"] = np.asarray(lp.epochs, dtype=np.float64)
                arrays[f"{n}.epoch_counts"] = np.asarray(lp.epoch_counts, dtype=np.int64)
        atomic_write(path, lambda f: np.savez(f, **arrays))
        return path


def load_profiles(path) -> Profiles:
    """Read a ``profiles/<name>.npz`` written by :meth:`Profiles.save` (clear errors otherwise)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: profiles file not found (run `toposcope profile` first)")
    try:
        with np.load(path, allow_pickle=False) as z:
            d = {k: z[k] for k in z.files}
    except Exception as e:  # zip/format errors of several kinds
        raise ValueError(f"{path}: unreadable profiles file ({type(e).__name__}: {e})") from None
    for k in ("groups", "method", "grouping"):
        if k not in d:
            raise ValueError(f"{path}: not a toposcope profiles file (missing {k!r})")
    groups = tuple(str(g) for g in d["groups"])
    if "layers" in d:
        names = [str(n) for n in d["layers"]]
    else:  # files written by other tools: every "<L>.values" key
        names = sorted({k[:-len(".values")] for k in d if k.endswith(".values")})
    layers = {}
    for n in names:
        try:
            rows, cols = (int(v) for v in d[f"{n}.grid"])
            lp = LayerProfile(values=d[f"{n}.values"], raw=d[f"{n}.raw"], counts=d[f"{n}.counts"],
                              grid=Grid(rows, cols), epochs=d.get(f"{n}.epochs"),
                              epoch_counts=d.get(f"{n}.epoch_counts"))
        except KeyError as e:
            raise ValueError(f"{path}: layer {n!r} lacks {e.args[0]!r}") from None
        if lp.values.shape != (len(groups), lp.grid.size) or lp.raw.shape != lp.values.shape \
                or lp.counts.shape != (len(groups),):
            raise ValueError(f"{path}: layer {n!r} arrays do not match {len(groups)} groups x {lp.grid.size} filters")
        layers[n] = lp
    meta = json.loads(str(d["meta"])) if "meta" in d else {}
    return Profiles(groups=groups, method=str(d["method"]), grouping=str(d["grouping"]), layers=layers,
                    target=str(d.get("target", "predicted")), baseline=str(d.get("baseline", "uniform")),
                    meta=meta)


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
            raise ValueError("frame-weighted baseline needs at least one counted frame")
        w = w.reshape((-1,) + (1,) * (raw.ndim - 1)) / w.sum()
        b = (w * raw).sum(axis=0, keepdims=True)
    else:
        raise ValueError(f"baseline must be one of {', '.join(BASELINES)}, got {baseline!r}")
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


def _nearest(sorted_times: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Index of the element of increasing ``sorted_times`` nearest to each ``x`` (ties: the earlier)."""
    j = np.clip(np.searchsorted(sorted_times, x), 1, max(len(sorted_times) - 1, 1))
    j = np.minimum(j, len(sorted_times) - 1)
    prev = np.maximum(j - 1, 0)
    return np.where(np.abs(sorted_times[prev] - x) <= np.abs(sorted_times[j] - x), prev, j)


def _unwrap(model):
    return model.module if hasattr(model, "module") and not hasattr(model, "layer_names") else model


# ---------------------------------------------------------------------------------------------------
# the streaming accumulator
# ---------------------------------------------------------------------------------------------------
class ProfileAccumulator:
    """Streaming sums and counts of adjusted activations per group, for every gridded layer.

    ``update(feats (B, n_mels, T), lengths (B,), utterances)`` runs one forward (+ one backward for
    gradient methods) and adds to ``sums[L] (G_all, C)`` / ``counts[L] (G_all,)`` (float64/int64, on
    the model's device); :meth:`result` reduces across processes (DDP) and divides.
    """

    def __init__(self, model, *, hop: int, sample_rate: int, method: str = "gradnap", grouping: str = "phone",
                 target: str = "predicted", baseline: str = "uniform", epochs: int = 0,
                 layers: Sequence[str] | None = None):
        if method not in METHODS:
            raise ValueError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
        if grouping not in GROUPINGS:
            raise ValueError(f"grouping must be one of {', '.join(GROUPINGS)}, got {grouping!r}")
        if target not in TARGETS:
            raise ValueError(f"target must be one of {', '.join(TARGETS)}, got {target!r}")
        if baseline not in BASELINES:
            raise ValueError(f"baseline must be one of {', '.join(BASELINES)}, got {baseline!r}")
        if int(epochs) < 0:
            raise ValueError(f"epochs (+-k frames) must be >= 0, got {epochs}")
        self.model = _unwrap(model)
        self.layers = tuple(layers) if layers is not None else tuple(self.model.layer_names)
        for n in self.layers:
            if n not in self.model.grids:
                raise ValueError(f"layer {n!r} has no grid; gridded layers: {', '.join(self.model.layer_names)}")
        self.hop, self.sr = int(hop), int(sample_rate)
        self.method, self.grouping, self.target, self.baseline = method, grouping, target, baseline
        self.k = int(epochs)
        self.all_groups = tuple(PHONES) if grouping == "phone" else GRAPHEME_GROUPS
        self.geom = {n: list(self.model.geometry(n)) for n in self.layers}
        self.out_geom = list(self.model.geometry("output")) if grouping == "predicted" else None
        self._times: dict[tuple[str, int], np.ndarray] = {}
        p = next(self.model.parameters())
        self.device = p.device
        G, W = len(self.all_groups), 2 * self.k + 1
        self.sums = {n: torch.zeros(G * W if self.k else G, self.model.grids[n].size, dtype=torch.float64,
                                    device=self.device) for n in self.layers}
        self.counts = {n: torch.zeros(G * W if self.k else G, dtype=torch.int64, device=self.device)
                       for n in self.layers}
        self.n_utterances = 0
        self.ctc_infeasible = 0

    # -- per batch --------------------------------------------------------------------------------
    def _frame_times(self, name: str, n: int, geom) -> np.ndarray:
        key = (name, n)
        if key not in self._times:
            self._times[key] = frame_times(n, geom, self.hop, self.sr)
        return self._times[key]

    def _score(self, logp: torch.Tensor, out_len: torch.Tensor, utterances) -> torch.Tensor:
        """Scalar target summed over the batch (utterances are independent, so per-utterance
        gradients are unchanged). ``logp``: ``(B, T_o, K)``."""
        if self.target == "predicted":
            best = logp.max(dim=-1).values  # (B, T_o): log p_t(argmax)
            mask = torch.arange(logp.shape[1], device=logp.device)[None] < out_len[:, None]
            return (best * mask).sum()
        tgts = [torch.tensor(encode(normalize_text(u.text)), dtype=torch.long) for u in utterances]
        tl = torch.tensor([len(t) for t in tgts], dtype=torch.long)
        if (tl == 0).any():
            bad = [u.id for u, t in zip(utterances, tgts) if len(t) == 0]
            raise ValueError(f"utterance(s) {', '.join(bad)}: empty transcript after normalisation; "
                             f"the ctc target needs text")
        nll = F.ctc_loss(logp.transpose(0, 1), torch.cat(tgts).to(logp.device), out_len, tl.to(logp.device),
                         blank=0, reduction="none", zero_infinity=True)
        with torch.no_grad():  # utterances too short for their transcript (their score is left out)
            check = F.ctc_loss(logp.detach().transpose(0, 1), torch.cat(tgts).to(logp.device), out_len,
                               tl.to(logp.device), blank=0, reduction="none")
        self.ctc_infeasible += int((~torch.isfinite(check)).sum())
        return -nll.sum()

    def _segments(self, utterances, pred: torch.Tensor | None, out_len) -> list[list[tuple[float, float, str]]]:
        """Per utterance ``(start_s, end_s, group)`` segments (phones, or runs of one predicted grapheme)."""
        if self.grouping == "phone":
            return [list(u.phones) for u in utterances]
        t = frame_times(pred.shape[1], self.out_geom, self.hop, self.sr)
        step = self.hop / self.sr * np.prod([s for _, s, _ in self.out_geom])
        segs = []
        for b in range(pred.shape[0]):
            p = pred[b, :int(out_len[b])].cpu().numpy()
            out, i = [], 0
            while i < len(p):
                j = i
                while j + 1 < len(p) and p[j + 1] == p[i]:
                    j += 1
                out.append((t[i] - step / 2, t[j] + step / 2, GRAPHEME_GROUPS[int(p[i])]))
                i = j + 1
            segs.append(out)
        return segs

    def update(self, feats: torch.Tensor, lengths: torch.Tensor, utterances: Sequence) -> None:
        """Add one padded batch: ``feats (B, n_mels, T)``, ``lengths (B,)`` feature frames."""
        from ..hooks import record

        model = self.model
        feats = feats.to(self.device)
        lengths = torch.as_tensor(lengths).to(self.device)
        if feats.shape[0] != len(utterances) or lengths.shape[0] != len(utterances):
            raise ValueError(f"batch of {feats.shape[0]} feature rows, {lengths.shape[0]} lengths and "
                             f"{len(utterances)} utterances")
        grad = self.method != "nap"
        with torch.enable_grad() if grad else torch.no_grad():
            if grad:
                feats = feats.detach().requires_grad_(True)  # a graph even if parameters are frozen
            with record(model, self.layers, detach=not grad) as rec:
                logp = model(feats)  # (B, T_o, K)
            acts = [rec.acts[n] for n in self.layers]
            out_len = layer_lengths(lengths, model.geometry("output")).clamp(max=logp.shape[1])
            if grad:
                score = self._score(logp, out_len, utterances)
                grads = torch.autograd.grad(score, acts)
        pred = logp.detach().argmax(dim=-1) if self.grouping == "predicted" else None
        segments = self._segments(utterances, pred, out_len) if (self.k or self.grouping == "phone") else None
        if self.grouping == "predicted":
            t_out = frame_times(logp.shape[1], self.out_geom, self.hop, self.sr)
            pred_np = pred.cpu().numpy()
        with torch.no_grad():
            for i, n in enumerate(self.layers):
                a = acts[i].detach()
                if self.method == "gradnap":
                    x = a * grads[i]
                elif self.method == "absgrad":
                    x = a * grads[i].abs()
                else:
                    x = a
                B, C, T = x.shape
                n_len = layer_lengths(lengths, self.geom[n]).clamp(max=T).cpu().numpy()
                times = self._frame_times(n, T, self.geom[n])
                if self.k:
                    self._add_epochs(n, x.permute(0, 2, 1).reshape(B * T, C), T, times, n_len, segments)
                    continue
                lab = np.full((B, T), -1, dtype=np.int64)
                for b in range(B):
                    L = int(n_len[b])
                    if self.grouping == "phone":
                        lab[b, :L] = label_frames(times[:L], segments[b], self.all_groups)
                    elif int(out_len[b]) > 0:  # argmax grapheme at the nearest valid output frame
                        j = _nearest(t_out[:int(out_len[b])], times[:L])
                        lab[b, :L] = pred_np[b, j]
                # one-hot (B, T, G) and a batched matmul: per-batch sums in float32 (no gather copies),
                # accumulated across batches in float64
                G = len(self.all_groups)
                lab_t = torch.from_numpy(lab).to(self.device)
                onehot = torch.zeros(B, T, G + 1, dtype=x.dtype, device=self.device)
                onehot.scatter_(2, (lab_t % (G + 1))[..., None], 1.0)  # -1 -> column G (dropped)
                onehot = onehot[..., :G]
                self.sums[n] += torch.bmm(x, onehot).sum(0).T.double()  # (B, C, T) @ (B, T, G)
                self.counts[n] += onehot.sum((0, 1)).round().long()
        self.n_utterances += len(utterances)

    def _add_epochs(self, n: str, flat: torch.Tensor, T: int, times: np.ndarray, n_len, segments) -> None:
        """ERP-style: ``2k+1`` frames around the frame nearest each segment's centre time."""
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
    def reduce(self) -> None:
        """All-reduce sums and counts across processes when ``torch.distributed`` is initialised."""
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            for n in self.layers:
                dist.all_reduce(self.sums[n])
                dist.all_reduce(self.counts[n])
            t = torch.tensor([self.n_utterances, self.ctc_infeasible], dtype=torch.int64, device=self.device)
            dist.all_reduce(t)
            self.n_utterances, self.ctc_infeasible = int(t[0]), int(t[1])

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
            raise ValueError("no labelled frames: no group was seen at every layer (are the phone "
                             "alignments inside the audio, and is the data non-empty?)")
        layers = {}
        for n in self.layers:
            grid = self.model.grids[n]
            if self.k:
                c = counts[n][keep]  # (G', W)
                ep_raw = sums[n][keep] / np.maximum(c, 1)[:, None, :]
                ep_raw[np.broadcast_to((c == 0)[:, None, :], ep_raw.shape)] = np.nan
                raw = np.nanmean(ep_raw, axis=2)  # time average over the epoch
                base = raw - subtract_baseline(raw, seg_counts[n][keep], self.baseline)  # (1, C)
                layers[n] = LayerProfile(values=raw - base, raw=raw, counts=seg_counts[n][keep].astype(np.int64),
                                         grid=grid, epochs=ep_raw - base[..., None], epoch_counts=c.astype(np.int64))
            else:
                c = counts[n][keep]
                raw = sums[n][keep] / c[:, None]
                layers[n] = LayerProfile(values=subtract_baseline(raw, c, self.baseline), raw=raw,
                                         counts=c.astype(np.int64), grid=grid)
        m = dict(meta or {})
        m.update({"n_utterances": self.n_utterances, "epochs_k": self.k,
                  "dropped_groups": [self.all_groups[i] for i in np.flatnonzero(somewhere & ~present)]})
        if self.target == "ctc":
            m["ctc_infeasible_utterances"] = self.ctc_infeasible
        return Profiles(groups=tuple(self.all_groups[i] for i in keep), method=self.method,
                        grouping=self.grouping, layers=layers, target=self.target, baseline=self.baseline, meta=m)


# ---------------------------------------------------------------------------------------------------
# the whole pass
# ---------------------------------------------------------------------------------------------------
def iter_batches(corpus, utterances: Sequence, features, batch_size: int = 8
                 ) -> Iterator[tuple[torch.Tensor, torch.Tensor, list]]:
    """Length-sorted padded batches ``(feats (B, n_mels, T), lengths (B,), utterances)``, features
    computed per utterance on the fly (so memory does not grow with the corpus)."""
    from ..audio import read_audio
    from ..features import log_mel

    order = sorted(utterances, key=lambda u: (u.duration, u.id))
    for i in range(0, len(order), batch_size):
        chunk = order[i:i + batch_size]
        fs = [log_mel(read_audio(corpus.audio_path(u), sample_rate=features.sample_rate), features) for u in chunk]
        T = max(f.shape[1] for f in fs)
        x = torch.zeros(len(fs), features.n_mels, T)
        for b, f in enumerate(fs):
            x[b, :, :f.shape[1]] = f
        yield x, torch.tensor([f.shape[1] for f in fs], dtype=torch.long), chunk


def compute_profiles(model, corpus, utterances: Iterable | None = None, *, features=None,
                     method: str = "gradnap", grouping: str = "phone", target: str = "predicted",
                     baseline: str = "uniform", epochs: int = 0, layers: Sequence[str] | None = None,
                     batch_size: int = 8, shard: bool = True, progress: bool = True,
                     meta: dict | None = None) -> Profiles:
    """Profiles of every gridded layer of ``model`` over ``utterances`` (default: all of ``corpus``).

    ``model``: a :class:`toposcope.model.Wav2Letter` (or DDP-wrapped one, or any module with
    ``layer_names``, ``grids``, ``site``, ``geometry`` and ``forward(feats) -> log-probs``); run in
    eval mode (restored afterwards). ``features``: the :class:`FeatureConfig` (default
    ``model.cfg.features``). Returns :class:`Profiles`; see the module docstring for the maths.
    """
    from tqdm.auto import tqdm

    base = _unwrap(model)
    if features is None:
        cfg = getattr(base, "cfg", None)
        if cfg is None or not hasattr(cfg, "features"):
            raise ValueError("pass features=FeatureConfig(...): the model carries no feature config")
        features = cfg.features
    utts = list(corpus if utterances is None else utterances)
    if not utts:
        raise ValueError("no utterances to profile")
    import torch.distributed as dist

    if shard and dist.is_available() and dist.is_initialized():
        utts = utts[dist.get_rank()::dist.get_world_size()]
    acc = ProfileAccumulator(base, hop=features.hop, sample_rate=features.sample_rate, method=method,
                             grouping=grouping, target=target, baseline=baseline, epochs=epochs, layers=layers)
    was_training = base.training
    base.eval()
    try:
        bar = tqdm(total=len(utts), desc=f"profile {method}-{grouping}", unit="utt",
                   disable=not progress_enabled(progress), leave=False)
        for x, lengths, chunk in iter_batches(corpus, utts, features, batch_size):
            acc.update(x, lengths, chunk)
            bar.update(len(chunk))
        bar.close()
    finally:
        base.train(was_training)
    return acc.result(meta)
