"""Profiles (docs/method.md § Profiles): a planted model/corpus where the right answer is known by construction."""

from __future__ import annotations

import numpy as np
import pytest

from helpers import random_tiny_model
import soundfile as sf
import torch

from toposcope.config import load_config
from toposcope.corpus import Corpus, Utterance, write_manifest
from toposcope.features import mel_filterbank
from toposcope.maps import find_region
from toposcope.model import Wav2Letter
from toposcope.profiles import (GRAPHEME_GROUPS, compute_profiles, layer_lengths, load_profiles,
                                subtract_baseline)
from toposcope.text import ALPHABET

SR = 16000
TONE_HZ = 2000.0
PLANT = (3, 4)  # grid position of the planted channel in conv1's 8x8 grid
# (label, duration) per utterance; the tone sounds inside every "s", 40 ms from its edges
LAYOUTS = [
    [("sil", 0.20), ("aa", 0.30), ("s", 0.30), ("t", 0.20), ("sil", 0.20)],
    [("sil", 0.10), ("s", 0.25), ("aa", 0.35), ("t", 0.15), ("sil", 0.15)],
    [("sil", 0.15), ("t", 0.20), ("aa", 0.20), ("s", 0.35), ("sil", 0.30)],
    [("sil", 0.25), ("aa", 0.25), ("t", 0.25), ("s", 0.30), ("sil", 0.10)],
    [("sil", 0.12), ("s", 0.28), ("t", 0.22), ("aa", 0.28), ("sil", 0.20)],
]


@pytest.fixture(scope="module")
def planted_corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("planted")
    (root / "audio").mkdir()
    rng = np.random.default_rng(0)
    utts = []
    for i, layout in enumerate(LAYOUTS):
        dur = sum(d for _, d in layout)
        n = int(round(dur * SR))
        wave = 0.01 * rng.standard_normal(n)
        phones, t = [], 0.0
        for lab, d in layout:
            phones.append((round(t, 6), round(t + d, 6), lab))
            if lab == "s":
                a, b = int((t + 0.04) * SR), int((t + d - 0.04) * SR)
                wave[a:b] += 0.5 * np.sin(2 * np.pi * TONE_HZ * np.arange(b - a) / SR)
            t += d
        sf.write(root / "audio" / f"u{i}.wav", wave.astype(np.float32), SR, subtype="FLOAT")
        utts.append(Utterance(id=f"u{i}", audio=f"audio/u{i}.wav", speaker="x", text="s a t", duration=n / SR,
                              phones=phones, split="test"))
    write_manifest(root / "manifest.jsonl", utts)
    return Corpus.load(root)


@pytest.fixture(scope="module")
def planted_model():
    return build_planted_model()


def build_planted_model():
    """tiny config; conv1 channel c (grid (3, 4)) fires only when the tone's mel bin is high, its 3x3
    neighbours at half strength; channel 0 fires everywhere; conv2 / conv3 / output pass them on."""
    cfg = load_config("tiny").model
    m = Wav2Letter(cfg).eval()
    fb = mel_filterbank(cfg.features)  # (freqs, mels)
    tone_bin = int(fb[int(round(TONE_HZ / (SR / 2) * (fb.shape[0] - 1)))].argmax())
    grid = m.grids["conv1"]
    c = grid.index(*PLANT)
    block = [grid.index(r, q) for r in range(PLANT[0] - 1, PLANT[0] + 2) for q in range(PLANT[1] - 1, PLANT[1] + 2)]
    with torch.no_grad():
        for p in m.parameters():
            p.zero_()
        w1, b1 = m.conv("conv1").weight, m.conv("conv1").bias  # (64, 32, 5)
        for i in block:
            s = 1.0 if i == c else 0.5
            w1[i, tone_bin, 2] = s
            b1[i] = -s
        b1[0] = 1.0  # an "always on" channel
        w2 = m.conv("conv2").weight  # (64, 64, 5): identity (centre tap) on the used channels
        for i in block + [0]:
            w2[i, i, 2] = 1.0
        w3 = m.conv("conv3").weight  # (32, 64, 1)
        w3[0, block, 0] = 1.0
        w3[1, 0, 0] = 1.0
        wo = m.conv("output").weight  # (29, 32, 1)
        wo[ALPHABET.index("s"), 0, 0] = 0.5  # moderate: p(s) does not saturate, so G stays sizeable
        wo[0, 1, 0] = 1.0  # blank
    return m, c, block


