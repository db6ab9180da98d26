"""The Wav2Letter model: named activation sites, shapes, output lengths, configs (docs/method.md § Features and model)."""

from __future__ import annotations

import pytest

from helpers import random_tiny_model
import torch

from toposcope.config import ConfigError, config_from_dict, load_config
from toposcope.grid import Grid
from toposcope.hooks import record
from toposcope.model import Wav2Letter
from toposcope.text import N_CLASSES


def test_paper_config_is_spec3():
    cfg = load_config("paper")
    f = cfg.model.features
    assert (f.n_mels, f.n_fft, f.hop, f.sample_rate) == (128, 512, 128, 16000)
    got = [(l.channels, l.kernel, l.stride) for l in cfg.model.layers]
    assert got == [(256, 48, 2)] + [(256, 7, 1)] * 7 + [(2048, 32, 1), (2048, 1, 1)]
    m = Wav2Letter(cfg.model)
    assert m.layer_names == tuple(f"conv{i}" for i in range(1, 11))
    assert m.grids["conv1"] == Grid(16, 16) and m.grids["conv9"] == Grid(64, 32)
    assert m.conv("output").out_channels == N_CLASSES


@pytest.mark.parametrize("name", ["small", "tiny"])
def test_shipped_configs_grid_256_as_16x16(name):
    cfg = load_config(name)
    m = Wav2Letter(cfg.model)
    for n, spec in zip(m.layer_names, cfg.model.layers):
        if spec.channels == 256:
            assert m.grids[n] == Grid(16, 16)
        assert m.grids[n].size == spec.channels == m.weight(n).shape[0]


def test_forward_shapes_and_output_lengths():
    cfg = load_config("tiny")
    m = Wav2Letter(cfg.model).eval()
    x = torch.randn(3, cfg.model.features.n_mels, 101)
    y = m(x)
    assert y.shape[0] == 3 and y.shape[2] == N_CLASSES
    lens = torch.tensor([101, 60, 7])
    assert m.output_lengths(lens)[0] == y.shape[1]
    # an utterance alone gives the length output_lengths predicts
    assert m(x[1:2, :, :60]).shape[1] == m.output_lengths(lens)[1]
    assert torch.allclose(y.exp().sum(-1), torch.ones(3, y.shape[1]), atol=1e-5)


def test_activation_sites_are_true_post_relu_and_named():
    cfg = load_config("tiny")
    m = Wav2Letter(cfg.model).eval()
    names = [n for n, _ in m.named_modules()]
    assert not any(n.split(".")[-1].isdigit() for n in names), "Sequential indices leak out"
    assert all(not isinstance(mod, torch.nn.ReLU) or not mod.inplace for mod in m.modules())
    x = torch.randn(2, cfg.model.features.n_mels, 50)
    with record(m, list(m.layer_names) + ["output"]) as rec:
        m(x)
    pre = m.conv("conv1")(x)
    assert torch.equal(rec.acts["conv1"], torch.relu(pre))
    assert rec.acts["conv1"].min() >= 0 and (pre < 0).any()
    assert rec.acts["output"].shape[1] == N_CLASSES
    with pytest.raises(KeyError, match="no layer"):
        m.site("conv99")


def test_bad_configs_are_clear_errors(tmp_path):
    base = {"layers": [{"channels": 16, "kernel": 3}], "features": {"n_mels": 16, "n_fft": 64, "hop": 16}}
    config_from_dict(base)
    with pytest.raises(ConfigError, match="unknown key"):
        config_from_dict({**base, "layerz": []})
    with pytest.raises(ConfigError, match="unknown key"):
        config_from_dict({**base, "train": {"learning_rate": 1}})
    with pytest.raises(ConfigError, match="grid"):
        config_from_dict({**base, "layers": [{"channels": 16, "kernel": 3, "grid": [3, 5]}]})
    with pytest.raises(ConfigError):
        config_from_dict({**base, "layers": [{"channels": 0, "kernel": 3}]})
    with pytest.raises(ConfigError, match="max_minutes"):
        config_from_dict({**base, "train": {"max_minutes": -1}})
    p = tmp_path / "mine.toml"
    p.write_text('[[layers]]\nchannels = 16\nkernel = 3\n[features]\nn_mels = 16\nn_fft = 64\nhop = 16\n')
    assert load_config(p).model.name == "mine"


