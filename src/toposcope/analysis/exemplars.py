"""Exemplars: the real windows of speech a filter or a region responds to most (``docs/method.md`` § Optimal inputs).

The objective is exactly the optimal inputs' (:mod:`toposcope.optimize.objectives`): a target's
per-frame value is a fixed linear read-out of one layer's post-ReLU activations ``A (C, T_l)`` --
filter ``i`` alone (``A[i]``) or a region's mean (``A[filters].mean(0)``) -- and a window's value
is the mean of that series over ``n`` consecutive *valid* layer frames (frames whose receptive field
lies inside the utterance, so neither zero padding nor batch padding ever reaches them), ``n`` being
the optimal input's number of valid frames (:func:`toposcope.optimize.param.input_geometry`). So the
best exemplar's value *is* the data maximum of the optimal input (``data_max_window``), and the
largest single frame is ``data_max_frame``.

**One streaming pass** (:class:`ExemplarSearch`): batches of normalised features run forward once
up to the deepest layer needed; every target of a layer is a row of a read-out matrix ``W (K, C)``,
so all per-frame series of a batch are one gather plus one ``matmul``; window means come from cumulative
sums (float64). Per utterance and target the ``k`` best *non-overlapping* windows are picked greedily
(non-maximum suppression: a window that overlaps an already picked one of the same target and
utterance is skipped, so the top-k are k distinct events, not one event shifted by a frame), and
merged into a running top-k per target. All (utterance, target) pairs of a batch go through these
steps together (array operations over the padded batch, windows past an utterance's valid frames
masked), and pairs whose largest frame cannot beat the target's current k-th exemplar are dropped
before any window is summed; the result is exactly that of one utterance and one target at a time
(``tests/analysis/test_exemplars_reference.py``). Memory: ``O(targets x k)``, independent of the corpus.
Windows whose value is ``<= 0`` (the target never fires there) are never exemplars. Exact ties (the
same value in two windows) go to the utterance seen first, then the earlier window.

**Window -> time.** Layer frame ``s`` sees input frames ``[s J - P, s J - P + R - 1]``
(:class:`~toposcope.optimize.param.ReceptiveField`); a window of ``n`` layer frames sees the
``F = R + (n - 1) J`` input frames ``[f0, f1]`` (the optimal input's own length). Feature frame
``j`` is centred at ``j * hop / sr`` s, so the window is ``[(f0 - 1/2) hop / sr, (f1 + 1/2) hop / sr]``
clipped to ``[0, duration]``.

**Phones.** Each exemplar lists the manifest's phone segments ``[start, end, label]`` that overlap
its window (unclipped, as in the manifest). The phone histogram of a target's exemplars
(:func:`phone_histogram`) gives, per phone, ``share`` = seconds of that phone inside the k windows /
their total length, ``contains`` = how many of the k windows overlap it, ``base`` = the phone's share
of all searched speech, and ``enrichment = share / base`` (> 1: the target fires on that phone more
than a random window would).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import torch

from .._util import progress as _bar, write_bytes_atomic, write_json_atomic, write_text_atomic

__all__ = ["ExemplarConfig", "Target", "targets_for_region", "ExemplarSearch", "ExemplarResult", "Exemplar",
           "window_span", "phone_histogram", "search_exemplars", "exemplars_run", "region_exemplars", "exemplars_for_optimal", "MEDIA"]


@dataclass(frozen=True)
class ExemplarConfig:
    """``k`` exemplars per target over windows of about ``seconds`` of valid layer frames (the optimal
    input's length); ``batch_size`` utterances per forward pass; ``allow_overlap``: let one target's
    windows in one utterance overlap (default: no, see the module docstring)."""

    k: int = 8
    seconds: float = 0.5
    batch_size: int = 8
    allow_overlap: bool = False

    def __post_init__(self) -> None:
        if isinstance(self.k, bool) or int(self.k) != self.k or self.k < 1:
            raise ValueError(f"k (exemplars per target) must be a positive integer, got {self.k!r}")
        if not self.seconds > 0:
            raise ValueError(f"seconds (window length) must be > 0, got {self.seconds!r}")
        if int(self.batch_size) != self.batch_size or self.batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {self.batch_size!r}")


@dataclass(frozen=True)
class Target:
    """One objective: the mean over ``filters`` of ``layer``'s post-ReLU activation (one filter: single-filter
    target; several: a region's joint target). ``name`` is unique within its region (``filter_<i>`` / ``joint``)."""

    name: str
    layer: str
    filters: tuple[int, ...]

    @property
    def key(self) -> tuple[str, tuple[int, ...]]:
        return self.layer, self.filters


def targets_for_region(layer: str, filters: Sequence[int]) -> list[Target]:
    """The optimal inputs' targets of one region, same order as
    :func:`toposcope.optimize.objectives.region_objectives`: one per filter, then ``joint``."""
    fs = tuple(int(i) for i in filters)
    if not fs or len(set(fs)) != len(fs) or min(fs) < 0:
        raise ValueError(f"a region needs distinct non-negative filter indices, got {list(filters)}")
    return [Target(f"filter_{i}", layer, (i,)) for i in fs] + [Target("joint", layer, fs)]


@dataclass(frozen=True)
class Exemplar:
    """One window: utterance ``utt`` (speaker ``speaker``), ``start``/``end`` seconds, the target's window
    mean ``value``, the manifest's phone segments overlapping it, its first layer frame ``layer_frame`` and
    input (feature) frames ``frames = (f0, f1)`` inclusive."""

    utt: str
    speaker: str
    start: float
    end: float
    value: float
    phones: tuple[tuple[float, float, str], ...]
    layer_frame: int
    frames: tuple[int, int]

    def to_dict(self) -> dict:
        return {"utt": self.utt, "start": round(self.start, 6), "end": round(self.end, 6), "value": self.value,
                "phones": [[s, e, lab] for s, e, lab in self.phones], "speaker": self.speaker,
                "layer_frame": self.layer_frame, "frames": list(self.frames)}


@dataclass
class ExemplarResult:
    """Per target key ``(layer, filters)``: ``exemplars`` (best first, at most k), ``frame_max``
    ``(value, utt, time_s)`` (the per-frame peak; ``None`` if nothing was searched), ``n_utterances``
    searched, ``too_short[layer]`` utterances with fewer valid frames than one window, ``windows[layer]``
    (layer frames per window), ``phone_seconds`` (seconds of each phone over the searched utterances)."""

    exemplars: dict[tuple, list[Exemplar]]
    frame_max: dict[tuple, tuple[float, str, float] | None]
    n_utterances: int
    too_short: dict[str, int]
    windows: dict[str, int]
    input_frames: dict[str, int]
    phone_seconds: dict[str, float] = field(default_factory=dict)

    def data_max_window(self, key) -> float | None:
        ex = self.exemplars.get(key) or []
        return ex[0].value if ex else None


def window_span(layer_frame: int, n: int, rf, hop: int, sample_rate: int, duration: float
                ) -> tuple[tuple[int, int], tuple[float, float]]:
    """``((f0, f1), (start_s, end_s))`` of a window of ``n`` layer frames starting at ``layer_frame`` (see the
    module docstring)."""
    f0 = layer_frame * rf.jump - rf.offset
    f1 = (layer_frame + n - 1) * rf.jump - rf.offset + rf.size - 1
    fs = hop / sample_rate
    return (int(f0), int(f1)), (max(0.0, (f0 - 0.5) * fs), min(float(duration), (f1 + 0.5) * fs))


def _overlapping(phones, start: float, end: float, ends: Sequence[float] | None = None) -> tuple:
    """Segments of the sorted, non-overlapping ``phones`` with ``s < end and e > start`` (``ends``: their end
    times, when the caller has them)."""
    import bisect

    if ends is None:
        ends = [p[1] for p in phones]
    out = []
    for i in range(max(0, bisect.bisect_right(ends, start) - 1), len(phones)):
        s, e, lab = phones[i]
        if s >= end:
            break
        if e > start:
            out.append((float(s), float(e), str(lab)))
    return tuple(out)


def _layer_acts(model, feats: torch.Tensor, layers: Sequence[str]) -> dict[str, torch.Tensor]:
    """Post-ReLU ``{layer: (B, C, T_l)}``; stops at the deepest layer when the model exposes ``blocks``."""
    if hasattr(model, "blocks"):
        from ..optimize.render import activations

        return activations(model, feats, layers)
    from ..hooks import record

    with record(model, layers) as rec:
        model(feats)
    return dict(rec.acts)


def _nms_topk(means: np.ndarray, k: int, n: int, allow_overlap: bool) -> tuple[np.ndarray, np.ndarray]:
    """Per row of ``means (K, W)`` the ``k`` best window starts, greedily skipping windows within ``n - 1``
    frames of a picked one (unless ``allow_overlap``): ``(values (K, k), starts (K, k))``, ``-inf``/``-1``
    where fewer exist."""
    K, W = means.shape
    m = means.copy()
    vals = np.full((K, k), -np.inf)
    starts = np.full((K, k), -1, dtype=np.int64)
    rows = np.arange(K)
    idx = np.arange(W)
    for i in range(min(k, W)):
        j = m.argmax(axis=1)
        v = m[rows, j]
        ok = v > -np.inf
        if not ok.any():
            break
        vals[ok, i], starts[ok, i] = v[ok], j[ok]
        if allow_overlap:
            m[rows, j] = -np.inf
        else:
            m[np.abs(idx[None, :] - j[:, None]) < n] = -np.inf
    return vals, starts


class ExemplarSearch:
    """Streaming top-k windows of many targets (see the module docstring).

    ``update(feats (B, n_mels, T), lengths (B,), utterances)``; :meth:`result` gives an
    :class:`ExemplarResult`. ``windows``: layer frames per window, per layer (default: the optimal input's
    :func:`~toposcope.optimize.param.input_geometry` for ``config.seconds``).
    """

    def __init__(self, model, targets: Iterable[Target], *, config: ExemplarConfig = ExemplarConfig(),
                 windows: dict[str, int] | None = None, hop: int | None = None, sample_rate: int | None = None):
        from ..optimize.param import input_geometry, receptive_field

        self.model, self.config = model, config
        keys = list(dict.fromkeys(t.key for t in targets))
        if not keys:
            raise ValueError("no targets to search exemplars for")
        order = list(model.layer_names)
        self.layers = [l for l in order if any(k[0] == l for k in keys)]
        missing = sorted({k[0] for k in keys} - set(self.layers))
        if missing:
            raise ValueError(f"no layer(s) {', '.join(missing)}; layers: {', '.join(order)}")
        fcfg = getattr(getattr(model, "cfg", None), "features", None)
        self.hop = int(hop if hop is not None else fcfg.hop)
        self.sr = int(sample_rate if sample_rate is not None else fcfg.sample_rate)
        self.rf = {l: receptive_field(model, l) for l in self.layers}
        if windows is None:
            windows = {l: input_geometry(model, l, config.seconds).n_valid for l in self.layers}
        self.windows = {l: int(windows[l]) for l in self.layers}
        # per layer: single-filter targets first (a channel gather), then the multi-filter ones (a matmul)
        self.keys, self.single_idx, self.readout = {}, {}, {}
        for l in self.layers:
            ks = [k for k in keys if k[0] == l]
            singles, multi = [k for k in ks if len(k[1]) == 1], [k for k in ks if len(k[1]) > 1]
            self.keys[l] = singles + multi
            C = model.grids[l].size if hasattr(model, "grids") and l in model.grids else None
            top = max(max(k[1]) for k in ks)
            if C is not None and top >= C:
                raise ValueError(f"filter {top} does not exist: {l} has {C} filters")
            self.single_idx[l] = torch.tensor([k[1][0] for k in singles], dtype=torch.long)
            W = torch.zeros(len(multi), C if C is not None else top + 1)
            for r, (_, fs) in enumerate(multi):
                W[r, list(fs)] = 1.0 / len(fs)
            self.readout[l] = W
        k = config.k
        self._vals = {l: np.full((len(self.keys[l]), k), -np.inf) for l in self.layers}
        self._utt = {l: np.full((len(self.keys[l]), k), -1, dtype=np.int64) for l in self.layers}
        self._start = {l: np.full((len(self.keys[l]), k), -1, dtype=np.int64) for l in self.layers}
        self._peak = {l: np.full(len(self.keys[l]), -np.inf) for l in self.layers}
        self._peak_at = {l: np.full((len(self.keys[l]), 2), -1, dtype=np.int64) for l in self.layers}
        self.utterances: list = []  # every utterance seen, in order; indices above point here
        self._ids: list[str] = []
        self.n_utterances = 0
        self.too_short = {l: 0 for l in self.layers}
        self.phone_seconds: dict[str, float] = {}

    def update(self, feats: torch.Tensor, lengths, utterances: Sequence) -> None:
        """Add one right-padded batch ``feats (B, n_mels, T)`` with ``lengths (B,)`` valid feature frames."""
        lengths = [int(n) for n in torch.as_tensor(lengths).reshape(-1).tolist()]
        if feats.shape[0] != len(utterances) or len(lengths) != len(utterances):
            raise ValueError(f"batch of {feats.shape[0]} feature rows, {len(lengths)} lengths and "
                             f"{len(utterances)} utterances")
        with torch.inference_mode():  # the same kernels as no_grad, without autograd bookkeeping
            acts = _layer_acts(self.model, feats, self.layers)
        self.update_acts(acts, lengths, utterances)

    def update_acts(self, acts: dict, lengths, utterances: Sequence) -> None:
        """Add one batch from activations another pass recorded: ``acts[layer]`` ``(B, C, T_l)`` post-ReLU of a
        right-padded batch with ``lengths (B,)`` valid *feature* frames (e.g. the profile pass's; see
        :func:`search_exemplars` ``alongside=``). Only valid frames are read, so padding never enters a value
        (the activations themselves, like any float32 convolution's, can differ in the last bits with the
        padded length of the batch)."""
        lengths = [int(n) for n in torch.as_tensor(lengths).reshape(-1).tolist()]
        missing = [l for l in self.layers if l not in acts]
        if missing:
            raise KeyError(f"no activations for layer(s) {', '.join(missing)}")
        acts = {l: acts[l].detach() for l in self.layers}
        base = len(self.utterances)
        for u in utterances:
            self.utterances.append(u)
            self._ids.append(str(u.id))
            for s, e, lab in u.phones:
                self.phone_seconds[lab] = self.phone_seconds.get(lab, 0.0) + float(e) - float(s)
        self.n_utterances += len(utterances)
        k, ov = self.config.k, self.config.allow_overlap
        B = len(lengths)
        for l in self.layers:
            a = acts[l]
            T = a.shape[-1]
            n, rf = self.windows[l], self.rf[l]
            # valid layer frames of each utterance: [lo, lo + tv[b]) (lo is the same for every utterance)
            spans = [rf.valid_frames(L, T) for L in lengths]
            lo = spans[0].start
            tv = np.array([v.stop - v.start for v in spans], dtype=np.int64)
            tm = int(tv.max())
            self.too_short[l] += int((tv < n).sum())
            if tm == 0:
                continue
            parts = [a[:, self.single_idx[l].to(a.device)]]
            if len(self.readout[l]):
                W = self.readout[l].to(a)
                parts.append(torch.matmul(W, a[:, :W.shape[1]]))  # on the whole batch, as the profile pass sees it
            series = torch.cat(parts, dim=1)[..., lo:lo + tm].float().cpu().numpy()  # (B, K, tm)
            # per-frame peaks: the first utterance (then frame) with the largest value wins, as one by one
            pk = series.argmax(axis=2)  # (B, K)
            for i in np.flatnonzero((tv > 0) & (tv < tm)):
                pk[i] = series[i, :, :tv[i]].argmax(axis=1)
            pv = np.take_along_axis(series, pk[..., None], axis=2)[..., 0].astype(np.float64)
            pv[np.isnan(pv) | (tv == 0)[:, None]] = -np.inf  # (NaN > peak is never true)
            bb = pv.argmax(axis=0)  # (K,) first utterance with the batch's largest peak
            K = pv.shape[1]
            cand = pv[bb, np.arange(K)]
            better = cand > self._peak[l]
            self._peak[l][better] = cand[better]
            self._peak_at[l][better, 0] = base + bb[better]
            self._peak_at[l][better, 1] = lo + pk[bb[better], np.flatnonzero(better)]
            if tm < n:
                continue
            # only (utterance, target) pairs whose best window beats the target's k-th exemplar before this
            # batch can change its top k (the k-th value only grows; ties go to the earlier utterance). A
            # window's mean is at most its largest frame, so pairs whose peak is below that (with a margin far
            # above float64 rounding) are dropped before any window is summed.
            thr = np.maximum(self._vals[l][:, -1], 0.0)
            pv[tv < n] = -np.inf
            ub, uk = np.nonzero(pv * (1.0 + 1e-6 + 1e-15 * tm * tm) > thr[None, :])
            if not len(ub):
                continue
            rows_s = series[ub, uk]  # (P, tm)
            c = np.zeros((len(ub), tm + 1))
            np.cumsum(rows_s, axis=1, dtype=np.float64, out=c[:, 1:])
            m = (c[:, n:] - c[:, :-n]) / n  # (P, tm - n + 1), float64, exactly as per utterance
            m[np.arange(tm - n + 1)[None, :] > (tv[ub] - n)[:, None]] = -np.inf  # windows past the valid end
            keep = m.max(axis=1) > thr[uk]
            if not keep.all():
                ub, uk, m = ub[keep], uk[keep], m[keep]
                if not len(ub):
                    continue
            m[m <= 0] = -np.inf  # a window where the target never fires is no exemplar
            vals, starts = _nms_topk(m, k, n, ov)
            rows, inv = np.unique(uk, return_inverse=True)
            V = np.full((len(rows), B * k), -np.inf)
            U = np.full((len(rows), B * k), -1, dtype=np.int64)
            S = np.full((len(rows), B * k), -1, dtype=np.int64)
            cols = ub[:, None] * k + np.arange(k)[None, :]
            V[inv[:, None], cols] = vals
            U[inv[:, None], cols] = np.where(starts >= 0, base + ub[:, None], -1)
            S[inv[:, None], cols] = np.where(starts >= 0, starts + lo, -1)
            self._merge(l, rows, V, U, S)

    def _merge(self, l: str, rows, vals, utt, start) -> None:
        V = np.concatenate([self._vals[l][rows], vals], axis=1)
        U = np.concatenate([self._utt[l][rows], utt], axis=1)
        S = np.concatenate([self._start[l][rows], start], axis=1)
        order = np.lexsort((S, U, -V), axis=1)[:, :self.config.k]  # value desc; ties: first seen, then earlier
        r = np.arange(V.shape[0])[:, None]
        self._vals[l][rows], self._utt[l][rows], self._start[l][rows] = V[r, order], U[r, order], S[r, order]

    def result(self) -> ExemplarResult:
        from ..labels import frame_times

        ex, peaks, in_frames = {}, {}, {}
        ends: dict[int, list] = {}  # per utterance: its phones' end times
        for l in self.layers:
            n, rf = self.windows[l], self.rf[l]
            in_frames[l] = rf.size + (n - 1) * rf.jump
            windows: dict[tuple[int, int], tuple] = {}  # (utterance, first frame) -> span and phones (shared by targets)
            peak_t = self._peak_at[l][:, 1]
            times = frame_times(int(peak_t.max()) + 1, self.model.geometry(l), self.hop, self.sr) \
                if peak_t.max() >= 0 else None  # a frame's time does not depend on how many are asked for
            for r, key in enumerate(self.keys[l]):
                out = []
                for v, ui, s in zip(self._vals[l][r].tolist(), self._utt[l][r].tolist(), self._start[l][r].tolist()):
                    if not np.isfinite(v) or ui < 0:
                        continue
                    u = self.utterances[ui]
                    w = windows.get((ui, s))
                    if w is None:
                        frames, (t0, t1) = window_span(s, n, rf, self.hop, self.sr, u.duration)
                        if ui not in ends:
                            ends[ui] = [p[1] for p in u.phones]
                        w = windows[ui, s] = (frames, t0, t1, _overlapping(u.phones, t0, t1, ends[ui]))
                    frames, t0, t1, phones = w
                    out.append(Exemplar(utt=str(u.id), speaker=str(u.speaker), start=t0, end=t1, value=v,
                                        phones=phones, layer_frame=s, frames=frames))
                ex[key] = out
                pv = self._peak[l][r]
                if np.isfinite(pv):
                    ui, t = self._peak_at[l][r]
                    peaks[key] = (float(pv), str(self.utterances[ui].id), float(times[int(t)]))
                else:
                    peaks[key] = None
        return ExemplarResult(exemplars=ex, frame_max=peaks, n_utterances=self.n_utterances,
                              too_short=dict(self.too_short), windows=dict(self.windows), input_frames=in_frames,
                              phone_seconds=dict(self.phone_seconds))


def phone_histogram(exemplars: Sequence, phone_seconds: dict[str, float] | None = None) -> dict:
    """Phones of a target's exemplars (see the module docstring): ``{phone: {"seconds", "share", "contains",
    "base", "enrichment"}}``, most seconds first. ``exemplars``: :class:`Exemplar` or their dicts."""
    secs: dict[str, float] = {}
    contains: dict[str, int] = {}
    total = 0.0
    for x in exemplars:
        d = x.to_dict() if isinstance(x, Exemplar) else x
        t0, t1 = float(d["start"]), float(d["end"])
        total += t1 - t0
        seen = set()
        for s, e, lab in d["phones"]:
            ov = min(e, t1) - max(s, t0)
            if ov > 0:
                secs[lab] = secs.get(lab, 0.0) + ov
                seen.add(lab)
        for lab in seen:
            contains[lab] = contains.get(lab, 0) + 1
    all_secs = sum((phone_seconds or {}).values())
    out = {}
    for lab in sorted(secs, key=lambda p: (-secs[p], p)):
        share = secs[lab] / total if total > 0 else 0.0
        base = (phone_seconds or {}).get(lab, 0.0) / all_secs if all_secs > 0 else None
        out[lab] = {"seconds": round(secs[lab], 6), "share": share, "contains": contains[lab], "base": base,
                    "enrichment": (share / base) if base else None}
    return out


def search_exemplars(model, corpus, utterances: Sequence, targets: Iterable[Target], *, store=None,
                     config: ExemplarConfig = ExemplarConfig(), progress_bar: bool = True,
                     windows: dict[str, int] | None = None, alongside=None) -> ExemplarResult:
    """One pass over ``utterances`` of ``corpus`` in length-sorted padded batches from the project's analysis
    loader (:func:`toposcope.data.iter_feature_batches`; features from ``store``, a
    :func:`toposcope.data.load_features` result, else computed from the audio); model in eval mode (restored).

    ``alongside``: an object with ``update(feats, lengths, utterances)`` that runs ``model`` forward on the
    same batch (e.g. a :class:`toposcope.analysis.profiles.ProfileAccumulator`): the search then reads the
    activations of *that* forward pass (extra hooks on the same sites) instead of running its own, so
    exemplars come with a profile pass at the cost of the window search alone (``benchmarks/bench_exemplars.py``).
    """
    from ..data import iter_feature_batches
    from ..hooks import record

    search = ExemplarSearch(model, targets, config=config, windows=windows)
    utts = list(utterances)
    if not utts:
        raise ValueError("no utterances to search exemplars in")
    fcfg = model.cfg.features
    was = model.training
    model.eval()
    try:
        bar = _bar(total=len(utts), enabled=progress_bar, desc="exemplars", unit="utt")
        for x, lengths, chunk in iter_feature_batches(corpus, utts, fcfg, config.batch_size, store=store):
            if alongside is None:
                search.update(x, lengths, chunk)
            else:
                with record(model, search.layers) as rec:
                    alongside.update(x, lengths, chunk)
                search.update_acts(rec.acts, lengths, chunk)
            bar.update(len(chunk))
        bar.close()
    finally:
        model.train(was)
    return search.result()


# ---------------------------------------------------------------------------------------------------
# a run folder: regions in, RUN/exemplars/ out
# ---------------------------------------------------------------------------------------------------
MEDIA = ("joint", "all", "none")


def exemplars_run(run_dir, *, data=None, split: str | None = None, layers: Sequence[str] | None = None,
                  groups: Sequence[str] | None = None, config: ExemplarConfig = ExemplarConfig(),
                  checkpoint: str = "best", maps: str = "maps", profiles: str = "gradnap-phone",
                  media: str = "joint", max_utterances: int = 0, progress: bool = True, out=None) -> dict:
    """Exemplars of every region of ``RUN/<maps>/regions.json`` (or of the given ``layers``/``groups``) over a
    whole split; writes ``RUN/exemplars/`` (layout in ``docs/optimal-inputs.md``) and returns its summary.

    ``data``: corpus directory (default: the one recorded in the profiles file); ``split``: default the
    profiles' split, else test, valid, train (the first that is not empty); ``max_utterances``: 0 = every
    utterance of the split, else that many evenly spaced ones. ``media``: spectrogram crops, WAV snippets
    and a figure for the ``joint`` exemplars of each region (default), for every target (``all``) or
    none (``none``; the JSON is always written). Holds the run lock.
    """
    from ..checkpoint import load_run
    from ..corpus import Corpus
    from ..data import load_features
    from ..optimize.run import regions_of_run
    from ..runlock import run_lock
    from .maps import safe_filename
    from .profiles import pick_split

    if media not in MEDIA:
        raise ValueError(f"media must be one of {', '.join(MEDIA)}, got {media!r}")
    run_dir = Path(run_dir)
    with run_lock(run_dir, "exemplars"):
        run = load_run(run_dir, checkpoint)
        model, fcfg = run.model, run.config.model.features
        regions, _grids, layers = regions_of_run(run_dir, model, maps, layers)
        jobs = []
        for l in layers:
            for g in (groups or sorted(regions[l])):
                if g not in regions[l]:
                    raise ValueError(f"group {g!r} has no region in {l}; groups: {', '.join(sorted(regions[l]))}")
                jobs.append((l, g, regions[l][g]))
        pp = run_dir / "profiles" / f"{profiles}.npz"
        prof_meta = _profiles_meta(pp) if pp.is_file() else {}
        data = data or prof_meta.get("corpus")
        if not data:
            raise ValueError("no corpus given (--data) and none recorded in the profiles file")
        corpus = Corpus.load(data)
        split, utts = pick_split(corpus, split if split is not None else prof_meta.get("split"))
        if max_utterances and len(utts) > max_utterances:
            idx = np.linspace(0, len(utts) - 1, int(max_utterances)).round().astype(int)
            utts = [utts[i] for i in idx]
        store = load_features(corpus, fcfg, progress=progress, utterances=utts)
        targets = [t for l, _, r in jobs for t in targets_for_region(l, r["filters"])]
        t0 = time.perf_counter()
        res = search_exemplars(model, corpus, utts, targets, store=store, config=config, progress_bar=progress)
        search_s = time.perf_counter() - t0
        out = Path(out) if out is not None else run_dir / "exemplars"
        common = {"run": str(run_dir), "checkpoint": run.meta.get("which", checkpoint), "corpus": str(corpus.root),
                  "split": split, "n_utterances_searched": res.n_utterances, "k": config.k, "maps": maps}
        summary_regions = []
        cache: dict = {"audio": {}, "figures": {}}  # media: recordings read, figures drawn (reused per shape)
        try:
            for l, g, reg in _bar(jobs, enabled=progress, desc="exemplar files"):
                d = region_exemplars(res, l, g, reg, grid=model.grids[l], hop=fcfg.hop, sample_rate=fcfg.sample_rate)
                d.update(common)
                d["n_utterances_too_short"] = res.too_short[l]
                stem = safe_filename(g)
                if media != "none":
                    _write_media(out / l / stem, d, media=media, corpus=corpus, store=store, fcfg=fcfg,
                                 rel=f"{l}/{stem}", cache=cache)
                _write_json(out / l / f"{stem}.json", d)
                j = d["targets"][-1]
                top = next(iter(d["phone_histogram"]), None)
                summary_regions.append({"layer": l, "group": g, "path": str(out / l / f"{stem}.json"),
                                        "joint_data_max_window": j["data_max_window"],
                                        "joint_top_phone": top, "joint_exemplars": len(j["exemplars"])})
        finally:
            _close_figures(cache["figures"])
        done = {(r["layer"], r["group"]) for r in summary_regions}
        from .._util import read_json

        try:  # regions of earlier runs with other --layer/--group choices stay listed
            prev = read_json(out / "summary.json", missing_ok=True) or {}
        except ValueError:
            prev = {}
        kept = [r for r in prev.get("regions", []) if isinstance(r, dict) and (r.get("layer"), r.get("group")) not in done
                and Path(str(r.get("path", ""))).is_file()]
        summary_regions = kept + summary_regions
        summary = {**common, "layers": layers, "window": {l: {"layer_frames": res.windows[l],
                                                            "input_frames": res.input_frames[l],
                                                            "seconds": res.input_frames[l] * fcfg.hop / fcfg.sample_rate}
                                                        for l in layers},
                   "search_seconds": search_s, "regions": summary_regions}
        write_json_atomic(out / "summary.json", summary)
    return summary


def region_exemplars(res: ExemplarResult, layer: str, group: str, region: dict, *, grid=None, hop: int,
                     sample_rate: int) -> dict:
    """The JSON of one region (documented in ``docs/optimal-inputs.md``): ``targets`` in the optimal inputs'
    order (one per filter, then ``joint``), each with ``data_max_window``, ``data_max_frame``, its
    ``exemplars`` (best first) and ``phone_histogram``; the joint target's histogram again at the top."""
    n = res.windows[layer]
    F = res.input_frames[layer]
    tlist = []
    for t in targets_for_region(layer, region["filters"]):
        ex = res.exemplars[t.key]
        fm = res.frame_max[t.key]
        d = {"name": t.name}
        if t.name == "joint":
            d["filters"] = list(t.filters)
        else:
            d["filter"] = t.filters[0]
            cells = region.get("cells")
            if grid is not None:  # under a layout: the unit's cell on the layout's grid
                d["position"] = list(grid.position(cells[list(region["filters"]).index(t.filters[0])]
                                                   if cells else t.filters[0]))
        d.update({"data_max_window": res.data_max_window(t.key),
                  "data_max_frame": None if fm is None else {"value": fm[0], "utt": fm[1], "time": fm[2]},
                  "exemplars": [x.to_dict() for x in ex],
                  "phone_histogram": phone_histogram(ex, res.phone_seconds)})
        tlist.append(d)
    extra = {"cells": list(region["cells"]), "layout": region.get("layout")} if region.get("cells") else {}
    return {"layer": layer, "group": group, "center": list(region.get("center", [])),
            "filters": [int(i) for i in region["filters"]], **extra, "region_value": region.get("value"),
            "objective": ("window mean of the post-ReLU activation (single filter) or of the region's mean "
                          "activation (joint) over valid layer frames, as for the optimal inputs"),
            "window": {"layer_frames": n, "input_frames": F, "seconds": F * hop / sample_rate},
            "data_max_definition": (f"data_max_window: best mean over {n} consecutive valid frames of {layer} "
                                    f"(the optimal input's length, {F} feature frames); data_max_frame: the "
                                    f"largest single frame; both over the n_utterances_searched utterances"),
            "targets": tlist, "phone_histogram": tlist[-1]["phone_histogram"]}


def _profiles_meta(path: Path) -> dict:
    """``meta`` of a profiles file (corpus, split) without loading its arrays; a file this cannot read goes
    through :func:`~toposcope.analysis.profiles.load_profiles` (its errors)."""
    import json

    try:
        with np.load(path, allow_pickle=False) as z:
            if "meta" in z.files and "groups" in z.files:
                meta = json.loads(str(z["meta"]))
                if isinstance(meta, dict):
                    return meta
    except Exception:  # unreadable: let load_profiles say why
        pass
    from .profiles import load_profiles

    return load_profiles(path).meta


def _write_json(path: Path, d: dict) -> None:
    """:func:`~toposcope._util.write_json_atomic`'s bytes, without its conversion pass when ``d`` holds plain JSON
    types only (a region's JSON does; anything else, or a NaN, goes the converting way)."""
    import json

    try:
        text = json.dumps(d, indent=1, ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError):
        write_json_atomic(path, d)
        return
    write_text_atomic(path, text)


def _close_figures(figures: dict) -> None:
    if figures:
        import matplotlib.pyplot as plt

        for art in figures.values():
            plt.close(art["fig"])
        figures.clear()


def _exemplar_figure(crops: np.ndarray, mean: np.ndarray, labels: list[str], *, suptitle: str, frame_seconds: float,
                     figures: dict) -> bytes:
    """PNG of :func:`~toposcope.viz.inputs.plot_exemplars` (dpi 90). A figure of the same shape drawn before is
    reused (new images, colour limits and titles; layout recomputed as for a new figure), which gives the same
    PNG for a fraction of the cost of building the figure again."""
    import io

    import matplotlib

    if not os.environ.get("MPLBACKEND"):
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..viz.inputs import plot_exemplars

    key = (crops.shape, float(frame_seconds))
    art = figures.get(key) if hasattr(matplotlib.axes.Axes, "_set_position") else None
    if art is None:
        _close_figures(figures)  # one figure at a time
        art = figures[key] = plot_exemplars(crops, labels, mean=mean, frame_seconds=frame_seconds, suptitle=suptitle)
    else:  # what plot_exemplars sets per call: images (mean: own colour scale; crops: one shared), titles
        c = np.asarray(crops, dtype=float)
        m = np.asarray(mean, dtype=float)
        im = art["images"]
        im[0].set_data(m)
        im[0].set_clim(float(m.min()), float(m.max()))
        vmin, vmax = float(np.nanmin(c)), float(np.nanmax(c))
        for i, ax in enumerate(art["axes"]):
            im[i + 1].set_data(c[i])
            im[i + 1].set_clim(vmin, vmax)
            ax.set_title(labels[i], fontsize=7)
        art["fig"].suptitle(suptitle, fontsize=10)
        for ax in art["fig"].axes:  # constrained layout starts from the grid's positions, as in a new figure
            ax._set_position(ax.get_subplotspec().get_position(art["fig"]), which="both")
    buf = io.BytesIO()
    art["fig"].savefig(buf, format="png", dpi=90)
    return buf.getvalue()


def _write_media(folder: Path, d: dict, *, media: str, corpus, store, fcfg, rel: str, cache: dict) -> None:
    """Crops (``crops.npz``), WAV snippets and ``exemplars.png`` of one region; adds their paths to ``d``.
    ``cache``: ``audio`` (recordings read), ``figures`` (reused), ``by_id`` (the corpus by utterance id)."""
    import io

    from ..audio import read_audio, write_wav

    folder.mkdir(parents=True, exist_ok=True)
    audio_cache = cache.setdefault("audio", {})
    arrays = {}
    for t in d["targets"]:
        if media == "joint" and t["name"] != "joint":
            continue
        crops = []
        for rank, x in enumerate(t["exemplars"]):
            f0, f1 = x["frames"]
            crops.append(np.asarray(store.get(x["utt"])[:, f0:f1 + 1], dtype=np.float32))
            if x["utt"] not in audio_cache:
                if "by_id" not in cache:
                    cache["by_id"] = {u.id: u for u in corpus}
                if len(audio_cache) > 64:
                    audio_cache.clear()
                audio_cache[x["utt"]] = read_audio(corpus.audio_path(cache["by_id"][x["utt"]]),
                                                   sample_rate=fcfg.sample_rate)
            wave = audio_cache[x["utt"]]
            a, b = int(round(x["start"] * fcfg.sample_rate)), int(round(x["end"] * fcfg.sample_rate))
            name = f"{t['name']}_{rank}.wav"
            write_wav(folder / name, wave[a:b], fcfg.sample_rate)
            x["audio"] = f"{rel}/{name}"
            x["crop"] = [f"{rel}/crops.npz", t["name"], rank]
        if crops:
            arrays[t["name"]] = np.stack(crops)
            arrays[f"{t['name']}_mean"] = arrays[t["name"]].mean(axis=0)
    if arrays:
        buf = io.BytesIO()
        np.savez_compressed(buf, **arrays)
        write_bytes_atomic(folder / "crops.npz", buf.getvalue())
        d["crops"] = f"{rel}/crops.npz"
    joint = d["targets"][-1]
    if "joint" in arrays:
        labels = [f"{x['utt']} {x['start']:.2f}s  {x['value']:.2f}\n"
                  + " ".join(lab for _, _, lab in x["phones"]) for x in joint["exemplars"]]
        png = _exemplar_figure(arrays["joint"], arrays["joint_mean"], labels, frame_seconds=fcfg.frame_seconds,
                               suptitle=f"{d['layer']} · /{d['group']}/ · top {len(labels)} real windows (joint)",
                               figures=cache.setdefault("figures", {}))
        write_bytes_atomic(folder / "exemplars.png", png)
        d["figure"] = f"{rel}/exemplars.png"


def exemplars_for_optimal(run_dir, data=None, *, progress: bool = True, log=None, **kw) -> dict:
    """Exemplars of the regions ``RUN/optimal/summary.json`` optimised (same layers and groups; the demo's
    stage), else of every region; ``kw`` goes to :func:`exemplars_run`."""
    from .._util import read_json

    opt = read_json(Path(run_dir) / "optimal" / "summary.json", missing_ok=True) or {}
    res = exemplars_run(run_dir, data=data, layers=opt.get("layers") or None, groups=opt.get("groups") or None,
                        progress=progress, **kw)
    if log is not None:
        tops = ", ".join(f"{r['layer']}/{r['group']} -> /{r['joint_top_phone']}/" for r in res["regions"])
        log(f"exemplars over {res['n_utterances_searched']} {res['split']} utterances; most covered phone: {tops}")
    return res
