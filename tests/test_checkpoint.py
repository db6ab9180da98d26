"""Atomic checkpoints, weights_only loading, the TOML writer and load_run."""

from __future__ import annotations

import tomllib

import pytest
import torch

from toposcope.checkpoint import dump_toml, load_checkpoint, load_run, save_checkpoint
from toposcope.config import config_from_dict, load_config
from toposcope.model import Wav2Letter


@pytest.mark.parametrize("name", ["tiny", "small", "paper"])
def test_config_roundtrips_through_toml(name, tmp_path):
    cfg = load_config(name)
    text = dump_toml(cfg.to_dict())
    assert config_from_dict(tomllib.loads(text)) == cfg
    p = tmp_path / "config.toml"
    p.write_text(text)
    assert load_config(p) == cfg


def test_dump_toml_escapes_and_types():
    d = {"s": 'a "quoted"\\ line\nnext', "f": 1.0, "i": 3, "b": True, "l": [1, 2], "none": None,
         "t": {"x": 0.5, "deep": {"y": "z"}}, "arr": [{"k": 1}, {"k": 2}]}
    back = tomllib.loads(dump_toml(d))
    assert back == {"s": d["s"], "f": 1.0, "i": 3, "b": True, "l": [1, 2], "t": d["t"], "arr": d["arr"]}
    assert isinstance(back["f"], float)


class Evil:
    """Not a tensor/container: weights_only loading must refuse it."""


def test_save_is_atomic_and_weights_only(tmp_path, monkeypatch):
    p = tmp_path / "ck" / "last.pt"
    save_checkpoint(p, {"model": {"w": torch.ones(2)}, "config": {}, "step": 1})
    before = p.read_bytes()

    def boom(obj, f):
        f.write(b"partial")
        raise RuntimeError("disk full")

    monkeypatch.setattr(torch, "save", boom)
    with pytest.raises(RuntimeError, match="disk full"):
        save_checkpoint(p, {"model": {}, "config": {}, "step": 2})
    monkeypatch.undo()
    assert p.read_bytes() == before  # old checkpoint intact
    assert [q.name for q in p.parent.iterdir()] == ["last.pt"]  # no temp files left
    assert load_checkpoint(p)["step"] == 1
    # a pickled arbitrary object is refused by weights_only loading
    torch.save({"model": {}, "config": {}, "x": Evil()}, tmp_path / "evil.pt")
    with pytest.raises(ValueError, match="unreadable checkpoint"):
        load_checkpoint(tmp_path / "evil.pt")
    with pytest.raises(FileNotFoundError):
        load_checkpoint(tmp_path / "nope.pt")


def test_load_run_restores_model_and_config(tmp_path):
    cfg = load_config("tiny")
    m = Wav2Letter(cfg.model)
    save_checkpoint(tmp_path / "run" / "checkpoints" / "best.pt",
                    {"model": m.state_dict(), "config": cfg.to_dict(), "step": 7, "epoch": 2,
                     "metrics": {"cer": 0.5, "wer": 0.9}})
    run = load_run(tmp_path / "run")
    assert run.config == cfg and run.meta["step"] == 7 and run.meta["metrics"]["cer"] == 0.5
    assert not run.model.training and run.path == tmp_path / "run"
    for k, v in m.state_dict().items():
        assert torch.equal(run.model.state_dict()[k], v)
    run2 = load_run(tmp_path / "run" / "checkpoints" / "best.pt")
    assert run2.path == tmp_path / "run"
    with pytest.raises(FileNotFoundError, match="last.pt"):
        load_run(tmp_path / "run", which="last")
    with pytest.raises(FileNotFoundError):
        load_run(tmp_path / "missing")


def test_run_folder_state(tmp_path):
    from toposcope.checkpoint import run_folder_state

    run = tmp_path / "run"
    assert run_folder_state(run) == "new"  # absent
    run.mkdir()
    (run / ".lock").write_text("")
    assert run_folder_state(run) == "new"  # only the lock file: nothing of a run
    (run / "config.toml").write_text(dump_toml(load_config("tiny").to_dict()))
    assert run_folder_state(run) == "unstarted"  # killed before its first checkpoint
    (run / "checkpoints").mkdir()
    (run / "checkpoints" / ".last.pt.x1.tmp").write_bytes(b"half")  # killed while saving the first one
    save_checkpoint(run / "checkpoints" / "best.pt", {"model": {}, "config": {}})
    assert run_folder_state(run) == "unstarted"
    save_checkpoint(run / "checkpoints" / "last.pt", {"model": {}, "config": {}})
    assert run_folder_state(run) == "resumable"
