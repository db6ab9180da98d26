"""The three small parts a profile pass is built from (``docs/method.md`` § Profiles).

:class:`toposcope.analysis.profiles.ProfileAccumulator` only sums; *what* it sums is decided by
three objects passed in, each chosen by name at the edge (``compute_profiles``, ``profile_run``,
the CLI) from a registry:

* an **adjustment** (:data:`ADJUSTMENTS`): the adjusted activation of a frame from the activation
  ``A`` and its gradient ``G = ds/dA`` (both ``(batch, C, T_l)``): ``gradnap`` ``A * G`` (default, our
  documented reading of the unpublished GradNAP adjustment), ``nap`` ``A`` (no backward pass),
  ``absgrad`` ``|G| * A``;
* a **score target** (:data:`SCORE_TARGETS`): the scalar ``s`` backpropagated for ``G``:
  ``predicted`` ``s = sum_t log p_t(y^_t)`` over the valid output frames, ``y^_t`` the argmax
  grapheme; ``ctc`` the CTC log-likelihood of the reference transcript;
* a **frame labeller** (:data:`LABELLERS`): which group (and, for phones, which manifest segment)
  each layer frame belongs to: ``phone`` (the segment containing the frame's centre time) or
  ``predicted`` (the argmax grapheme at the nearest valid output frame).

Each part is a tiny object with a ``name``; a new one is a new class and one registry entry.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Protocol, Sequence, runtime_checkable

import numpy as np
import torch
import torch.nn.functional as F

from ..labels import frame_times
from ..phones import PHONES
from ..text import ALPHABET, encode, normalize_text

__all__ = ["ProfileError", "Adjustment", "ScoreTarget", "FrameLabeller", "BatchLabels", "ADJUSTMENTS",
           "SCORE_TARGETS", "LABELLERS", "GRAPHEME_GROUPS", "pick", "segment_index"]


class ProfileError(ValueError):
    """A profile cannot be computed or read as asked (the message names the file or the argument)."""


#: Group names of the ``predicted`` grouping, index-aligned with :data:`toposcope.text.ALPHABET`.
GRAPHEME_GROUPS: tuple[str, ...] = ("blank", "space", "apostrophe") + tuple(ALPHABET[3:])


def pick(registry: Mapping[str, object], value, what: str):
    """``registry[value]`` for a name, ``value`` itself for an object (clear error for unknown names)."""
    if not isinstance(value, str):
        return value
    try:
        return registry[value]
    except KeyError:
        raise ProfileError(f"{what} must be one of {', '.join(registry)}, got {value!r}") from None


# ---------------------------------------------------------------------------------------------------
# adjustments: A, G (batch, C, T_l) -> adjusted activation (batch, C, T_l)
# ---------------------------------------------------------------------------------------------------
@runtime_checkable
class Adjustment(Protocol):
    """``adjustment(A, G) -> (batch, C, T_l)``: what is averaged per frame (``G`` is ``None`` unless
    ``needs_grad``)."""

    name: str
    needs_grad: bool  # False: no backward pass at all

    def __call__(self, a: torch.Tensor, g: torch.Tensor | None) -> torch.Tensor: ...


@dataclass(frozen=True)
class ActivationTimesGradient:
    """GradNAP (default): ``A * G``, each activation's first-order contribution to the score."""

    name: str = "gradnap"
    needs_grad: bool = True

    def __call__(self, a, g):
        return a * g


@dataclass(frozen=True)
class Activation:
    """NAP: the activation ``A`` itself."""

    name: str = "nap"
    needs_grad: bool = False

    def __call__(self, a, g):
        return a


@dataclass(frozen=True)
class AbsGradientTimesActivation:
    """``|G| * A``: activation weighted by the gradient's magnitude (sign of ``G`` ignored)."""

    name: str = "absgrad"
    needs_grad: bool = True

    def __call__(self, a, g):
        return a * g.abs()


ADJUSTMENTS: dict[str, Adjustment] = {a.name: a for a in (ActivationTimesGradient(), Activation(),
                                                          AbsGradientTimesActivation())}


