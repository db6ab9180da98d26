"""Diagnostic (recipe sweep, round 3): re-estimate a run's BatchNorm statistics on one split's audio (no
labels; "AdaBN"), one utterance at a time so padding never enters them, then decode valid and test.

    .venv/bin/python benchmarks/prototypes/adabn.py RUN CORPUS

Prints CER as trained, with statistics from the training split (the control: re-estimation alone), and
with statistics from the test split (adaptation to the held-out voices' audio).
"""
import copy
import sys

import torch

from toposcope.checkpoint import load_run
from toposcope.corpus import Corpus
from toposcope.data import SpeechDataset, collate, load_features
from toposcope.evaluate import error_rates, transcribe

run = load_run(sys.argv[1])
corpus = Corpus.load(sys.argv[2], alignments=False)
store = load_features(corpus, run.config.model.features, progress=False)
ds = {s: SpeechDataset(corpus.split(s), store) for s in ("train", "valid", "test")}


def cer(model, split: str) -> float:
    pairs = transcribe(model, ds[split], batch_size=16, progress=False)
    return round(100 * error_rates([r for r, _ in pairs], [h for _, h in pairs])[0], 1)


def adapted(split: str):
    """A copy of the model whose BatchNorm statistics are the plain average over ``split``'s utterances."""
    m = copy.deepcopy(run.model)
    for mod in m.modules():
        if isinstance(mod, torch.nn.BatchNorm1d):
            mod.reset_running_stats()
            mod.momentum = None  # cumulative average
    m.train()
    with torch.no_grad():
        for i in range(len(ds[split])):  # one utterance at a time: no padding in the batch statistics
            b = collate([ds[split][i]])
            m(b.feats, b.lengths)
    return m.eval()


print("as trained: valid", cer(run.model, "valid"), "test", cer(run.model, "test"))
for src in ("train", "test"):
    m = adapted(src)
    print(f"BN statistics from {src}: valid", cer(m, "valid"), "test", cer(m, "test"))
