"""Shared fixtures, built once per test session: a tiny synthesized corpus and a tiny trained run."""

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
    return out