def _expected_counts(times_fn, n_frames_fn, corpus):
    out = {}
    for u in corpus:
        for t in range(n_frames_fn(u)):
            tc = times_fn(t)
            for s, e, lab in u.phones:
                if s <= tc < e:
                    out[lab] = out.get(lab, 0) + 1
    return out


def test_planted_gradnap(planted_corpus, planted_model):
    model, c, block = planted_model
    prof = compute_profiles(model, planted_corpus, batch_size=2, progress=False)
    assert prof.groups == ("aa", "s", "t", "sil")  # present groups, PHONES order
    assert prof.method == "gradnap" and prof.grouping == "phone"
    s = prof.group_index("s")
    for layer in ("conv1", "conv2"):
        lp = prof[layer]
        assert lp.values.shape == (4, 64) and lp.raw.shape == (4, 64)
        # the planted phone has its maximum at the planted channel ...
        assert int(np.argmax(lp.values[s])) == c
        assert lp.raw[s, c] > 0.01
        # ... and the channel is silent for every other phone (frame labels at the right stride)
        others = [i for i in range(4) if i != s]
        np.testing.assert_allclose(lp.raw[others][:, block], 0.0, atol=1e-12)
        assert (lp.values[others, c] < 0).all()
        # baseline subtraction: zero mean over groups
        np.testing.assert_allclose(lp.values.mean(axis=0), 0.0, atol=1e-12)
        # the region of the planted phone sits on the planted position
        reg = find_region(lp.maps()[s])
        assert reg.center == PLANT and c in reg.filters and len(reg.filters) == 9
    # channels that never fire have exactly zero profiles
    dead = [i for i in range(64) if i not in block and i != 0]
    np.testing.assert_array_equal(prof["conv1"].raw[:, dead], 0.0)
    # conv3 (8x4 grid): channel 0 sums the block -> its maximum for /s/ is channel 0
    assert int(np.argmax(prof["conv3"].values[s])) == 0


def test_frame_labels_at_each_stride(planted_corpus, planted_model):
    """Counts per phone equal a hand computation: conv frame t is centred at feature frame 2t
    (stride 2, k5, pad 2 -> 2t - 2 + 2), i.e. at 2t * 10 ms."""
    model, _, _ = planted_model
    prof = compute_profiles(model, planted_corpus, method="nap", batch_size=3, progress=False)
    hop = model.cfg.features.hop / SR

    def n1(u):
        n_feat = int(round(u.duration * SR)) // model.cfg.features.hop + 1
        return (n_feat + 4 - 5) // 2 + 1

    exp = _expected_counts(lambda t: 2 * t * hop, n1, planted_corpus)
    for layer in ("conv1", "conv2", "conv3"):  # conv2/conv3 keep conv1's stride
        got = dict(zip(prof.groups, prof[layer].counts.tolist()))
        assert got == exp
    # layer_lengths follows Conv1d's arithmetic
    assert layer_lengths(torch.tensor([101, 100]), model.geometry("conv1")).tolist() == [51, 50]


def test_nap_batching_and_roundtrip(planted_corpus, planted_model, tmp_path):
    model, c, _ = planted_model
    a = compute_profiles(model, planted_corpus, method="nap", batch_size=1, progress=False)
    b = compute_profiles(model, planted_corpus, method="nap", batch_size=5, progress=False)
    for layer in a.layers:  # padded frames never leak into the sums
        np.testing.assert_allclose(a[layer].raw, b[layer].raw, rtol=1e-6, atol=1e-9)
        np.testing.assert_array_equal(a[layer].counts, b[layer].counts)
    s = a.group_index("s")
    # NAP of the always-on channel 0 is its bias everywhere (1.0), and cancels in the baseline
    np.testing.assert_allclose(a["conv1"].raw[:, 0], 1.0)
    np.testing.assert_allclose(a["conv1"].values[:, 0], 0.0, atol=1e-12)
    assert int(np.argmax(a["conv1"].values[s])) == c
    path = a.save(tmp_path / "profiles" / "nap-phone.npz")
    z = np.load(path)
    for key in ("conv1.values", "conv1.raw", "conv1.counts", "conv1.grid", "groups", "method", "grouping"):
        assert key in z.files
    assert z["conv1.grid"].tolist() == [8, 8] and z["conv3.grid"].tolist() == [8, 4]
    back = load_profiles(path)
    assert back.groups == a.groups and back.method == "nap" and back.name == "nap-phone"
    np.testing.assert_array_equal(back["conv2"].values, a["conv2"].values)
    assert back.map("conv1", "s").shape == (8, 8)
    with pytest.raises(FileNotFoundError, match="profile"):
        load_profiles(tmp_path / "missing.npz")


