"""The batched exemplar search (``ExemplarSearch.update_acts``: one pass per layer over a whole padded batch)
against a plain per-utterance, per-target reference written out below, on planted activations full of exact
ties, zeros, padding garbage and too-short utterances: every exemplar, value (bit for bit), per-frame peak and
count must be the same."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from toposcope.analysis.exemplars import ExemplarConfig, ExemplarSearch, Target
from toposcope.labels import frame_times
from toposcope.optimize import receptive_field


def _utt(i: int, n_frames: int, hop: int = 160, sr: int = 16000):
    d = n_frames * hop / sr
    return SimpleNamespace(id=f"u{i}", speaker="s", duration=d, phones=[(0.0, d / 2, "aa"), (d / 2, d, "s")])


def _reference(batches, targets, layer, rf, n, k, allow_overlap):
    """One utterance and one target at a time: the valid frames' series, the per-frame peak (strictly larger
    wins, so the first utterance and frame), every window mean (float64 cumulative sums), greedy
    non-overlapping picks of positive windows (largest first; ties: earlier window), then the top k of all
    picks by value, utterance order, window start."""
    picks = {t.key: [] for t in targets}
    peak = {t.key: (-np.inf, -1, -1) for t in targets}
    too_short = 0
    ui = 0
    for acts, lengths in batches:
        a = acts[layer]
        for b, L in enumerate(lengths):
            v = rf.valid_frames(L, a.shape[-1])
            if v.stop - v.start < n:
                too_short += 1
            for t in targets:
                s = a[b, list(t.filters)].float().mean(0) if len(t.filters) > 1 else a[b, t.filters[0]]
                s = s.numpy()[v]
                for j, x in enumerate(s):
                    if x > peak[t.key][0]:
                        peak[t.key] = (float(x), ui, v.start + j)
                if len(s) < n:
                    continue
                c = np.zeros(len(s) + 1)
                np.cumsum(s, dtype=np.float64, out=c[1:])
                means = (c[n:] - c[:-n]) / n
                chosen = []
                for j in sorted(range(len(means)), key=lambda j: (-means[j], j)):
                    if len(chosen) == k or not means[j] > 0:
                        break
                    if allow_overlap or all(abs(j - p) >= n for p in chosen):
                        chosen.append(j)
                picks[t.key] += [(float(means[j]), ui, v.start + j) for j in chosen]
            ui += 1
    top = {key: sorted(p, key=lambda w: (-w[0], w[1], w[2]))[:k] for key, p in picks.items()}
    return top, picks, peak, too_short


def _planted_batches(model, layer, rng, lengths_per_batch, C):
    """Activations on a coarse grid of values (0, 1, 1.5, 2: many exact ties across utterances and windows,
    many all-zero stretches; region means over 2 or 4 filters are exact in float32 whatever the summation
    order), with large garbage in the frames that see padding."""
    geo = model.geometry(layer)
    out = []
    for lengths in lengths_per_batch:
        T_in = max(lengths)
        T = T_in
        for kernel, stride, pad in geo:
            T = (T + 2 * pad - kernel) // stride + 1
        a = torch.from_numpy(rng.integers(0, 5, size=(len(lengths), C, T)).astype(np.float32) / 2)
        a[a < 1.0] = 0.0  # zeros: windows where a target never fires
        rf = receptive_field(model, layer)
        for b, L in enumerate(lengths):
            v = rf.valid_frames(L, T)
            a[b, :, :v.start] = 100.0  # frames that see padding must never be read
            a[b, :, v.stop:] = 100.0
        out.append(({layer: a}, lengths))
    return out


@pytest.mark.parametrize("allow_overlap", [False, True])
@pytest.mark.parametrize("k", [1, 3, 8])
def test_batched_search_equals_per_utterance_reference_exactly(tiny_model, k, allow_overlap):
    layer = "conv2"
    C = tiny_model.grids[layer].size
    rng = np.random.default_rng(7 + k)
    rf = receptive_field(tiny_model, layer)
    n = 4
    # batches of mixed lengths: some utterances shorter than one window, one without a single valid frame
    lengths_per_batch = [[60, 44, 30, 18], [15, 80], [40, 40, 40], [rf.size - 1, 70, 26, 55, 61]]
    batches = _planted_batches(tiny_model, layer, rng, lengths_per_batch, C)
    targets = [Target(f"filter_{i}", layer, (i,)) for i in (0, 1, 5, C - 1)] + [
        Target("joint", layer, (0, 1, 5, 9)), Target("joint2", layer, (2, 3))]
    search = ExemplarSearch(tiny_model, targets, config=ExemplarConfig(k=k, allow_overlap=allow_overlap),
                            windows={layer: n}, hop=160, sample_rate=16000)
    utts = []
    for bi, (acts, lengths) in enumerate(batches):
        chunk = [_utt(len(utts) + i, L) for i, L in enumerate(lengths)]
        utts += chunk
        search.update_acts(acts, torch.tensor(lengths), chunk)
    res = search.result()
    top, picks, peak, too_short = _reference(batches, targets, layer, rf, n, k, allow_overlap)
    assert res.too_short[layer] == too_short and too_short >= 3
    assert res.n_utterances == len(utts)
    n_ties = 0
    for t in targets:
        got = [(x.value, x.utt, x.layer_frame) for x in res.exemplars[t.key]]
        want = [(v, f"u{u}", s) for v, u, s in top[t.key]]
        assert got == want, t  # exact: values bit for bit, and the same tie-breaking
        n_ties += sum(sum(w[0] == v for w in picks[t.key]) > 1 for v, _, _ in top[t.key])
        pv, pu, pt = peak[t.key]
        fm = res.frame_max[t.key]
        assert fm == (pv, f"u{pu}", float(frame_times(pt + 1, tiny_model.geometry(layer), 160, 16000)[pt]))
        assert all(x.value < 100 for x in res.exemplars[t.key])  # no padded frame was read
    assert n_ties > 0  # the planted values did produce ties for the tie-breaking to decide


def test_reused_exemplar_figure_gives_the_png_of_a_new_one():
    """``exemplars_run`` redraws one figure per shape for every region; each PNG must be the one a new figure
    gives (labels of different lengths move the constrained layout, so the reused figure starts from the
    grid's positions again)."""
    from toposcope.analysis.exemplars import _close_figures, _exemplar_figure

    rng = np.random.default_rng(0)
    regions = []
    for r, phones in enumerate(["sil", "aa b k s iy ng th dh eh ow w", "z"]):
        crops = rng.normal(size=(4, 16, 12)).astype(np.float32) * (r + 1)
        labels = [f"u{r}{i} {0.1 * i:.2f}s  {1.5 - 0.1 * i:.2f}\n{phones}" for i in range(4)]
        regions.append((crops, crops.mean(0), labels, f"conv1 · /g{r}/ · top 4 real windows (joint)"))
    shared: dict = {}
    try:
        for crops, mean, labels, title in regions:
            fresh: dict = {}
            want = _exemplar_figure(crops, mean, labels, suptitle=title, frame_seconds=0.01, figures=fresh)
            _close_figures(fresh)
            got = _exemplar_figure(crops, mean, labels, suptitle=title, frame_seconds=0.01, figures=shared)
            assert len(shared) == 1
            assert got == want
    finally:
        _close_figures(shared)