# ---------------------------------------------------------------------------------------------------
# score targets: log-probs (batch, T_o, K) -> (scalar score summed over the batch, n infeasible)
# ---------------------------------------------------------------------------------------------------
@runtime_checkable
class ScoreTarget(Protocol):
    """``target(logp (B, T_o, K), out_len (B,), utterances) -> (score, n_left_out)``: the scalar whose
    gradient ``G`` gradient adjustments use. ``left_out_key`` (optional): the ``meta`` key counting
    utterances left out."""

    name: str

    def __call__(self, logp: torch.Tensor, out_len: torch.Tensor, utterances: Sequence) -> tuple[torch.Tensor, int]:
        """Score summed over the batch (utterances are independent, so each one's gradient is its own)
        and the number of utterances whose score had to be left out."""


@dataclass(frozen=True)
class PredictedScore:
    """``s = sum_t log p_t(argmax_k p_t(k))`` over each utterance's valid output frames."""

    name: str = "predicted"

    def __call__(self, logp, out_len, utterances):
        best = logp.max(dim=-1).values  # (B, T_o)
        valid = torch.arange(logp.shape[1], device=logp.device)[None] < out_len[:, None]
        return (best * valid).sum(), 0


@dataclass(frozen=True)
class CTCScore:
    """``s = log p(reference transcript)`` (CTC, blank 0); utterances too short for their transcript
    contribute nothing and are counted."""

    name: str = "ctc"
    left_out_key: str = "ctc_infeasible_utterances"

    def __call__(self, logp, out_len, utterances):
        tgts = [torch.tensor(encode(normalize_text(u.text)), dtype=torch.long) for u in utterances]
        tl = torch.tensor([len(t) for t in tgts], dtype=torch.long)
        if (tl == 0).any():
            bad = [u.id for u, t in zip(utterances, tgts) if len(t) == 0]
            raise ProfileError(f"utterance(s) {', '.join(bad)}: empty transcript after normalisation; "
                               f"the ctc target needs text")
        flat, tl = torch.cat(tgts).to(logp.device), tl.to(logp.device)
        nll = F.ctc_loss(logp.transpose(0, 1), flat, out_len, tl, blank=0, reduction="none", zero_infinity=True)
        with torch.no_grad():
            check = F.ctc_loss(logp.detach().transpose(0, 1), flat, out_len, tl, blank=0, reduction="none")
        return -nll.sum(), int((~torch.isfinite(check)).sum())


SCORE_TARGETS: dict[str, ScoreTarget] = {t.name: t for t in (PredictedScore(), CTCScore())}


# ---------------------------------------------------------------------------------------------------
# frame labellers
# ---------------------------------------------------------------------------------------------------
def segment_index(times: np.ndarray, segments: Sequence[tuple[float, float, str]]) -> np.ndarray:
    """Index of the segment ``[start, end)`` containing each time (``-1``: none). ``segments`` sorted."""
    out = np.full(len(times), -1, dtype=np.int64)
    if not len(segments):
        return out
    starts = np.array([s for s, _, _ in segments], dtype=np.float64)
    ends = np.array([e for _, e, _ in segments], dtype=np.float64)
    k = np.searchsorted(starts, times, side="right") - 1
    kk = np.clip(k, 0, len(segments) - 1)
    ok = (k >= 0) & (times < ends[kk])
    out[ok] = k[ok]
    return out


