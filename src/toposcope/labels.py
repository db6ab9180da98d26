"""Phone label of every frame of any layer (docs/method.md § Profiles: "frame -> group").

Conv layer ``l`` with kernel ``k``, stride ``s`` and left padding ``p`` maps its output frame ``t``
to input positions ``[t*s - p, t*s - p + k - 1]``, whose centre is ``t*s - p + (k-1)/2``. Composing
these gives each layer frame's centre in feature frames, and feature frame ``j`` is centred at
``j * hop / sample_rate`` seconds (``torch.stft(center=True)``). A layer frame is labelled with the
phone whose segment ``[start, end)`` contains that centre time.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from .phones import PHONES

__all__ = ["frame_centers", "frame_times", "label_frames", "phone_targets"]


def frame_centers(n_out: int, convs: Sequence[tuple[int, int, int]]) -> np.ndarray:
    """Centre (in feature frames, may be fractional) of each of ``n_out`` frames after ``convs``.

    ``convs`` lists ``(kernel, stride, left_padding)`` from the input up to the layer.
    """
    pos = np.arange(n_out, dtype=np.float64)
    for k, s, p in reversed(list(convs)):
        pos = pos * s - p + (k - 1) / 2.0
    return pos


def frame_times(n_out: int, convs: Sequence[tuple[int, int, int]], hop: int, sample_rate: int) -> np.ndarray:
    """Centre time in seconds of each layer frame."""
    return frame_centers(n_out, convs) * (hop / sample_rate)


def label_frames(times: np.ndarray, segments: Sequence[tuple[float, float, str]],
                 groups: Sequence[str]) -> np.ndarray:
    """Group index per frame (``-1`` where no segment contains the centre time).

    ``groups`` is the ordered group list; a segment label not in it gives ``-1`` as well.
    """
    index = {g: i for i, g in enumerate(groups)}
    out = np.full(len(times), -1, dtype=np.int64)
    if not len(segments):
        return out
    starts = np.array([s for s, _, _ in segments])
    ends = np.array([e for _, e, _ in segments])
    ids = np.array([index.get(lab, -1) for _, _, lab in segments])
    k = np.searchsorted(starts, times, side="right") - 1
    ok = (k >= 0)
    kk = np.clip(k, 0, len(segments) - 1)
    ok &= times < ends[kk]
    out[ok] = ids[kk[ok]]
    return out


def phone_targets(segments: Sequence[Sequence[tuple[float, float, str]]], n_valid: Sequence[int], n_frames: int,
                  convs: Sequence[tuple[int, int, int]], hop: int, sample_rate: int, *,
                  time_scale: Sequence[float] | None = None) -> np.ndarray:
    """Phone index (:data:`toposcope.phones.PHONES` order) of every frame of one layer for a batch:
    ``(B, n_frames)`` int64, ``-1`` past ``n_valid[b]`` and where no segment of ``segments[b]`` contains the
    frame's centre time (the targets of the phone head, :class:`toposcope.config.PhoneHeadConfig`).

    ``time_scale[b]`` multiplies utterance ``b``'s frame times before the lookup: an input that speed
    perturbation made ``r`` times shorter has its frame times scaled by ``r`` back onto the original
    alignment's clock (default 1).
    """
    out = np.full((len(segments), n_frames), -1, dtype=np.int64)
    for b, segs in enumerate(segments):
        n = min(int(n_valid[b]), n_frames)
        times = frame_times(n, convs, hop, sample_rate) * (1.0 if time_scale is None else float(time_scale[b]))
        out[b, :n] = label_frames(times, segs, PHONES)
    return out
