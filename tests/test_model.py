"""The Wav2Letter model: named activation sites, shapes, output lengths, configs (docs/method.md § Features and model)."""

from __future__ import annotations

import numpy as np
import pytest

from helpers import random_tiny_model
import torch

from toposcope.config import ConfigError, FrontendConfig, PhoneHeadConfig, config_from_dict, load_config
from toposcope.grid import Grid
from toposcope.hooks import record
from toposcope.model import Frontend, Wav2Letter
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


def _model(norm: str = "none", seed: int = 0, frontend: FrontendConfig | None = None) -> Wav2Letter:
    return random_tiny_model(norm, seed, frontend)


FRONT = FrontendConfig(channels=3, kernel=(3, 5), pool=4)


@pytest.mark.parametrize("norm,frontend", [("none", None), ("batch", None), ("none", FRONT), ("batch", FRONT)])
def test_lengths_zero_padding_before_the_hook_at_every_layer(norm, frontend):
    """With lengths, every site sees exactly 0 past the utterance's valid length, and the valid frames
    (activations and gradients) equal those of the utterance run alone (with and without a 2-D front end,
    whose time kernel also reads past an utterance's end)."""
    m = _model(norm, frontend=frontend)
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


# -- the optional 2-D front end ([frontend], docs/method.md § Front end) -------------------------------------
def test_frontend_hand_computed():
    """One 1x1 filter of weight 1 and bias 0 is ReLU; the pool then takes the max of each 2 mel bins."""
    f = Frontend(FrontendConfig(channels=1, kernel=(1, 1), pool=2))
    with torch.no_grad():
        f.conv.weight.fill_(1.0)
        f.conv.bias.zero_()
    x = torch.tensor([[[1., -2.], [3., 4.], [-1., -5.], [-2., 0.5], [7., 7.]]])  # (1, 5 mels, 2 frames)
    assert f(x).tolist() == [[[3., 4.], [0., 0.5]]]  # bins (0, 1) and (2, 3); bin 4 is dropped (5 // 2 = 2)
    # two filters: channel c * (n_mels // pool) + m is filter c at pooled band m
    f2 = Frontend(FrontendConfig(channels=2, kernel=(1, 1), pool=2))
    with torch.no_grad():
        f2.conv.weight[:, 0, 0, 0] = torch.tensor([1.0, -1.0])
        f2.conv.bias.zero_()
    assert f2(x).tolist() == [[[3., 4.], [0., 0.5], [0., 2.], [2., 5.]]]  # relu(-x): max(0, 2), max(5, 0)
    # a time kernel of 3 with "same" padding: frame t sums frames t-1..t+1 (zeros outside)
    f3 = Frontend(FrontendConfig(channels=1, kernel=(1, 3), pool=1))
    with torch.no_grad():
        f3.conv.weight.fill_(1.0)
        f3.conv.bias.zero_()
    assert f3(torch.tensor([[[1., 2., 3.]]])).tolist() == [[[3., 6., 5.]]]
    assert f3(torch.tensor([[[1., 2., 3.]]]), unpadded=True).tolist() == [[[6.]]]


