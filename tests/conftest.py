"""Shared fixtures (the only place fixtures used by several test modules are defined).

Session fixtures are built once and are read-only: ``tiny_corpus`` (a synthesized corpus) and ``tiny_run``
(a trained run folder). A test that writes into a run takes ``run_copy`` (a private copy of ``tiny_run``);
writing into ``tiny_run`` itself fails the session (checked when the session ends).
"""

from __future__ import annotations

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))  # tests/helpers.py

os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("TOPOSCOPE_NO_PROGRESS", "1")


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory):
    """~30 synthesized utterances with exact phone timings, all three splits present."""
    from toposcope.synth import synthesize

    out = tmp_path_factory.mktemp("tiny_corpus")
    return synthesize(out, utterances=30, seed=0, progress=False)


@pytest.fixture(scope="session")
def tiny_run(tiny_corpus, tmp_path_factory):
    """A ``tiny``-config topographic model trained for a few epochs on ``tiny_corpus`` (run dir path)."""
    from toposcope.train import train

    out = tmp_path_factory.mktemp("tiny_run") / "run"
    train(tiny_corpus.root, out, config="tiny", epochs=8, seed=0, progress=False)
    before = _snapshot(out)
    yield out
    changed = sorted(set(before.items()) ^ set(_snapshot(out).items()))
    assert not changed, (f"a test wrote into the shared session fixture tiny_run ({out}): "
                         f"{sorted({name for name, _ in changed})}; take the run_copy fixture instead")


def _snapshot(folder) -> dict:
    """Relative path -> (size, mtime_ns) of every file (``.lock``, rewritten by every reader that locks, aside)."""
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*")) if p.is_file() and p.name != ".lock"}


@pytest.fixture
def run_copy(tiny_run, tmp_path):
    """A private copy of ``tiny_run`` (same folder name ``run``) that the test may write into."""
    import shutil

    return shutil.copytree(tiny_run, tmp_path / "run", ignore=shutil.ignore_patterns(".lock"))


@pytest.fixture
def tiny_model():
    """A fresh untrained ``tiny``-config Wav2Letter (initialised with seed 0, eval mode); one per test."""
    import torch

    from toposcope.config import load_config
    from toposcope.model import Wav2Letter

    torch.manual_seed(0)
    return Wav2Letter(load_config("tiny").model).eval()