def test_predicted_grouping_and_epochs(planted_corpus, planted_model):
    model, c, _ = planted_model
    pred = compute_profiles(model, planted_corpus, grouping="predicted", progress=False)
    assert set(pred.groups) == {"blank", "s"} and set(pred.groups) <= set(GRAPHEME_GROUPS)
    assert int(np.argmax(pred["conv1"].values[pred.group_index("s")])) == c
    assert pred["conv1"].values[pred.group_index("blank"), c] < 0

    k = 2
    ep = compute_profiles(model, planted_corpus, method="nap", epochs=k, progress=False)
    lp = ep["conv1"]
    assert lp.epochs.shape == (4, 64, 2 * k + 1) and lp.epoch_counts.shape == (4, 2 * k + 1)
    n_seg = {g: sum(lab == g for u in planted_corpus for _, _, lab in u.phones) for g in ep.groups}
    assert dict(zip(ep.groups, lp.counts.tolist())) == n_seg  # one epoch per segment
    # map value = time average of the epoch; epochs are baseline-subtracted like the values
    np.testing.assert_allclose(lp.values, lp.epochs.mean(axis=2), atol=1e-12)
    s = ep.group_index("s")
    assert (lp.epochs[s, c] > 0).all()  # the tone is on at every frame within +-2 of an /s/ centre
    assert int(np.argmax(lp.values[s])) == c


def test_ctc_target_and_absgrad(planted_corpus, planted_model):
    model, c, _ = planted_model
    for kw in ({"target": "ctc"}, {"method": "absgrad"}):
        p = compute_profiles(model, planted_corpus, progress=False, **kw)
        s = p.group_index("s")
        assert int(np.argmax(p["conv1"].values[s])) == c
        np.testing.assert_allclose(p["conv1"].values.mean(axis=0), 0.0, atol=1e-12)


def test_subtract_baseline_by_hand():
    raw = np.array([[1.0, 4.0], [3.0, 0.0]])
    np.testing.assert_allclose(subtract_baseline(raw, [1, 1]), [[-1.0, 2.0], [1.0, -2.0]])
    # frame weighting: B = (3*raw0 + 1*raw1) / 4 = [1.5, 3.0]
    np.testing.assert_allclose(subtract_baseline(raw, [3, 1], "frames"), [[-0.5, 1.0], [1.5, -3.0]])
    with pytest.raises(ValueError, match="baseline"):
        subtract_baseline(raw, [1, 1], "median")


def test_bad_arguments(planted_corpus, planted_model):
    model, _, _ = planted_model
    with pytest.raises(ValueError, match="method"):
        compute_profiles(model, planted_corpus, method="grad", progress=False)
    with pytest.raises(ValueError, match="no grid"):
        compute_profiles(model, planted_corpus, layers=["output"], progress=False)
    with pytest.raises(ValueError, match="no utterances"):
        compute_profiles(model, planted_corpus, [], progress=False)


