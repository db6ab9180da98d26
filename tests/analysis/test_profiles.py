"""Profiles (SPEC §5): a planted model/corpus where the right answer is known by construction."""

from __future__ import annotations

import numpy as np
import pytest
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
