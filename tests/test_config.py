"""Configs (toposcope.config): shipped configs, TOML round trip, validation errors that name the file."""

from __future__ import annotations

import dataclasses
import math
import tomllib

import pytest

from toposcope.checkpoint import dump_toml
from toposcope.config import (ConfigError, LayerSpec, ModelConfig, RunConfig, TrainConfig, config_from_dict,
                              load_config, merge_config_dicts, shipped_configs)
from toposcope.grid import Grid


def test_shipped_configs_and_their_grids():
    assert set(shipped_configs()) >= {"tiny", "small", "paper"}
    paper = load_config("paper")
    assert paper.model.features.n_mels == 128
    grids = [l.get_grid() for l in paper.model.layers]
    assert grids[0] == Grid(16, 16) and grids[-1] == Grid(64, 32)  # the seed's grids
    assert paper.model.layer_names == tuple(f"conv{i}" for i in range(1, len(paper.model.layers) + 1))
    small = load_config("small")
    assert all(l.get_grid() == Grid(16, 16) for l in small.model.layers if l.channels == 256)


@pytest.mark.parametrize("name", ["tiny", "small", "small-asr", "paper"])
def test_toml_round_trip(name, tmp_path):
    cfg = load_config(name)
    p = tmp_path / "c.toml"
    p.write_text(dump_toml(cfg.to_dict()))
    back = load_config(p)
    assert back == cfg and back.to_dict() == cfg.to_dict()


def test_round_trip_keeps_explicit_grids_and_overrides(tmp_path):
    cfg = load_config("tiny")
    layers = (LayerSpec(channels=12, kernel=5, stride=2, grid=(2, 6)),) + cfg.model.layers[1:]
    cfg = RunConfig(dataclasses.replace(cfg.model, layers=layers, dropout=0.25, norm="batch"),
                    dataclasses.replace(cfg.train, topo_weight=0.5, boundary="wrap", neighborhood=5, seed=7))
    d = tomllib.loads(dump_toml(cfg.to_dict()))
    assert d["layers"][0]["grid"] == [2, 6] and d["train"]["boundary"] == "wrap"
    back = config_from_dict(d)
    assert back == cfg and back.model.layers[0].get_grid() == Grid(2, 6)
    assert isinstance(back.model.dropout, float)


def _write(tmp_path, text, name="bad.toml"):
    p = tmp_path / name
    p.write_text(text)
    return p


LAYER = "[[layers]]\nchannels = 8\nkernel = 3\n"


@pytest.mark.parametrize("text, message", [
    (LAYER + "[train]\nlearning_rate = 1\n", r"\[train\]: unknown key\(s\) learning_rate"),
    ("colour = 1\n" + LAYER, r"unknown key\(s\) colour"),
    ("name = 'x'\n", r"needs a \[\[layers\]\] list"),
    ("[[layers]]\nchannels = 0\nkernel = 3\n", r"layers\[0\]: layer channels must be a positive integer"),
    ("[[layers]]\nchannels = 8\nkernel = 3\ngrid = [3, 3]\n", r"layers\[0\]: layer grid \[3, 3\] must be"),
    (LAYER + "[train]\ntopo_weight = -1.0\n", r"\[train\]: topo_weight must be >= 0"),
    (LAYER + "[train]\ntopo_weight = nan\n", r"\[train\]: topo_weight must be a finite number"),
    (LAYER + "[train]\nlr = inf\n", r"\[train\]: lr must be a finite number"),
    (LAYER + "[train]\nepochs = 2.5\n", r"\[train\]: epochs must be an integer"),
    (LAYER + "[train]\nbatch_size = true\n", r"\[train\]: batch_size must be an integer"),
    (LAYER + "[train]\nneighborhood = 4\n", r"neighborhood must be an odd integer >= 3"),
    (LAYER + "[train]\nboundary = 'torus'\n", r"boundary must be 'clip' or 'wrap'"),
    (LAYER + "[train]\nschedule = 'step'\n", r"schedule must be 'cosine' or 'constant'"),
    (LAYER + "[train]\ntopo_weight = 'high'\n", r"\[train\]: topo_weight must be a finite number"),
    ("dropout = 1.5\n" + LAYER, r"dropout must be in \[0, 1\)"),
    ("dropout = 'x'\n" + LAYER, r"dropout must be a finite number"),
    ("norm = 'layer'\n" + LAYER, r"norm must be 'none' or 'batch'"),
    (LAYER + "[features]\nn_mels = 0\n", r"\[features\]: feature sizes must be positive"),
    (LAYER + "[train\n", r"invalid TOML"),
])
def test_invalid_configs_are_refused_naming_the_file(tmp_path, text, message):
    p = _write(tmp_path, text)
    with pytest.raises(ConfigError, match=message) as e:
        load_config(p)
    assert str(e.value).startswith(str(p)), str(e.value)