def _ddp_worker(rank, world, root, init, out):
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=world)
    try:
        model, _, _ = build_planted_model()
        prof = compute_profiles(model, Corpus.load(root), batch_size=2, progress=False)
        if rank == 0:
            prof.save(out)
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_ddp_sums_reduced(planted_corpus, planted_model, tmp_path):
    """Two gloo processes, each profiling half the utterances, give the single-process result."""
    import torch.multiprocessing as mp

    model, _, _ = planted_model
    single = compute_profiles(model, planted_corpus, batch_size=2, progress=False)
    out = tmp_path / "ddp.npz"
    mp.spawn(_ddp_worker, args=(2, str(planted_corpus.root), f"file://{tmp_path / 'rendezvous'}", str(out)),
             nprocs=2, join=True)
    ddp = load_profiles(out)
    assert ddp.meta["n_utterances"] == len(planted_corpus) and ddp.groups == single.groups
    for layer in single.layers:
        np.testing.assert_array_equal(ddp[layer].counts, single[layer].counts)
        np.testing.assert_allclose(ddp[layer].raw, single[layer].raw, rtol=1e-5, atol=1e-9)
        # per-segment sums (same table in both processes) and activation statistics are reduced too
        assert list(ddp.segments.utt) == list(single.segments.utt)
        np.testing.assert_array_equal(ddp[layer].seg_counts, single[layer].seg_counts)
        np.testing.assert_allclose(ddp[layer].seg_sums, single[layer].seg_sums, rtol=1e-5, atol=1e-9)
        assert ddp[layer].act_count == single[layer].act_count
        np.testing.assert_allclose(ddp[layer].gram, single[layer].gram, rtol=1e-5, atol=1e-9)


def test_cli_profile_and_maps(planted_corpus, planted_model, tmp_path, capsys):
    """`toposcope profile` + `toposcope maps` on a run holding the planted model."""
    import json

    from toposcope.checkpoint import save_checkpoint
    from toposcope.cli import main
    from toposcope.config import RunConfig

    model, c, _ = planted_model
    run = tmp_path / "run"
    save_checkpoint(run / "checkpoints" / "best.pt", {"model": model.state_dict(),
                                                      "config": RunConfig(model.cfg).to_dict()})
    assert main(["profile", str(run), "--data", str(planted_corpus.root), "--no-progress",
                 "--layers", "conv1", "conv3"]) == 0
    assert "5 utterances (test), 4 groups" in capsys.readouterr().out
    prof = load_profiles(run / "profiles" / "gradnap-phone.npz")
    assert prof.meta["split"] == "test" and int(np.argmax(prof.map("conv1", "s"))) == c
    assert main(["maps", str(run), "--permutations", "200", "--no-progress", "--baseline", str(run)]) == 0
    out = capsys.readouterr().out
    assert "conv1" in out and "mean I" in out
    regions = json.loads((run / "maps" / "regions.json").read_text())
    assert regions["conv1"]["s"]["center"] == list(PLANT) and c in regions["conv1"]["s"]["filters"]
    stats = json.loads((run / "maps" / "stats.json").read_text())
    assert set(stats["layers"]) == {"conv1", "conv3"}
    s_stats = stats["layers"]["conv1"]["groups"]["s"]
    assert s_stats["p"] < 0.05 and s_stats["morans_i"] > 0  # the planted blob is clustered
    assert (run / "maps" / "conv1" / "s.png").is_file() and (run / "maps" / "conv3" / "overview.png").is_file()
    assert main(["profile", str(run), "--data", str(planted_corpus.root), "--split", "train"]) == 2
    assert "split 'train' is empty" in capsys.readouterr().err
    # --no-segments: the same profiles, no per-segment sums, and `maps` says there is no label null
    assert main(["profile", str(run), "--data", str(planted_corpus.root), "--no-progress", "--layers", "conv1",
                 "--no-segments", "--name", "slim"]) == 0
    slim = load_profiles(run / "profiles" / "slim.npz")
    assert slim.segments is None and slim["conv1"].seg_sums is None and slim.meta["segments"] == "dropped"
    np.testing.assert_array_equal(slim["conv1"].values, prof["conv1"].values)
    capsys.readouterr()
    assert main(["maps", str(run), "--profile", "slim", "--permutations", "200", "--no-progress"]) == 0
    assert "no segment table (written with --no-segments" in capsys.readouterr().out


