"""The largest activation seen on real data, for the sanity check of docs/method.md § Optimal inputs.

For a target objective (:mod:`.objectives`) and a window of ``n`` output frames (the number of
valid frames the optimal input is scored on, :func:`.param.input_geometry`), the data maximum is

    max over utterances u, over start frames s:  mean_{t = s .. s + n - 1} per_frame(acts_u)[t]

taken only over frames ``t`` whose receptive field lies inside the utterance (like the optimal
input, the data side never counts zero-padded context). I.e. the same objective, over windows of
the same length, slid frame by frame (one frame = the layer's total stride in feature frames) over
each utterance's activation sequence. Utterances with fewer than ``n`` valid frames are skipped.

:func:`feature_stats` gathers, from the same normalised features and their un-normalised log-mel,
the per-bin data range (clip range of the unconstrained optimiser), the per-band 0.5 / 99.5 percentiles
(range of the natural optimiser, :class:`BandHistogram`; :func:`naturalness` is the share of an input's
bins inside it) and the average per-utterance per-bin
mean/std (the de-normalisation convention for turning an optimal input into audio,
:func:`toposcope.melinvert.denormalize`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Sequence

import torch

from .objectives import Objective
from .param import receptive_field
from .render import activations, frozen, progress_enabled

__all__ = ["DataMaxima", "data_maxima", "sliding_max_mean", "FeatureStats", "feature_stats", "BandHistogram",
           "naturalness"]


def sliding_max_mean(series: torch.Tensor, n: int) -> tuple[float, int]:
    """Largest mean of ``n`` consecutive values of ``series (T,)`` and its start index.

    ``(-inf, -1)`` when ``T < n``. Cumulative sums in float64.
    """
    if n < 1:
        raise ValueError(f"window must be >= 1 frame, got {n}")
    s = series.detach().double().reshape(-1)
    if s.numel() < n:
        return float("-inf"), -1
    c = torch.cat([s.new_zeros(1), s.cumsum(0)])
    means = (c[n:] - c[:-n]) / n
    i = int(torch.argmax(means))
    return float(means[i]), i


@dataclass
class DataMaxima:
    """``values[k]``: data maximum of objective ``k`` over windows (``data_max_window``; ``-inf`` if no
    utterance was long enough); ``where[k]``: ``(utterance id, first output frame of the window)``;
    ``utterances``: how many utterances were scanned; ``skipped[k]``: how many were too short for target
    ``k``; ``frame_values[k]`` / ``frame_where[k]``: the largest single valid frame (``data_max_frame``)
    and ``(utterance id, output frame)``."""

    values: list[float]
    where: list[tuple[str, int] | None]
    utterances: int
    skipped: list[int] = field(default_factory=list)
    frame_values: list[float] = field(default_factory=list)
    frame_where: list[tuple[str, int] | None] = field(default_factory=list)


@torch.no_grad()
def data_maxima(model, features: Iterable[tuple[str, torch.Tensor]], objectives: Sequence[Objective],
                windows: Sequence[int], *, progress: bool = False, total: int | None = None) -> DataMaxima:
    """Data maxima of single-layer ``objectives`` over windows of ``windows[k]`` valid output frames.

    ``features``: ``(utterance id, normalised log-mel (n_mels, T))`` pairs (one pass; each utterance is
    run once through the model up to the deepest layer needed).
    """
    from tqdm.auto import tqdm

    if len(objectives) != len(windows):
        raise ValueError(f"{len(objectives)} objectives but {len(windows)} windows")
    for o in objectives:
        if len(o.layers) != 1:
            raise ValueError(f"data maxima need single-layer objectives; {o!r} reads {list(o.layers)}")
    layers = list(dict.fromkeys(o.layers[0] for o in objectives))
    rfs = {l: receptive_field(model, l) for l in layers}
    K = len(objectives)
    best = [float("-inf")] * K
    where: list[tuple[str, int] | None] = [None] * K
    fbest = [float("-inf")] * K
    fwhere: list[tuple[str, int] | None] = [None] * K
    skipped = [0] * K
    count = 0
    with frozen(model):
        for utt_id, f in tqdm(features, desc="data maxima", total=total, leave=False,
                              disable=not progress_enabled(progress)):
            f = torch.as_tensor(f, dtype=torch.float32)
            acts = activations(model, f[None], layers)
            valid = {l: rfs[l].valid_frames(f.shape[-1], acts[l].shape[-1]) for l in layers}
            count += 1
            for k, (o, n) in enumerate(zip(objectives, windows)):
                v = valid[o.layers[0]]
                series = o.per_frame(acts)[0, v]
                if series.numel():
                    j = int(torch.argmax(series))
                    if float(series[j]) > fbest[k]:
                        fbest[k], fwhere[k] = float(series[j]), (str(utt_id), int(v.start + j))
                m, i = sliding_max_mean(series, int(n))
                if i < 0:
                    skipped[k] += 1
                elif m > best[k]:
                    best[k], where[k] = m, (str(utt_id), int(v.start + i))
    return DataMaxima(values=best, where=where, utterances=count, skipped=skipped, frame_values=fbest,
                      frame_where=fwhere)


class BandHistogram:
    """Streaming per-band histogram of normalised log-mel values, for percentiles without holding the data.

    ``update(x (n_mels, T))``; :meth:`quantile` ``(q in [0, 1]) -> (n_mels,)``, linearly interpolated inside
    bins of width ``step`` over ``[lo, hi]`` (values outside count in the end bins). Normalised features are
    per-utterance z-scores, so ``[-20, 20]`` at ``step = 0.005`` is exact to 0.005.
    """

    def __init__(self, n_mels: int, lo: float = -20.0, hi: float = 20.0, step: float = 0.005):
        self.n_mels, self.lo, self.step = int(n_mels), float(lo), float(step)
        self.bins = int(round((hi - lo) / step))
        self.counts = torch.zeros(self.n_mels, self.bins, dtype=torch.int64)
        self.n = 0

    def update(self, x: torch.Tensor) -> None:
        x = torch.as_tensor(x, dtype=torch.float32)
        if x.dim() != 2 or x.shape[0] != self.n_mels:
            raise ValueError(f"expected ({self.n_mels}, frames), got {tuple(x.shape)}")
        idx = ((x - self.lo) / self.step).floor().long().clamp(0, self.bins - 1)
        flat = idx + torch.arange(self.n_mels)[:, None] * self.bins
        self.counts.view(-1).index_add_(0, flat.reshape(-1), torch.ones(flat.numel(), dtype=torch.int64))
        self.n += x.shape[1]

    def quantile(self, q: float) -> torch.Tensor:
        if not 0 <= q <= 1:
            raise ValueError(f"quantile must lie in [0, 1], got {q}")
        if self.n == 0:
            raise ValueError("no data in the histogram")
        cum = self.counts.cumsum(dim=1).double()  # (M, bins)
        target = q * self.n
        j = torch.searchsorted(cum, torch.full((self.n_mels, 1), target, dtype=torch.float64)).clamp(max=self.bins - 1)
        j = j[:, 0]
        before = torch.where(j > 0, cum[torch.arange(self.n_mels), (j - 1).clamp(min=0)], torch.zeros(self.n_mels,
                                                                                                      dtype=torch.float64))
        inbin = self.counts[torch.arange(self.n_mels), j].double().clamp(min=1)
        frac = ((target - before) / inbin).clamp(0, 1)
        return (self.lo + (j.double() + frac) * self.step).float()


def naturalness(x, lo, hi, tol: float = 1e-5) -> torch.Tensor:
    """Share of bins of ``x (B, n_mels, T)`` (or ``(n_mels, T)``) inside their band's ``[lo, hi]`` (``(n_mels,)``):
    ``(B,)`` (or a scalar)."""
    x = torch.as_tensor(x, dtype=torch.float32)
    lo = torch.as_tensor(lo, dtype=torch.float32).reshape(-1, 1)
    hi = torch.as_tensor(hi, dtype=torch.float32).reshape(-1, 1)
    ok = (x >= lo - tol) & (x <= hi + tol)
    return ok.float().flatten(-2).mean(-1)


@dataclass
class FeatureStats:
    """Per-bin ``(n_mels,)`` statistics of real data.

    ``lo``/``hi``: min/max of the *normalised* features (the unconstrained optimiser's clip range);
    ``p_lo``/``p_hi``: the ``percentiles`` (default 0.5 and 99.5) of the normalised features per band
    (the natural optimiser's range, and what ``naturalness`` is measured against);
    ``mean``/``std``: average over utterances of each utterance's per-bin mean / std of the
    *un-normalised* log-mel (the de-normalisation used for audio).
    """

    lo: torch.Tensor
    hi: torch.Tensor
    mean: torch.Tensor
    std: torch.Tensor
    utterances: int
    p_lo: torch.Tensor | None = None
    p_hi: torch.Tensor | None = None
    percentiles: tuple[float, float] = (0.5, 99.5)

    def to_dict(self) -> dict:
        d = {k: getattr(self, k).tolist() for k in ("lo", "hi", "mean", "std")} | {"utterances": self.utterances}
        if self.p_lo is not None:
            d |= {"p_lo": self.p_lo.tolist(), "p_hi": self.p_hi.tolist(), "percentiles": list(self.percentiles)}
        return d


def feature_stats(raw_log_mels: Iterable[torch.Tensor], percentiles: tuple[float, float] = (0.5, 99.5)) -> FeatureStats:
    """Statistics of un-normalised log-mels ``(n_mels, T)`` (normalised exactly as
    :func:`toposcope.features.normalize` does)."""
    from ..features import normalize

    lo = hi = s_mean = s_std = None
    hist = None
    n = 0
    for L in raw_log_mels:
        L = torch.as_tensor(L, dtype=torch.float32)
        x = normalize(L)
        mn, mx = x.min(dim=1).values, x.max(dim=1).values
        m, s = L.mean(dim=1), L.std(dim=1, unbiased=False)
        if n == 0:
            lo, hi, s_mean, s_std = mn, mx, m.double(), s.double()
            hist = BandHistogram(x.shape[0])
        else:
            lo, hi = torch.minimum(lo, mn), torch.maximum(hi, mx)
            s_mean, s_std = s_mean + m, s_std + s
        hist.update(x)
        n += 1
    if n == 0:
        raise ValueError("no utterances to compute feature statistics from")
    a, b = (float(p) for p in percentiles)
    if not 0 <= a < b <= 100:
        raise ValueError(f"percentiles must satisfy 0 <= low < high <= 100, got {percentiles}")
    p_lo = torch.maximum(hist.quantile(a / 100), lo)
    p_hi = torch.minimum(hist.quantile(b / 100), hi)
    return FeatureStats(lo=lo, hi=hi, mean=(s_mean / n).float(), std=(s_std / n).float(), utterances=n,
                        p_lo=p_lo, p_hi=p_hi, percentiles=(a, b))