def _model(norm: str = "none", seed: int = 0) -> Wav2Letter:
    return random_tiny_model(norm, seed)


@pytest.mark.parametrize("norm", ["none", "batch"])
def test_lengths_zero_padding_before_the_hook_at_every_layer(norm):
    """With lengths, every site sees exactly 0 past the utterance's valid length, and the valid frames
    (activations and gradients) equal those of the utterance run alone."""
    m = _model(norm)
    names = list(m.layer_names) + ["output"]
    x = torch.randn(3, m.cfg.features.n_mels, 101)
    lens = torch.tensor([101, 37, 64])
    for b, n in enumerate(lens.tolist()):
        x[b, :, n:] = 0.0
    x.requires_grad_(True)
    with record(m, names, grads=True) as rec:
        logp = m(x, lens)
        n_out = m.output_lengths(lens)
        valid = torch.arange(logp.shape[1])[None] < n_out[:, None]
        (logp.max(-1).values * valid).sum().backward()
    for b in (1, 2):
        xb = x[b:b + 1, :, :int(lens[b])].detach().clone().requires_grad_(True)
        with record(m, names, grads=True) as alone:
            lp = m(xb)
            lp.max(-1).values.sum().backward()
        for n in names:
            L = int(m.layer_lengths(n, lens)[b])
            assert alone.acts[n].shape[-1] == L
            assert torch.count_nonzero(rec.acts[n][b, :, L:]) == 0  # exactly zero before the hook
            torch.testing.assert_close(rec.acts[n][b, :, :L], alone.acts[n][0], rtol=1e-5, atol=1e-5)
            torch.testing.assert_close(rec.grads[n][b, :, :L], alone.grads[n][0], rtol=1e-4, atol=1e-6)
    # the longest row sees no padding: identical to the unmasked forward
    torch.testing.assert_close(logp[0], m(x.detach())[0], rtol=0, atol=0)


@pytest.mark.parametrize("norm", ["none", "batch"])
def test_without_lengths_padding_reaches_conv2_of_a_short_utterance(norm):
    """The failure the mask prevents: in a padded batch, conv1's activations past a short utterance's
    end are not zero (bias, BatchNorm shift), and conv2's last valid frames read them."""
    m = _model(norm)
    x = torch.zeros(2, m.cfg.features.n_mels, 101)
    x[0] = torch.randn(m.cfg.features.n_mels, 101)
    x[1, :, :37] = torch.randn(m.cfg.features.n_mels, 37)
    lens = torch.tensor([101, 37])
    L2 = int(m.layer_lengths("conv2", lens)[1])
    with record(m, ["conv1", "conv2"]) as unmasked:
        m(x)
    with record(m, ["conv1", "conv2"]) as masked:
        m(x, lens)
    with record(m, ["conv2"]) as alone:
        m(x[1:2, :, :37])
    assert unmasked.acts["conv1"][1, :, int(m.layer_lengths("conv1", lens)[1]):].abs().max() > 0.01
    leak = (unmasked.acts["conv2"][1, :, :L2] - alone.acts["conv2"][0]).abs().max()
    assert leak > 1e-3
    torch.testing.assert_close(masked.acts["conv2"][1, :, :L2], alone.acts["conv2"][0], rtol=1e-5, atol=1e-6)


def test_layer_lengths_and_bad_lengths():
    m = _model()
    lens = torch.tensor([101, 7, 0])
    assert m.layer_lengths("conv1", lens).tolist() == [51, 4, 0]  # (n + 4 - 5) // 2 + 1, clipped at 0
    assert m.layer_lengths("output", lens).tolist() == m.output_lengths(lens).tolist()
    with pytest.raises(KeyError, match="no layer"):
        m.layer_lengths("conv9", lens)
    with pytest.raises(ValueError, match="lengths must have shape"):
        m(torch.zeros(2, m.cfg.features.n_mels, 20), torch.tensor([20]))