# ---------------------------------------------------------------------------------------------------
# batch invariance, per-segment sums, activation statistics, profile_run
# ---------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def varied_corpus(tmp_path_factory):
    """16 utterances of 0.3-2.0 s (noise + a tone in random segments), random phone segmentations
    with gaps, two speakers: padded batches mix very different lengths."""
    root = tmp_path_factory.mktemp("varied")
    (root / "audio").mkdir()
    rng = np.random.default_rng(1)
    utts = []
    for i in range(16):
        dur = float(rng.uniform(0.3, 2.0))
        n = int(dur * SR)
        wave = 0.05 * rng.standard_normal(n)
        edges = np.sort(rng.uniform(0, dur, 10))
        phones = []
        for a, b in zip(edges[:-1:2], edges[1::2]):  # every other interval: gaps stay unlabelled
            lab = ("aa", "s", "t", "iy")[int(rng.integers(4))]
            phones.append((round(float(a), 6), round(float(b), 6), lab))
            if lab == "s":
                ia, ib = int(a * SR), int(b * SR)
                wave[ia:ib] += 0.5 * np.sin(2 * np.pi * TONE_HZ * np.arange(ib - ia) / SR)
        sf.write(root / "audio" / f"v{i}.wav", wave.astype(np.float32), SR, subtype="FLOAT")
        utts.append(Utterance(id=f"v{i}", audio=f"audio/v{i}.wav", speaker=f"spk{i % 2}", text="a st",
                              duration=n / SR, phones=phones, split="test"))
    write_manifest(root / "manifest.jsonl", utts)
    return Corpus.load(root)


def _random_model(norm: str) -> Wav2Letter:
    return random_tiny_model(norm, seed=3)


def _rel(a, b) -> float:
    return float(np.abs(np.asarray(a) - np.asarray(b)).max() / np.abs(np.asarray(a)).max())


@pytest.mark.parametrize("norm", ["none", "batch"])
def test_batch_size_1_equals_16(varied_corpus, norm):
    """GradNAP and NAP: batch size 1 == batch size 16 to 1e-5 relative, every layer (kernels of 5
    frames; with BatchNorm in eval mode too), including per-segment sums and Gram matrices."""
    model = _random_model(norm)
    for method in ("gradnap", "nap"):
        one = compute_profiles(model, varied_corpus, method=method, batch_size=1, progress=False)
        all16 = compute_profiles(model, varied_corpus, method=method, batch_size=16, progress=False)
        assert one.groups == all16.groups and len(one.groups) == 4
        for layer in model.layer_names:
            a, b = one[layer], all16[layer]
            np.testing.assert_array_equal(a.counts, b.counts)
            np.testing.assert_array_equal(a.seg_counts, b.seg_counts)
            assert a.act_count == b.act_count
            for key in ("raw", "values", "seg_sums", "gram", "act_sum"):
                assert _rel(getattr(a, key), getattr(b, key)) <= 1e-5, (method, layer, key)


