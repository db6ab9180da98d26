"""Exemplars (toposcope.analysis.exemplars): streaming top-k windows against brute force, a planted filter
whose exemplars are exactly the planted segments, and a run folder's files."""

from __future__ import annotations

import json
import shutil
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from toposcope.analysis.exemplars import (ExemplarConfig, ExemplarSearch, Target, phone_histogram, search_exemplars,
                                          targets_for_region, window_span)
from toposcope.config import load_config
from toposcope.corpus import Utterance
from toposcope.model import Wav2Letter
from toposcope.optimize import activations, input_geometry, receptive_field


def _store(feats: dict):
    return SimpleNamespace(get=lambda uid: feats[uid])


_CORPUS = SimpleNamespace(root=".", audio_path=lambda u: None)  # features come from the store


def _utts(lengths, hop=160, sr=16000):
    out = []
    for i, n in enumerate(lengths):
        d = n * hop / sr
        out.append(Utterance(id=f"u{i}", audio=f"a/u{i}.wav", speaker=f"s{i % 2}", text="x", duration=d,
                             phones=[(0.0, d / 2, "aa"), (d / 2, d, "s")]))
    return out


def _brute(model, feats, utts, target, n, k):
    """Every valid window of every utterance, then greedy non-overlapping picks per utterance, then top-k."""
    rf = receptive_field(model, target.layer)
    cands = []
    for u in utts:
        f = feats[u.id]
        a = activations(model, f[None], [target.layer])[target.layer][0, list(target.filters)].mean(0).double()
        v = rf.valid_frames(f.shape[1], a.shape[0])
        wins = [(float(a[s:s + n].mean()), s) for s in range(v.start, v.stop - n + 1)]
        picked = []
        for val, s in sorted(wins, key=lambda w: (-w[0], w[1])):
            if val > 0 and all(abs(s - p) >= n for _, p in picked) and len(picked) < k:
                picked.append((val, s))
        cands += [(val, u.id, s) for val, s in picked]
    return sorted(cands, key=lambda c: (-c[0], c[1], c[2]))[:k]


def test_search_matches_brute_force_and_does_not_depend_on_batching(tiny_model):
    g = torch.Generator().manual_seed(1)
    lengths = [90, 61, 140, 75, 38, 20]  # the last is shorter than one conv2 window
    utts = _utts(lengths)
    feats = {u.id: torch.randn(32, n, generator=g) for u, n in zip(utts, lengths)}
    targets = targets_for_region("conv2", [3, 4, 11]) + [Target("filter_7", "conv1", (7,))]
    res = {}
    for bs in (1, 4):
        res[bs] = search_exemplars(tiny_model, _CORPUS, utts, targets, store=_store(feats),
                                   config=ExemplarConfig(k=5, seconds=0.2, batch_size=bs), progress_bar=False)
    for t in targets:
        n = res[1].windows[t.layer]
        assert n == input_geometry(tiny_model, t.layer, 0.2).n_valid
        want = _brute(tiny_model, feats, utts, t, n, 5)
        for bs in (1, 4):
            got = [(x.value, x.utt, x.layer_frame) for x in res[bs].exemplars[t.key]]
            assert [(u, s) for _, u, s in got] == [(u, s) for _, u, s in want], (t, bs)
            assert np.allclose([v for v, _, _ in got], [v for v, _, _ in want], rtol=1e-4, atol=1e-6)
        # per-frame peak >= best window mean, and it is a real frame value
        assert res[4].frame_max[t.key][0] >= res[4].exemplars[t.key][0].value - 1e-9
    assert res[4].too_short["conv2"] >= 1 and res[4].n_utterances == len(utts)
    # the shared search reads the same numbers as the optimiser's objectives
    s = ExemplarSearch(tiny_model, targets, config=ExemplarConfig(k=2, seconds=0.2))
    assert torch.allclose(s.readout["conv2"][-1][[3, 4, 11]], torch.full((3,), 1 / 3))


def test_window_span_is_the_optimal_input_geometry(tiny_model):
    rf = receptive_field(tiny_model, "conv2")  # R 13, J 2, P 6
    geo = input_geometry(tiny_model, "conv2", 0.5)
    (f0, f1), (t0, t1) = window_span(geo.valid.start, geo.n_valid, rf, 160, 16000, duration=10.0)
    assert (f0, f1) == (0, geo.frames - 1)
    assert t0 == 0.0 and t1 == pytest.approx((geo.frames - 0.5) * 0.01)
    (f0, f1), (t0, t1) = window_span(10, 3, rf, 160, 16000, duration=0.3)
    assert (f0, f1) == (14, 14 + 13 + 2 * 2 - 1) and t0 == pytest.approx(0.135) and t1 == 0.3  # clipped


