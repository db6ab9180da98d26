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
from toposcope.evaluate import transcribe, error_rates
from toposcope.corpus import Corpus
from toposcope.data import SpeechDataset, load_features, collate
run = load_run(sys.argv[1]); corpus = Corpus.load(sys.argv[2], alignments=False)
store = load_features(corpus, run.config.model.features, progress=False)
ds = {s: SpeechDataset(corpus.split(s), store) for s in ('train', 'valid', 'test')}
def score(model, s):
    p = transcribe(model, ds[s], batch_size=16, progress=False); return round(100 * error_rates([r for r, _ in p], [h for _, h in p])[0], 1)
def adapt(src):
    m = copy.deepcopy(run.model)
    for mod in m.modules():
        if isinstance(mod, torch.nn.BatchNorm1d):
            mod.reset_running_stats(); mod.momentum = None
    m.train()
    with torch.no_grad():
        d = ds[src]
        for i in range(len(d)):  # one utterance at a time: no padding in the batch statistics
            f, t, u = d[i]
            b = collate([(f, t, u)])
            m(b.feats, b.lengths)
    m.eval(); return m
print('as trained', 'valid', score(run.model, 'valid'), 'test', score(run.model, 'test'))
for src in ('train', 'test'):
    m = adapt(src); print('BN stats from', src, 'valid', score(m, 'valid'), 'test', score(m, 'test'))