def test_frontend_model_shapes_geometry_and_config_round_trip():
    m = _model(frontend=FRONT)
    n_mels = m.cfg.features.n_mels  # 32
    assert m.conv("conv1").in_channels == 3 * (n_mels // 4) == FRONT.out_channels(n_mels) == 24
    plain = _model()
    lens = torch.tensor([101, 37])
    assert m.output_lengths(lens).tolist() == plain.output_lengths(lens).tolist()  # same frames
    x = torch.randn(2, n_mels, 101)
    assert m(x).shape == plain(x).shape
    # the front end's time kernel (5) comes first in the geometry: the receptive field grows by 4 frames
    assert m.geometry("conv1") == [(5, 1, 2), (5, 2, 2)]
    assert plain.geometry("conv1") == [(5, 2, 2)]
    # configs: round trip, and no "frontend" key when off (old runs' configs read as before)
    import dataclasses
    from toposcope.config import RunConfig

    rc = RunConfig(dataclasses.replace(load_config("tiny").model, frontend=FRONT))
    d = rc.to_dict()
    assert d["frontend"] == {"channels": 3, "kernel": [3, 5], "pool": 4}
    assert config_from_dict(d).model.frontend == FRONT
    assert "frontend" not in load_config("tiny").to_dict()


def test_frontend_bad_configs_are_clear_errors():
    base = {"layers": [{"channels": 16, "kernel": 3}], "features": {"n_mels": 16, "n_fft": 64, "hop": 16}}
    assert config_from_dict({**base, "frontend": {"channels": 4}}).model.frontend == FrontendConfig(4, (5, 3), 4)
    for bad, match in [({"channels": -1}, "channels must be >= 0"), ({"channels": 4, "pool": 0}, "pool must be"),
                       ({"channels": 4, "kernel": [4, 3]}, "two odd positive"), ({"channels": 4, "kernel": [5]}, "kernel"),
                       ({"channels": 4, "pool": 17}, "wider than the 16 mel bins"), ({"channels": 2.5}, "integer"),
                       ({"chanels": 4}, "unknown key")]:
        with pytest.raises(ConfigError, match=match):
            config_from_dict({**base, "frontend": bad})



def test_a_frontend_run_goes_through_the_pipeline(tiny_corpus, tmp_path):
    """A run with a front end trains, evaluates, profiles, maps, draws its filters (the first layer's tiles
    labelled as front-end bands) and gets optimal inputs; its checkpoint carries the front end."""
    import json

    from toposcope.checkpoint import dump_toml, load_run
    from toposcope.cli import main

    cfg = load_config("tiny").to_dict()
    cfg["frontend"] = {"channels": 2, "kernel": [3, 3], "pool": 4}
    toml = tmp_path / "front.toml"
    toml.write_text(dump_toml(cfg))
    run, data = tmp_path / "run", str(tiny_corpus.root)
    assert main(["train", "--data", data, "--out", str(run), "--config", str(toml), "--epochs", "2",
                 "--seed", "0", "--no-progress"]) == 0
    m = load_run(run, "best").model
    assert m.frontend is not None and m.conv("conv1").in_channels == 2 * (32 // 4)
    assert main(["evaluate", str(run), "--data", data, "--no-progress"]) == 0
    assert 0.0 <= json.loads((run / "eval" / "test.json").read_text())["cer"]
    assert main(["profile", str(run), "--data", data, "--no-progress"]) == 0
    assert main(["maps", str(run), "--no-progress"]) == 0
    assert (run / "maps" / "regions.json").is_file()
    assert main(["filters", str(run)]) == 0
    assert (run / "filters" / "closeup_conv1.png").stat().st_size > 1000
    assert main(["optimize", str(run), "--layer", "conv1", "--n-groups", "1", "--steps", "60",
                 "--no-audio", "--no-progress"]) == 0
    joint = list((run / "optimal" / "conv1").glob("*/joint.npy"))
    assert joint and np.load(joint[0]).shape[0] == 32  # an input is still a log-mel image (n_mels, frames)


# -- the optional phone head ([phone_head], docs/method.md § Phone head) -----------------------------------------
def test_phone_head_shapes_and_the_recognizer_unchanged():
    import dataclasses

    from toposcope.phones import PHONES
    from toposcope.config import RunConfig

    base = load_config("tiny").model
    torch.manual_seed(0)
    m = Wav2Letter(dataclasses.replace(base, phone_head=PhoneHeadConfig("conv2", 0.5))).eval()
    torch.manual_seed(0)
    plain = Wav2Letter(base).eval()
    # the head is the only extra parameter set, and it does not touch the path to the output
    assert set(m.state_dict()) - set(plain.state_dict()) == {"phone_head.weight", "phone_head.bias"}
    plain.load_state_dict({k: v for k, v in m.state_dict().items() if not k.startswith("phone_head")})
    x, lens = torch.randn(2, base.features.n_mels, 90), torch.tensor([90, 41])
    logp, ph = m(x, lens, phones=True)
    assert torch.equal(logp, m(x, lens)) and torch.equal(logp, plain(x, lens))
    assert ph.shape == (2, int(m.layer_lengths("conv2", torch.tensor([90]))[0]), len(PHONES))
    # the head reads conv2's (masked) activation: its logits are conv1d(k=1) of the recorded site
    with record(m, ["conv2"]) as rec:
        m(x, lens)
    act = rec.acts["conv2"]
    expect = torch.nn.functional.conv1d(act, m.phone_head.weight, m.phone_head.bias).transpose(1, 2)
    torch.testing.assert_close(ph, expect)
    with pytest.raises(ValueError, match="no phone head"):
        plain(x, lens, phones=True)
    # configs: round trip; no "phone_head" key when off (old runs' configs read as before)
    d = RunConfig(m.cfg).to_dict()
    assert d["phone_head"] == {"layer": "conv2", "weight": 0.5}
    assert config_from_dict(d).model.phone_head == PhoneHeadConfig("conv2", 0.5)
    assert "phone_head" not in load_config("tiny").to_dict()


def test_phone_head_bad_configs_are_clear_errors():
    base = {"layers": [{"channels": 16, "kernel": 3}] * 2, "features": {"n_mels": 16, "n_fft": 64, "hop": 16}}
    assert config_from_dict({**base, "phone_head": {"layer": "conv2"}}).model.phone_head.weight == 0.5
    for bad, match in [({"layer": "conv3"}, "not a gridded layer.*conv1, conv2"),
                       ({"layer": "output"}, "not a gridded layer"), ({"layer": "conv1", "weight": 0}, "> 0"),
                       ({"layer": "conv1", "weight": -1.0}, "> 0"), ({"layer": 2}, "layer name"),
                       ({"layer": "conv1", "weight": "x"}, "finite number"), ({"layers": "conv1"}, "unknown key")]:
        with pytest.raises(ConfigError, match=match):
            config_from_dict({**base, "phone_head": bad})