def test_segment_sums_add_up_to_the_group_profiles(planted_corpus, planted_model):
    """raw[g] == seg_sums[label == g].sum(0) / seg_counts[label == g].sum(); the table is the manifest's;
    per-segment frame counts follow the frame-centre rule; ERP epochs keep the same frame-level sums."""
    model, c, _ = planted_model
    for method in ("gradnap", "nap"):
        prof = compute_profiles(model, planted_corpus, method=method, batch_size=2, progress=False)
        seg = prof.segments
        rows = [(u.id, u.speaker, lab, s, e) for u in planted_corpus for s, e, lab in u.phones]
        assert len(seg) == len(rows) == 25
        assert list(seg.utt) == [r[0] for r in rows] and list(seg.label) == [r[2] for r in rows]
        assert list(seg.speaker) == ["x"] * 25
        np.testing.assert_array_equal(seg.start, [r[3] for r in rows])
        np.testing.assert_array_equal(seg.end, [r[4] for r in rows])
        for layer, lp in prof.layers.items():
            assert lp.seg_sums.shape == (25, lp.grid.size) and lp.seg_sums.dtype == np.float64
            for gi, g in enumerate(prof.groups):
                sel = seg.label == g
                np.testing.assert_allclose(lp.raw[gi], lp.seg_sums[sel].sum(0) / lp.seg_counts[sel].sum(),
                                           rtol=1e-12, atol=1e-15)
                assert lp.seg_counts[sel].sum() == lp.counts[gi]
    # conv1 frame t is centred at 2t * 10 ms: count the frames of each segment by hand
    hop = model.cfg.features.hop / SR
    for i, u in enumerate(planted_corpus):
        n_feat = int(round(u.duration * SR)) // model.cfg.features.hop + 1
        centres = 2 * np.arange((n_feat - 1) // 2 + 1) * hop
        expect = [int(((centres >= s) & (centres < e)).sum()) for s, e, _ in u.phones]
        got = prof["conv1"].seg_counts[seg.utt == u.id]
        assert got.tolist() == expect
    # the planted channel fires only inside /s/ segments
    s_rows = seg.label == "s"
    assert (prof["conv1"].seg_sums[s_rows, c] > 0).all() and (prof["conv1"].seg_sums[~s_rows, c] == 0).all()
    ep = compute_profiles(model, planted_corpus, method="nap", epochs=2, batch_size=2, progress=False)
    for layer in ep.layers:
        np.testing.assert_allclose(ep[layer].seg_sums, prof[layer].seg_sums, rtol=1e-12)
        np.testing.assert_array_equal(ep[layer].seg_counts, prof[layer].seg_counts)
    pred = compute_profiles(model, planted_corpus, grouping="predicted", progress=False)
    assert pred.segments is None and pred["conv1"].seg_sums is None and pred["conv1"].gram is not None


def test_gram_and_correlation_equal_a_direct_computation(varied_corpus):
    """gram / act_sum / act_count equal sum a a^T, sum a, count over the labelled valid frames of each
    utterance run alone; activation_correlation equals np.corrcoef (constant channels: 0)."""
    from toposcope.analysis.profiles import activation_correlation
    from toposcope.audio import read_audio
    from toposcope.features import log_mel
    from toposcope.hooks import record
    from toposcope.labels import frame_times, label_frames
    from toposcope.phones import PHONES

    model = _random_model("batch")
    f = model.cfg.features
    prof = compute_profiles(model, varied_corpus, method="nap", batch_size=5, progress=False)
    frames = {n: [] for n in model.layer_names}
    for u in varied_corpus:
        x = log_mel(read_audio(varied_corpus.audio_path(u), sample_rate=f.sample_rate), f)[None]
        with torch.no_grad(), record(model, model.layer_names) as rec:
            model(x)
        for n in model.layer_names:
            a = rec.acts[n][0].double().numpy()  # (C, T_l)
            lab = label_frames(frame_times(a.shape[1], model.geometry(n), f.hop, f.sample_rate), u.phones, PHONES)
            frames[n].append(a[:, lab >= 0])
    for n in model.layer_names:
        a = np.concatenate(frames[n], axis=1)  # (C, N)
        lp = prof[n]
        assert lp.act_count == a.shape[1]
        np.testing.assert_allclose(lp.act_sum, a.sum(1), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(lp.gram, a @ a.T, rtol=1e-5, atol=1e-5 * np.abs(a @ a.T).max())
        corr = activation_correlation(lp)
        live = a.std(1) > 1e-6 * np.sqrt((a ** 2).mean(1) + 1e-300)
        assert live.sum() > 5
        np.testing.assert_allclose(corr[np.ix_(live, live)], np.corrcoef(a[live]), atol=1e-5)
        off = ~np.eye(len(live), dtype=bool)
        assert (corr[~live][off[~live]] == 0).all()
        np.testing.assert_array_equal(np.diag(corr), 1.0)


def test_correlation_of_a_constant_channel_is_zero():
    from toposcope.analysis.profiles import LayerProfile, activation_correlation
    from toposcope.grid import Grid

    # 4 frames of 3 channels: x, 2x + 1 (r = 1), constant 5 (r = 0)
    a = np.array([[0.0, 1.0, 2.0, 5.0], [1.0, 3.0, 5.0, 11.0], [5.0, 5.0, 5.0, 5.0]])
    lp = LayerProfile(values=np.zeros((1, 3)), raw=np.zeros((1, 3)), counts=np.ones(1), grid=Grid(3, 1),
                      gram=a @ a.T, act_sum=a.sum(1), act_count=4)
    np.testing.assert_allclose(activation_correlation(lp), [[1, 1, 0], [1, 1, 0], [0, 0, 1]], atol=1e-12)


def test_new_arrays_roundtrip_and_old_files_still_load(planted_corpus, planted_model, tmp_path):
    from toposcope.analysis.profiles import ProfileError, activation_correlation

    model, _, _ = planted_model
    prof = compute_profiles(model, planted_corpus, batch_size=2, progress=False)
    path = prof.save(tmp_path / "p.npz")
    z = dict(np.load(path))
    for key in ("segments.utt", "segments.speaker", "segments.label", "segments.start", "segments.end",
                "conv1.seg_sums", "conv1.seg_counts", "conv1.gram", "conv1.act_sum", "conv1.act_count"):
        assert key in z
    back = load_profiles(path)
    assert list(back.segments.utt) == list(prof.segments.utt)
    np.testing.assert_array_equal(back["conv2"].seg_sums, prof["conv2"].seg_sums)
    np.testing.assert_array_equal(back["conv2"].gram, prof["conv2"].gram)
    assert back["conv2"].act_count == prof["conv2"].act_count
    # a file of the earlier format (none of these keys) loads, with the new fields None
    old = {k: v for k, v in z.items() if not k.startswith("segments.")
           and not k.endswith((".seg_sums", ".seg_counts", ".gram", ".act_sum", ".act_count"))}
    np.savez(tmp_path / "old.npz", **old)
    was = load_profiles(tmp_path / "old.npz")
    assert was.segments is None and was["conv1"].seg_sums is None and was["conv1"].gram is None
    np.testing.assert_array_equal(was["conv1"].values, prof["conv1"].values)
    with pytest.raises(ProfileError, match="re-run `toposcope profile`"):
        activation_correlation(was["conv1"])
    # a table that does not match the sums is refused, naming the file
    bad = dict(z)
    bad["conv1.seg_sums"] = bad["conv1.seg_sums"][:-1]
    np.savez(tmp_path / "bad.npz", **bad)
    with pytest.raises(ProfileError, match="bad.npz.*per-segment sums"):
        load_profiles(tmp_path / "bad.npz")


def test_profiles_without_segments_keep_the_rest_to_the_bit(planted_corpus, planted_model, tmp_path):
    model, _, _ = planted_model
    prof = compute_profiles(model, planted_corpus, batch_size=2, progress=False)
    lean = compute_profiles(model, planted_corpus, batch_size=2, progress=False, segments=False)  # never summed
    assert lean.segments is None and all(lp.seg_sums is None and lp.seg_counts is None for lp in lean.layers.values())
    assert prof.segments is not None and prof["conv1"].seg_sums is not None and lean.groups == prof.groups
    back = load_profiles(lean.save(tmp_path / "slim.npz"))
    z = np.load(tmp_path / "slim.npz")
    assert not any(k.startswith("segments.") or k.endswith((".seg_sums", ".seg_counts")) for k in z.files)
    for n in prof.layers:  # what a layout fit or a map reads is all there, to the bit
        for p in (back, lean):
            np.testing.assert_array_equal(p[n].values, prof[n].values)
            np.testing.assert_array_equal(p[n].counts, prof[n].counts)
            np.testing.assert_array_equal(p[n].gram, prof[n].gram)


def test_profile_run_writes_records_checkpoint_and_holds_the_lock(planted_corpus, planted_model, tmp_path):
    import fcntl

    from toposcope.analysis.profiles import profile_run
    from toposcope.checkpoint import save_checkpoint
    from toposcope.config import RunConfig
    from toposcope.runlock import LOCK_FILE, RunLockedError

    model, c, _ = planted_model
    run = tmp_path / "run"
    for which in ("best", "last"):
        save_checkpoint(run / "checkpoints" / f"{which}.pt", {"model": model.state_dict(),
                                                             "config": RunConfig(model.cfg).to_dict()})
    prof = profile_run(run, planted_corpus.root, checkpoint="last", method="nap", epochs=1,
                       max_utterances=3, progress=False)
    assert prof.meta["checkpoint"] == "last" and prof.meta["split"] == "test" and prof.meta["n_utterances"] == 3
    back = load_profiles(run / "profiles" / "nap-phone.npz")
    assert back.meta["checkpoint"] == "last" and back.meta["epochs_k"] == 1
    assert set(back.segments.utt) == {"u0", "u1", "u2"}
    np.testing.assert_array_equal(back["conv1"].epochs, prof["conv1"].epochs)
    named = profile_run(run, planted_corpus, name="mine", progress=False)
    assert named.meta["checkpoint"] == "best" and (run / "profiles" / "mine.npz").is_file()
    assert int(np.argmax(named.map("conv1", "s"))) == c
    with open(run / LOCK_FILE, "w") as held:  # another writer holds the run folder
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(RunLockedError, match="in use"):
            profile_run(run, planted_corpus, name="locked", progress=False)
    assert not (run / "profiles" / "locked.npz").exists()
    with pytest.raises(ValueError, match="checkpoint must be"):
        profile_run(run, planted_corpus, checkpoint="final", progress=False)
    with pytest.raises(FileNotFoundError, match="run directory"):
        profile_run(tmp_path / "nope", planted_corpus, progress=False)


def test_parts_are_objects_passed_in_and_the_model_is_profileable(planted_corpus, planted_model):
    """A new adjustment is a small object, no change to the accumulator; Wav2Letter is a ProfileableModel."""
    from dataclasses import dataclass

    from toposcope.analysis.profiles import ProfileableModel

    @dataclass(frozen=True)
    class TwiceA:
        name: str = "twice"
        needs_grad: bool = False

        def __call__(self, a, g):
            return 2 * a

    model, _, _ = planted_model
    assert isinstance(model, ProfileableModel)
    nap = compute_profiles(model, planted_corpus, method="nap", progress=False)
    twice = compute_profiles(model, planted_corpus, method=TwiceA(), progress=False)
    assert twice.method == "twice"
    for layer in nap.layers:
        np.testing.assert_allclose(twice[layer].raw, 2 * nap[layer].raw, rtol=1e-6, atol=1e-12)
        np.testing.assert_allclose(twice[layer].gram, nap[layer].gram, rtol=1e-6)  # raw A, not adjusted


def test_accumulator_grows_the_segment_table_and_matches_across_batchings():
    """Utterances registered as they come (no pre-registration), > 256 segments (the table grows
    several times): per-segment sums agree between batch sizes 3 and 24 and add up to the groups."""
    from types import SimpleNamespace

    from toposcope.analysis.profiles import ProfileAccumulator
    from toposcope.phones import PHONES

    model = _random_model("none")
    f = model.cfg.features
    rng = np.random.default_rng(5)
    items = []
    for i in range(24):
        dur = float(rng.uniform(0.5, 2.5))
        edges = np.concatenate([[0.0], np.sort(rng.uniform(0, dur, 30)), [dur]])
        phones = [(float(a), float(b), PHONES[int(rng.integers(6))]) for a, b in zip(edges[:-1], edges[1:])]
        n = int(dur * f.sample_rate) // f.hop + 1
        items.append((torch.from_numpy(rng.standard_normal((f.n_mels, n)).astype(np.float32)),
                      SimpleNamespace(id=f"r{i}", speaker=f"s{i % 3}", duration=dur, phones=phones, text="a")))

    def run(bs):
        acc = ProfileAccumulator(model, hop=f.hop, sample_rate=f.sample_rate, adjustment="nap")
        for s in range(0, len(items), bs):
            chunk = items[s:s + bs]
            T = max(x.shape[1] for x, _ in chunk)
            x = torch.zeros(len(chunk), f.n_mels, T)
            for b, (feat, _) in enumerate(chunk):
                x[b, :, :feat.shape[1]] = feat
            acc.update(x, torch.tensor([feat.shape[1] for feat, _ in chunk]), [u for _, u in chunk])
        return acc.result()

    small, big = run(3), run(24)
    assert len(small.segments) == 24 * 31 > 256
    assert list(small.segments.utt) == [u.id for _, u in items for _ in u.phones]
    assert list(small.segments.speaker)[:31] == ["s0"] * 31
    for layer in model.layer_names:
        a, b = small[layer], big[layer]
        np.testing.assert_array_equal(a.seg_counts, b.seg_counts)
        assert _rel(a.seg_sums, b.seg_sums) <= 1e-5
        for gi, g in enumerate(small.groups):
            sel = small.segments.label == g
            np.testing.assert_allclose(a.raw[gi], a.seg_sums[sel].sum(0) / a.seg_counts[sel].sum(), rtol=1e-10)
        assert a.seg_counts.sum() == a.counts.sum() == a.act_count