class BatchLabels(Protocol):
    """A labeller's answer for one batch."""

    #: per utterance ``(start_s, end_s, label)`` events (ERP epochs are centred on them)
    segments: list[list[tuple[float, float, str]]]

    def frame_units(self, times: np.ndarray, n_len: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """For layer frames centred at ``times (T,)`` with ``n_len (B,)`` valid frames: ``units (B, T)``
        (per-utterance unit index, ``-1`` for unlabelled or padded frames) and ``unit_group (B, U)``
        (group index of each unit, ``-1``: no group). Frames of one unit are summed together."""


@runtime_checkable
class FrameLabeller(Protocol):
    """``labeller.label(utterances, pred, out_len, out_times, out_step) -> BatchLabels``: the groups
    (and units) of every layer frame of a batch."""

    name: str
    groups: tuple[str, ...]
    #: True: units are the manifest's segments (kept per segment in ``Profiles.segments``)
    segment_rows: bool
    #: True: needs the model's argmax prediction
    needs_prediction: bool

    def label(self, utterances: Sequence, pred: np.ndarray | None, out_len: np.ndarray,
              out_times: np.ndarray | None, out_step: float) -> BatchLabels: ...


@dataclass
class _SegmentLabels:
    segments: list[list[tuple[float, float, str]]]
    groups: tuple[str, ...]

    def frame_units(self, times, n_len):
        B, T = len(self.segments), len(times)
        index = {g: i for i, g in enumerate(self.groups)}
        U = max([len(s) for s in self.segments] + [1])
        units = np.full((B, T), -1, dtype=np.int64)
        unit_group = np.full((B, U), -1, dtype=np.int64)
        for b, segs in enumerate(self.segments):
            L = int(n_len[b])
            units[b, :L] = segment_index(times[:L], segs)
            unit_group[b, :len(segs)] = [index.get(lab, -1) for _, _, lab in segs]
        return units, unit_group


@dataclass(frozen=True)
class PhoneLabeller:
    """Layer frame ``t`` -> the manifest phone segment containing its centre time (each layer at its own
    stride, :func:`toposcope.labels.frame_times`)."""

    name: str = "phone"
    groups: tuple[str, ...] = tuple(PHONES)
    segment_rows: bool = True
    needs_prediction: bool = False

    def label(self, utterances, pred, out_len, out_times, out_step):
        return _SegmentLabels([list(u.phones) for u in utterances], self.groups)


@dataclass
class _PredictedLabels:
    pred: np.ndarray  # (B, T_o) argmax grapheme
    out_len: np.ndarray  # (B,)
    out_times: np.ndarray  # (T_o,)
    out_step: float
    n_groups: int

    def frame_units(self, times, n_len):
        B, T = self.pred.shape[0], len(times)
        units = np.full((B, T), -1, dtype=np.int64)
        for b in range(B):
            L, n_out = int(n_len[b]), int(self.out_len[b])
            if n_out > 0 and L > 0:  # argmax grapheme at the nearest valid output frame (ties: the earlier)
                units[b, :L] = self.pred[b, _nearest(self.out_times[:n_out], times[:L])]
        return units, np.broadcast_to(np.arange(self.n_groups, dtype=np.int64), (B, self.n_groups))

    @property
    def segments(self):
        """Runs of one predicted grapheme, edges half an output frame beyond the run's first/last frame."""
        t, half = self.out_times, self.out_step / 2
        segs = []
        for b in range(self.pred.shape[0]):
            p = self.pred[b, :int(self.out_len[b])]
            if not len(p):
                segs.append([])
                continue
            cut = np.flatnonzero(p[1:] != p[:-1]) + 1
            first = np.concatenate([[0], cut])
            last = np.concatenate([cut - 1, [len(p) - 1]])
            segs.append([(float(t[i] - half), float(t[j] + half), GRAPHEME_GROUPS[int(p[i])])
                         for i, j in zip(first, last)])
        return segs


@dataclass(frozen=True)
class PredictedGraphemeLabeller:
    """Layer frame ``t`` -> the model's argmax grapheme at the valid output frame nearest in time
    (groups :data:`GRAPHEME_GROUPS`)."""

    name: str = "predicted"
    groups: tuple[str, ...] = GRAPHEME_GROUPS
    segment_rows: bool = False
    needs_prediction: bool = True

    def label(self, utterances, pred, out_len, out_times, out_step):
        return _PredictedLabels(pred, np.asarray(out_len), out_times, out_step, len(self.groups))


LABELLERS: dict[str, FrameLabeller] = {l.name: l for l in (PhoneLabeller(), PredictedGraphemeLabeller())}


def _nearest(sorted_times: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Index of the element of increasing ``sorted_times`` nearest to each ``x`` (ties: the earlier)."""
    j = np.clip(np.searchsorted(sorted_times, x), 1, max(len(sorted_times) - 1, 1))
    j = np.minimum(j, len(sorted_times) - 1)
    prev = np.maximum(j - 1, 0)
    return np.where(np.abs(sorted_times[prev] - x) <= np.abs(sorted_times[j] - x), prev, j)


def output_frame_times(n_out: int, out_geom, hop: int, sample_rate: int) -> tuple[np.ndarray, float]:
    """Centre times ``(T_o,)`` of the output frames and the spacing between them, in seconds."""
    step = hop / sample_rate * float(np.prod([s for _, s, _ in out_geom]))
    return frame_times(n_out, out_geom, hop, sample_rate), step
