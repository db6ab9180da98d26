"""The largest activation seen on real data, for the sanity check of SPEC §7.

For a target objective (:mod:`.objectives`) and a window of ``n`` output frames (the number of
valid frames the optimal input is scored on, :func:`.param.input_geometry`), the data maximum is

    max over utterances u, over start frames s:  mean_{t = s .. s + n - 1} per_frame(acts_u)[t]

taken only over frames ``t`` whose receptive field lies inside the utterance (like the optimal
input, the data side never counts zero-padded context). I.e. the same objective, over windows of
the same length, slid frame by frame (one frame = the layer's total stride in feature frames) over
each utterance's activation sequence. Utterances with fewer than ``n`` valid frames are skipped.

:func:`feature_stats` gathers, from the same normalised features and their un-normalised log-mel,
the per-bin data range (clip range of the optimiser) and the average per-utterance per-bin
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

__all__ = ["DataMaxima", "data_maxima", "sliding_max_mean", "FeatureStats", "feature_stats"]


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
    """``values[k]``: data maximum of objective ``k`` (``-inf`` if no utterance was long enough);
    ``where[k]``: ``(utterance id, first output frame of the window)``; ``utterances``: how many
    utterances were scanned; ``skipped[k]``: how many were too short for target ``k``."""

    values: list[float]
    where: list[tuple[str, int] | None]
    utterances: int
    skipped: list[int] = field(default_factory=list)


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
                m, i = sliding_max_mean(series, int(n))
                if i < 0:
                    skipped[k] += 1
                elif m > best[k]:
                    best[k], where[k] = m, (str(utt_id), int(v.start + i))
    return DataMaxima(values=best, where=where, utterances=count, skipped=skipped)


@dataclass
class FeatureStats:
    """Per-bin ``(n_mels,)`` statistics of real data.

    ``lo``/``hi``: min/max of the *normalised* features (the optimiser's clip range);
    ``mean``/``std``: average over utterances of each utterance's per-bin mean / std of the
    *un-normalised* log-mel (the de-normalisation used for audio).
    """

    lo: torch.Tensor
    hi: torch.Tensor
    mean: torch.Tensor
    std: torch.Tensor
    utterances: int

    def to_dict(self) -> dict:
        return {k: getattr(self, k).tolist() for k in ("lo", "hi", "mean", "std")} | {"utterances": self.utterances}


def feature_stats(raw_log_mels: Iterable[torch.Tensor]) -> FeatureStats:
    """Statistics of un-normalised log-mels ``(n_mels, T)`` (normalised exactly as
    :func:`toposcope.features.normalize` does)."""
    from ..features import normalize

    lo = hi = s_mean = s_std = None
    n = 0
    for L in raw_log_mels:
        L = torch.as_tensor(L, dtype=torch.float32)
        x = normalize(L)
        mn, mx = x.min(dim=1).values, x.max(dim=1).values
        m, s = L.mean(dim=1), L.std(dim=1, unbiased=False)
        if n == 0:
            lo, hi, s_mean, s_std = mn, mx, m.double(), s.double()
        else:
            lo, hi = torch.minimum(lo, mn), torch.maximum(hi, mx)
            s_mean, s_std = s_mean + m, s_std + s
        n += 1
    if n == 0:
        raise ValueError("no utterances to compute feature statistics from")
    return FeatureStats(lo=lo, hi=hi, mean=(s_mean / n).float(), std=(s_std / n).float(), utterances=n)
