"""Prototype (recipe sweep, round 5): what would a lexicon buy the decoder?

Decodes RUN's test split with beam search and the character LM (as ``toposcope evaluate --lm``), then
replaces every hypothesis word that is not in the LM's text by the nearest word that is (edit distance <= 2;
ties: the more frequent), and prints CER / WER before and after, and the test words' out-of-vocabulary
rate against the LM's text. Snapping is a crude stand-in for a lexicon-constrained search (it cannot mend
merged or split words, nor rescore the beam); it asks whether the wrong words are near misses of real words.

    .venv/bin/python benchmarks/prototypes/nearest_word.py RUN CORPUS LM.json
"""
import collections
import json
import sys

from toposcope.checkpoint import load_run
from toposcope.corpus import Corpus
from toposcope.data import SpeechDataset, load_features
from toposcope.evaluate import error_rates, transcribe
from toposcope.lm import CharNgramLM

run_dir, corpus_dir, lm_path = sys.argv[1:4]
lm = CharNgramLM.load(lm_path)
texts = json.load(open(lm_path))["texts"]
freq = collections.Counter(w for t in texts for w in t.split())
corpus = Corpus.load(corpus_dir)
run = load_run(run_dir)
store = load_features(corpus, run.config.model.features, progress=False)
ds = SpeechDataset(corpus.split("test"), store)
pairs = transcribe(run.model, ds, batch_size=8, progress=False, lm=lm)
refs = [a for a, _ in pairs]; hyps = [b for _, b in pairs]
print("lm", [round(100 * x, 1) for x in error_rates(refs, hyps)])
vocab = [w for w, c in freq.items()]
def ed(a, b, cap):
    if abs(len(a) - len(b)) > cap: return cap + 1
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i] + [0] * len(b)
        for j, cb in enumerate(b, 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb))
        if min(cur) > cap: return cap + 1
        prev = cur
    return prev[-1]
by_len = collections.defaultdict(list)
for w in vocab: by_len[len(w)].append(w)
memo = {}
def fix(w):
    if w in freq: return w
    if w in memo: return memo[w]
    best, bd = w, 99
    for L in range(max(1, len(w) - 2), len(w) + 3):
        for v in by_len[L]:
            d = ed(w, v, min(bd, 2))
            if d < bd or (d == bd and freq[v] > freq.get(best, 0)):
                best, bd = v, d
    memo[w] = best if bd <= 2 else w
    return memo[w]
fixed = [" ".join(fix(w) for w in h.split()) for h in hyps]
print("lm+nearest word", [round(100 * x, 1) for x in error_rates(refs, fixed)])
oov = sum(w not in freq for r in refs for w in r.split()) / sum(len(r.split()) for r in refs)
print("test OOV rate vs LM text", round(100 * oov, 2))
