"""Profiling any torch.nn.Module (toposcope.analysis.adapter)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from toposcope.analysis.adapter import AdapterError, ModuleAdapter, Site, infer_geometry, profile_module
from toposcope.analysis.layouts import LayoutConfig, apply_layout, fit_layout, layer_fingerprint
from toposcope.analysis.profiles import compute_profiles
from toposcope.features import FeatureConfig, log_mel
from toposcope.grid import Grid
from toposcope.labels import frame_centers


class ConvLinear(nn.Module):
    """A model built in a few lines: Conv1d + ReLU, a per-frame Linear + ReLU, a Linear to 29 classes."""

    def __init__(self, n_mels: int = 32):
        super().__init__()
        self.conv = nn.Conv1d(n_mels, 16, 5, stride=2, padding=2)
        self.act = nn.ReLU()
        self.fc = nn.Linear(16, 12)
        self.out = nn.Linear(12, 29)

    def forward(self, x):  # (B, n_mels, T) -> (B, T', 29)
        h = self.act(self.conv(x)).transpose(1, 2)
        return self.out(torch.relu(self.fc(h)))


class Conv2dModel(nn.Module):
    """Conv2d over (freq, time); ``pooled`` is the same activation averaged over frequency."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 6, (5, 3), stride=(4, 1), padding=(0, 1))
        self.act = nn.ReLU()
        self.pooled = nn.Identity()
        self.out = nn.Conv1d(6, 29, 1)

    def forward(self, x):  # (B, F, T)
        a = self.act(self.conv(x[:, None]))  # (B, 6, F', T)
        return self.out(self.pooled(a.mean(2))).transpose(1, 2)


FEATS = FeatureConfig(sample_rate=16000, n_fft=400, hop=160, n_mels=32)


def mel(wave):
    return log_mel(wave, FEATS)