def test_unreadable_config_files(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "missing.toml")
    (tmp_path / "dir.toml").mkdir()
    with pytest.raises(ConfigError, match=r"dir\.toml: is not a file"):
        load_config(tmp_path / "dir.toml")
    p = tmp_path / "latin1.toml"
    p.write_bytes(b"name = 'caf\xe9'\n")
    with pytest.raises(ConfigError, match=r"latin1\.toml: not UTF-8"):
        load_config(p)
    with pytest.raises(ConfigError, match="unknown config 'huge'; shipped: .*tiny"):
        load_config("huge")


def test_dataclasses_validate_when_built_in_python():
    with pytest.raises(ConfigError, match="must be >= 0"):
        TrainConfig(max_minutes=-1.0)
    with pytest.raises(ConfigError, match="finite"):
        TrainConfig(grad_clip=math.nan)
    with pytest.raises(ConfigError, match="sorted_epochs must be >= 0"):
        TrainConfig(sorted_epochs=-1)
    with pytest.raises(ConfigError, match="sorted_epochs must be an integer"):
        TrainConfig(sorted_epochs=1.5)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="at least one conv layer"):
        ModelConfig(name="x", features=load_config("tiny").model.features, layers=())
    with pytest.raises(dataclasses.FrozenInstanceError):
        TrainConfig().lr = 1.0  # type: ignore[misc]
    assert TrainConfig(topo_weight=1).topo_weight == 1  # an integer is a fine number


# -- base = "NAME": a config that gives only what it changes ----------------------------------------------
def test_merge_config_dicts_merges_tables_and_replaces_the_rest():
    base = {"name": "a", "dropout": 0.1, "train": {"lr": 1.0, "epochs": 3}, "layers": [{"channels": 4}, {"channels": 8}]}
    change = {"name": "b", "train": {"lr": 2.0}, "layers": [{"channels": 16}], "augment": {"enabled": False}}
    out = merge_config_dicts(base, change)
    assert out == {"name": "b", "dropout": 0.1, "train": {"lr": 2.0, "epochs": 3}, "layers": [{"channels": 16}],
                   "augment": {"enabled": False}}
    assert base["train"] == {"lr": 1.0, "epochs": 3}  # inputs untouched


def test_small_asr_is_small_with_the_front_end_and_the_phone_head():
    small, asr = load_config("small").to_dict(), load_config("small-asr").to_dict()
    assert asr["name"] == "small-asr" and asr["frontend"]["channels"] == 8
    assert asr["phone_head"]["layer"] == "conv4" and asr["phone_head"]["weight"] == 0.5
    assert "frontend" not in small and "phone_head" not in small  # opt-in: not written when off, as in small
    for key in set(small) - {"name", "frontend", "phone_head"}:
        assert asr[key] == small[key], key


def test_base_file_relative_to_the_file_and_chained(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "mid.toml").write_text('base = "tiny"\n[train]\nlr = 0.5\n')
    (tmp_path / "top.toml").write_text('base = "sub/mid.toml"\n[train]\nepochs = 7\n')
    cfg, tiny = load_config(tmp_path / "top.toml"), load_config("tiny")
    assert cfg.train.lr == 0.5 and cfg.train.epochs == 7 and cfg.model.name == "top"
    assert cfg.train.batch_size == tiny.train.batch_size and cfg.model.layers == tiny.model.layers


def test_base_errors_name_the_file(tmp_path):
    a, b = tmp_path / "a.toml", tmp_path / "b.toml"
    a.write_text('base = "b.toml"\n')
    b.write_text('base = "a.toml"\n')
    with pytest.raises(ConfigError, match="comes back"):
        load_config(a)
    (tmp_path / "sub").mkdir()
    a.write_text('base = "sub/../b.toml"\n')  # the same file by another path is still a cycle
    with pytest.raises(ConfigError, match="comes back"):
        load_config(a)
    a.write_text("base = 3\n")
    with pytest.raises(ConfigError, match="a.toml: base must be"):
        load_config(a)
    a.write_text('base = "no-such-config"\n')
    with pytest.raises(ConfigError, match="unknown config 'no-such-config'"):
        load_config(a)
    a.write_text('base = "tiny"\n[train]\nlrr = 1\n')  # the merged config is still checked
    with pytest.raises(ConfigError, match="lrr"):
        load_config(a)