def test_layout_cells_map_back_to_units():
    from toposcope.analysis.layouts import Layout, region_in_units
    from toposcope.grid import Grid

    lay = Layout(layer="conv1", method="som", features="gradnap", grid=Grid(2, 2),
                 cell_of_unit=[2, 0, 3, 1], fit_split="train")  # unit 0 sits at cell 2, unit 1 at cell 0, ...
    assert region_in_units({"filters": [0, 1, 2, 3]}, lay)["filters"] == [1, 3, 0, 2]
    assert region_in_units({"filters": [2]}, lay)["filters"] == [0]


def test_phone_histogram_hand_computed():
    ex = [{"start": 0.0, "end": 1.0, "phones": [[0.0, 0.25, "th"], [0.25, 1.2, "iy"]]},
          {"start": 2.0, "end": 3.0, "phones": [[1.9, 2.5, "th"], [2.5, 3.0, "sil"]]}]
    h = phone_histogram(ex, {"th": 1.0, "iy": 3.0, "sil": 6.0})
    assert list(h) == ["iy", "th", "sil"]
    assert h["th"]["seconds"] == pytest.approx(0.75) and h["th"]["share"] == pytest.approx(0.375)
    assert h["th"]["contains"] == 2 and h["iy"]["contains"] == 1
    assert h["th"]["base"] == pytest.approx(0.1) and h["th"]["enrichment"] == pytest.approx(3.75)


def _planted_corpus(root):
    """8 utterances of faint noise; 8 bursts of a 1.5 kHz tone (120 ms) labelled ``th``, 1-2 per utterance,
    plus distractor 400 Hz bursts labelled ``s``."""
    from toposcope.audio import write_wav
    from toposcope.corpus import Corpus, write_manifest

    sr, rng = 16000, np.random.default_rng(0)
    (root / "audio").mkdir(parents=True)
    plan = {0: [0.4], 1: [0.3, 1.2], 2: [], 3: [0.9], 4: [0.5, 1.4], 5: [1.1], 6: [], 7: [0.6]}
    utts = []
    for i, starts in plan.items():
        d = 2.0
        w = 0.01 * rng.standard_normal(int(d * sr))
        t = np.arange(int(0.12 * sr)) / sr
        segs = []
        for s, f, lab in [(s, 1500.0, "th") for s in starts] + [(s, 400.0, "s") for s in ([1.6] if i % 2 else [0.1])]:
            a = int(s * sr)
            w[a:a + len(t)] += 0.3 * np.sin(2 * np.pi * f * t) * np.hanning(len(t))
            segs.append((s, s + 0.12, lab))
        segs.sort()
        phones, prev = [], 0.0
        for s, e, lab in segs:
            if s > prev:
                phones.append((prev, s, "sil"))
            phones.append((s, e, lab))
            prev = e
        phones.append((prev, d, "sil"))
        write_wav(root / "audio" / f"p{i}.wav", w.astype(np.float32), sr)
        utts.append(Utterance(id=f"p{i}", audio=f"audio/p{i}.wav", speaker="x", text="a", duration=d,
                              phones=phones, split="test"))
    write_manifest(root / "manifest.jsonl", utts)
    return Corpus.load(root)


