"""The Wav2Letter model: named activation sites, shapes, output lengths, configs (SPEC §3)."""

from __future__ import annotations

import pytest
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
