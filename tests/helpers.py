"""Plain helpers shared by several test modules (``from helpers import ...``; conftest puts this folder on
``sys.path``). Fixtures live in ``conftest.py``."""

from __future__ import annotations

import numpy as np

from toposcope.audio import write_wav
from toposcope.corpus import Corpus, Utterance, write_manifest

WORDS = ["a", "be", "cab", "dad", "bead", "ace", "bad", "add", "deed", "cede"]


#: ``tone_corpus(letter_phones=True)``: the phone each letter's tone is labelled with
LETTER_PHONES = {"a": "aa", "b": "b", "c": "k", "d": "d", "e": "iy"}


def tone_corpus(root, n: int = 16, seed: int = 0, splits=("train",) * 10 + ("valid",) * 3 + ("test",) * 3,
                speakers=("s1", "s2"), letter_phones: bool = False) -> Corpus:
    """A corpus of 'tone speech': each letter a-e is a 80 ms tone of its own pitch, words separated by
    silence. Learnable in seconds by a tiny model, so tests can check that training really learns.
    Phones: one ``sil`` segment over the whole utterance, or with ``letter_phones`` each tone labelled
    ``LETTER_PHONES[letter]`` and the gaps ``sil``."""
    rng = np.random.default_rng(seed)
    sr = 16000
    (root / "audio").mkdir(parents=True, exist_ok=True)
    utts = []
    for i in range(n):
        words = [WORDS[j] for j in rng.integers(0, len(WORDS), size=int(rng.integers(2, 5)))]
        text = " ".join(words)
        pieces, segs = [np.zeros(int(0.1 * sr))], [(0.0, 0.1, "sil")]
        for w in words:
            for c in w:
                f = 300.0 * 1.35 ** (ord(c) - ord("a"))
                t = np.arange(int(0.08 * sr)) / sr
                pieces.append(0.3 * np.sin(2 * np.pi * f * t) * np.hanning(len(t)))
                segs.append((segs[-1][1], segs[-1][1] + 0.08, LETTER_PHONES[c]))
            pieces.append(np.zeros(int(0.06 * sr)))
            segs.append((segs[-1][1], segs[-1][1] + 0.06, "sil"))
        pieces.append(np.zeros(int(0.1 * sr)))
        wave = np.concatenate(pieces) + 0.003 * rng.standard_normal(sum(len(p) for p in pieces))
        wave = wave.astype(np.float32)
        write_wav(root / "audio" / f"u{i:03d}.wav", wave)
        d = len(wave) / sr
        segs.append((segs[-1][1], d, "sil"))
        utts.append(Utterance(id=f"u{i:03d}", audio=f"audio/u{i:03d}.wav", speaker=speakers[i % len(speakers)],
                              text=text, duration=d, phones=segs if letter_phones else [(0.0, d, "sil")],
                              split=splits[i % len(splits)]))
    write_manifest(root / "manifest.jsonl", utts)
    return Corpus.load(root)


def random_tiny_model(norm: str = "none", seed: int = 0, frontend=None):
    """``tiny`` (kernels of 5 frames) with random weights; with ``norm="batch"`` its BatchNorm layers get random
    running statistics and affine parameters (so padded frames would be far from zero without the mask).
    ``frontend``: a :class:`toposcope.config.FrontendConfig` to put before conv1 (default: none)."""
    import dataclasses

    import torch

    from toposcope.config import FrontendConfig, load_config
    from toposcope.model import Wav2Letter

    torch.manual_seed(seed)
    cfg = dataclasses.replace(load_config("tiny").model, norm=norm, frontend=frontend or FrontendConfig())
    m = Wav2Letter(cfg).eval()
    with torch.no_grad():
        for mod in m.modules():
            if isinstance(mod, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
                mod.running_mean.uniform_(-1, 1)
                mod.running_var.uniform_(0.5, 2.0)
                mod.weight.uniform_(-2, 2)
                mod.bias.uniform_(-0.5, 1.0)
    return m