def test_planted_filter_finds_exactly_the_planted_segments(tmp_path):
    from toposcope.data import load_features
    from toposcope.features import hz_to_mel, mel_to_hz

    corpus = _planted_corpus(tmp_path / "c")
    torch.manual_seed(0)
    model = Wav2Letter(load_config("tiny").model).eval()
    fc = model.cfg.features
    centres = mel_to_hz(np.linspace(hz_to_mel(fc.f_min), hz_to_mel(fc.top), fc.n_mels + 2))[1:-1]
    band = int(np.argmin(np.abs(centres - 1500.0)))
    conv = model.conv("conv1")
    with torch.no_grad():  # filter 0 = energy in the 1.5 kHz band across its 5 frames, high threshold
        conv.weight.zero_()
        conv.weight[0, band, :] = 1.0
        conv.bias.zero_()
        conv.bias[0] = -5.0
    store = load_features(corpus, fc, cache=False, progress=False)
    t = Target("filter_0", "conv1", (0,))
    res = search_exemplars(model, corpus, list(corpus), [t], store=store, config=ExemplarConfig(k=8, seconds=0.1),
                           progress_bar=False)
    ex = res.exemplars[t.key]
    planted = {(u.id, s) for u in corpus for s, _, lab in u.phones if lab == "th"}
    assert len(planted) == 8 and len(ex) == 8
    hit = set()
    for x in ex:
        ths = [(x.utt, s) for s, e, lab in x.phones if lab == "th"]
        assert len(ths) == 1, x  # every exemplar covers exactly one planted segment
        s = ths[0][1]
        assert x.start <= s + 0.03 and x.end >= s + 0.09  # ... and (nearly) all of it
        hit.add(ths[0])
    assert hit == planted
    h = phone_histogram(ex, res.phone_seconds)
    assert h["th"]["contains"] == 8 and h["th"]["enrichment"] > 3 and "s" not in h
    vals = [x.value for x in ex]
    assert vals == sorted(vals, reverse=True) and vals[-1] > 0


def test_run_folder_exemplars_inside_utterances_and_phones_match_manifest(tiny_run, tiny_corpus, tmp_path):
    from toposcope.analysis.exemplars import exemplars_run
    from toposcope.cli import main

    run = tmp_path / "run"
    shutil.copytree(tiny_run / "checkpoints", run / "checkpoints")
    shutil.copy(tiny_run / "config.toml", run / "config.toml")
    (run / "maps").mkdir()
    regions = {"conv1": {"aa": {"center": [2, 2], "filters": [9, 10, 11, 17, 18, 19, 25, 26, 27], "value": 0.5}},
               "conv2": {"s": {"center": [0, 0], "filters": [0, 1, 8, 9], "value": 0.2}}}
    (run / "maps" / "regions.json").write_text(json.dumps(regions))
    s = exemplars_run(run, data=tiny_corpus.root, config=ExemplarConfig(k=4), progress=False)
    by_id = {u.id: u for u in tiny_corpus}
    assert s["split"] == "test" and s["n_utterances_searched"] == len(tiny_corpus.split("test"))
    d = json.loads((run / "exemplars" / "conv1" / "aa.json").read_text())
    assert [t["name"] for t in d["targets"]] == [f"filter_{i}" for i in regions["conv1"]["aa"]["filters"]] + ["joint"]
    for t in d["targets"]:
        vals = [x["value"] for x in t["exemplars"]]
        assert vals == sorted(vals, reverse=True) and len(vals) <= 4
        if vals:
            assert t["data_max_window"] == vals[0] and t["data_max_frame"]["value"] >= vals[0] - 1e-9
        for x in t["exemplars"]:
            u = by_id[x["utt"]]
            assert u.split == "test" and 0 <= x["start"] < x["end"] <= u.duration + 1e-9
            assert x["end"] - x["start"] <= d["window"]["seconds"] + 1e-6
            want = [[s_, e_, lab] for s_, e_, lab in u.phones if s_ < x["end"] and e_ > x["start"]]
            assert x["phones"] == want and want
    joint = d["targets"][-1]
    assert joint["exemplars"], "a trained region fires somewhere on real speech"
    crops = np.load(run / "exemplars" / "conv1" / "aa" / "crops.npz")
    assert crops["joint"].shape == (len(joint["exemplars"]), 32, d["window"]["input_frames"])
    assert np.allclose(crops["joint_mean"], crops["joint"].mean(0))
    for x in joint["exemplars"]:
        wav = run / "exemplars" / x["audio"]
        assert wav.stat().st_size > 44 + 2 * 16000 * (x["end"] - x["start"]) - 200
    assert (run / "exemplars" / "conv1" / "aa" / "exemplars.png").stat().st_size > 5000
    assert d["phone_histogram"] == joint["phone_histogram"]
    assert abs(sum(p["share"] for p in d["phone_histogram"].values()) - 1.0) < 1e-6
    # the CLI: same files, clear error for an unknown layer
    assert main(["exemplars", str(run), "--layer", "conv2", "--data", str(tiny_corpus.root), "-k", "3",
                 "--no-progress"]) == 0
    d2 = json.loads((run / "exemplars" / "conv2" / "s.json").read_text())
    assert d2["k"] == 3 and all(len(t["exemplars"]) <= 3 for t in d2["targets"])
    assert main(["exemplars", str(run), "--layer", "conv9", "--data", str(tiny_corpus.root)]) == 2