@pytest.mark.parametrize("seed", range(6))
def test_inferred_geometry_is_exact_for_conv_stacks(seed):
    rng = np.random.default_rng(seed)
    convs = [(int(rng.integers(1, 8)), int(rng.integers(1, 3)), 0) for _ in range(int(rng.integers(1, 4)))]
    convs = [(k, s, int(rng.integers(0, k // 2 + 1))) for k, s, _ in convs]
    lengths = list(range(300, 316)) + [517]

    def out_len(T):
        for k, s, p in convs:
            T = (T + 2 * p - k) // s + 1
        return T

    geom = infer_geometry(lengths, [out_len(T) for T in lengths])
    assert [out_len(T) for T in (299, 400, 1001)] == [
        (T + 2 * geom[0][2] - geom[0][0]) // geom[0][1] + 1 for T in (299, 400, 1001)]
    assert np.allclose(frame_centers(50, geom), frame_centers(50, convs))


def test_adapter_geometry_and_shapes():
    model = ConvLinear()
    ad = ModuleAdapter(model, {"conv": "act", "fc": Site(model.fc, channel_axis=-1, time_axis=1)}, n_features=32)
    assert ad.layer_names == ("conv", "fc")
    assert ad.grids == {"conv": Grid(4, 4), "fc": Grid(4, 3)}
    # Conv1d(k5, s2, p2) and a per-frame Linear: frame t centred at input frame 2t
    assert np.allclose(frame_centers(10, ad.geometry("conv")), 2 * np.arange(10))
    assert np.allclose(frame_centers(10, ad.geometry("fc")), 2 * np.arange(10))
    assert np.allclose(frame_centers(10, ad.geometry("output")), 2 * np.arange(10))
    x = torch.randn(2, 32, 40)
    out = ad(x)
    assert out.shape == (2, 20, 29) and torch.allclose(out.exp().sum(-1), torch.ones(2, 20))
    assert torch.allclose(out, torch.log_softmax(model(x), -1))  # the adapter does not change the function
    assert layer_fingerprint(ad, "conv").startswith("w:") is False  # the ReLU site has no weight of its own
    ad2 = ModuleAdapter(model, {"conv": model.conv}, n_features=32)
    assert layer_fingerprint(ad2, "conv") == layer_fingerprint(ad2, "conv") and \
        layer_fingerprint(ad2, "conv").startswith("w:")


def test_adapter_gives_the_native_profiles_of_a_wav2letter(tiny_corpus):
    """Wrapping toposcope's own model through the adapter reproduces compute_profiles (batch size 1)."""
    from toposcope.config import load_config
    from toposcope.model import Wav2Letter

    torch.manual_seed(0)
    model = Wav2Letter(load_config("tiny").model).eval()
    utts = tiny_corpus.split("train")[:4]
    native = compute_profiles(model, tiny_corpus, utts, features=model.cfg.features, batch_size=1, progress=False)

    class Plain(nn.Module):  # the same network as a plain module returning logits (B, T, K)
        def __init__(self, w2l):
            super().__init__()
            self.blocks = w2l.blocks

        def forward(self, x):
            for b in self.blocks.values():
                x = b(x)
            return x.transpose(1, 2)

    plain = Plain(model)
    layers = {n: f"blocks.{n}.hook" for n in model.layer_names}
    prof = profile_module(plain, layers, features=lambda w: log_mel(w, model.cfg.features), frame_rate=100,
                          corpus=tiny_corpus, utterances=utts, batch_size=1, progress=False)
    assert prof.groups == native.groups
    for n in model.layer_names:
        assert np.allclose(prof[n].values, native[n].values, rtol=1e-6, atol=1e-9 * np.abs(native[n].values).max())
        assert np.array_equal(prof[n].counts, native[n].counts)
        assert [tuple(g) for g in prof.meta["geometry"][n]] != [] and \
            np.allclose(frame_centers(30, prof.meta["geometry"][n]), frame_centers(30, model.geometry(n)))


def test_profile_a_model_built_in_a_few_lines_then_lay_it_out(tiny_corpus):
    torch.manual_seed(0)
    model = ConvLinear()
    layers = {"conv": "act", "fc": Site(model.fc, channel_axis=-1, time_axis=1)}
    utts = tiny_corpus.split("train")[:6]
    prof = profile_module(model, layers, features=mel, frame_rate=100, corpus=tiny_corpus, utterances=utts,
                          batch_size=3, progress=False)
    assert prof["conv"].values.shape == (len(prof.groups), 16) and prof["fc"].values.shape[1] == 12
    assert np.all(np.isfinite(prof["conv"].values)) and np.abs(prof["conv"].values).max() > 0
    assert prof.meta["provisional_grid"] is True
    lp = prof["conv"]
    if getattr(lp, "seg_sums", None) is not None:  # the profile file contract holds for adapted models too
        lab = prof.segments.label
        for i, g in enumerate(prof.groups):
            sel = lab == g
            assert np.allclose(lp.raw[i], lp.seg_sums[sel].sum(0) / lp.seg_counts[sel].sum())
    # batching does not change the profile beyond float noise (padding is masked at every layer)
    one = profile_module(model, layers, features=mel, frame_rate=100, corpus=tiny_corpus, utterances=utts,
                         batch_size=1, progress=False)
    assert np.allclose(one["conv"].values, prof["conv"].values, rtol=1e-4, atol=1e-6 * np.abs(lp.values).max())
    # the grid comes from a layout
    lay = fit_layout(prof, "conv", LayoutConfig(method="som"), grid=(2, 8))
    out = apply_layout(prof, [lay])
    assert out["conv"].grid == Grid(2, 8)
    assert sorted(out["conv"].values[0].tolist()) == sorted(prof["conv"].values[0].tolist())


def test_conv2d_units_are_channels_pooled_over_frequency(tiny_corpus):
    torch.manual_seed(1)
    model = Conv2dModel()
    utts = tiny_corpus.split("train")[:3]
    kw = dict(features=mel, frame_rate=100, corpus=tiny_corpus, utterances=utts, batch_size=1, progress=False,
              method="nap")
    pooled = profile_module(model, {"conv": "act", "pooled": "pooled"}, **kw)
    flat = profile_module(model, {"conv": Site("act", pool=False)}, **kw)
    # F' = (32 - 5) // 4 + 1 = 7 frequency positions, 6 channels
    assert pooled["conv"].values.shape[1] == 6 and flat["conv"].values.shape[1] == 42
    # NAP of channel c = the frequency-mean activation: equal to profiling the pooled tensor itself
    assert np.allclose(pooled["conv"].raw, pooled["pooled"].raw, rtol=1e-5)
    assert np.allclose(pooled["conv"].raw, flat["conv"].raw.reshape(-1, 6, 7).mean(2), rtol=1e-10)
    if getattr(pooled["conv"], "gram", None) is not None:
        assert np.allclose(pooled["conv"].gram, pooled["pooled"].gram, rtol=1e-4)
    # GradNAP (A * G) of a channel: the mean over frequency of the per-position attributions
    kw["method"] = "gradnap"
    g_pooled = profile_module(model, {"conv": "act"}, **kw)
    g_flat = profile_module(model, {"conv": Site("act", pool=False)}, **kw)
    assert np.allclose(g_pooled["conv"].values, g_flat["conv"].values.reshape(-1, 6, 7).mean(2), rtol=1e-8)


def test_bad_models_give_clear_errors(tiny_corpus):
    model = ConvLinear()
    with pytest.raises(AdapterError, match="no submodule 'conv9'"):
        ModuleAdapter(model, {"x": "conv9"}, n_features=32)
    with pytest.raises(AdapterError, match="not part of the model"):
        ModuleAdapter(model, {"x": nn.Conv1d(3, 3, 1)}, n_features=32)
    with pytest.raises(AdapterError, match="probing the model with inputs of 7 features"):
        ModuleAdapter(model, {"conv": "conv"}, n_features=7)
    with pytest.raises(AdapterError, match="distinct channel"):
        ModuleAdapter(model, {"fc": Site("fc", channel_axis=-1, time_axis=-1)}, n_features=32)

    class LSTMModel(nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = nn.LSTM(32, 8, batch_first=True)
            self.out = nn.Linear(8, 29)

        def forward(self, x):
            return self.out(self.rnn(x.transpose(1, 2))[0])

    with pytest.raises(AdapterError, match="returns tuple, not a tensor"):
        ModuleAdapter(LSTMModel(), {"rnn": "rnn"}, n_features=32)
    with pytest.raises(AdapterError, match="whole samples"):
        profile_module(model, {"conv": "act"}, features=mel, frame_rate=99.7, corpus=tiny_corpus, progress=False)
    with pytest.raises(AdapterError, match="geometry"):
        ModuleAdapter(model, {"conv": "act"}, n_features=32, geometry={"conv": [(3, 1, 1)]})
