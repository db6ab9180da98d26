"""CTC decoding and CER/WER per split and per speaker (``jiwer``).

``evaluate(run, data, split)`` writes ``RUN/eval/<split>.json``::

    {"split", "cer", "wer", "n_utterances", "per_speaker": {spk: {"cer", "wer", "n"}}, ...,
     "lm": {"cer", "wer", "per_speaker", "decoder", "lm", ...}}     # "lm" only with a language model

The top-level numbers are greedy decoding, i.e. the acoustic model alone (what the maps are made of);
``"lm"`` holds the same utterances beam-searched with a language model: by default a word n-gram over the
lexicon of a character LM's text, which spells the words outside it (docs/decoding.md).

CER/WER are corpus-level (total edits / total reference characters or words), as fractions.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Iterator, Sequence

import jiwer
import numpy as np
import torch

from .checkpoint import Run, load_run, write_text_atomic
from .corpus import Corpus, CorpusError
from .data import BucketBatchSampler, SpeechDataset, batch_loader, collate, load_features, progress_enabled
from .decode import DecoderConfig, beam_search_many, ctc_beam_search, decode_greedy
from .model import Wav2Letter
from .text import normalize_text
from .wordlm import WordLMConfig, decoding_lm, describe_lm

if TYPE_CHECKING:
    from .lm import CharNgramLM

__all__ = ["evaluate", "transcribe", "iter_log_probs", "error_rates", "score_pairs", "format_table"]


def error_rates(refs: Sequence[str], hyps: Sequence[str]) -> tuple[float, float]:
    """Corpus-level ``(cer, wer)`` of normalised reference/hypothesis strings (fractions)."""
    refs, hyps = list(refs), list(hyps)
    if not refs:
        raise ValueError("no utterances to score")
    # jiwer wants a non-empty reference; an empty hypothesis counts as all deletions.
    pairs = [(r, h) for r, h in zip(refs, hyps) if r]
    if not pairs:
        raise ValueError("all references are empty")
    r, h = [p[0] for p in pairs], [p[1] for p in pairs]
    return float(jiwer.cer(r, h)), float(jiwer.wer(r, h))


@torch.no_grad()
def iter_log_probs(model: Wav2Letter, dataset: SpeechDataset, *, batch_size: int = 16, device=None,
                   progress: bool = False, desc: str = "decode") -> Iterator[tuple[int, np.ndarray]]:
    """``(index, log_probs)`` for every item of ``dataset``; ``log_probs`` is ``(T', n_classes)`` float32
    with the padding frames removed. Items come in length-sorted batches (not in dataset order); the model
    is put in eval mode and restored."""
    from tqdm.auto import tqdm

    device = device or next(model.parameters()).device
    was_training = model.training
    model.eval()
    sampler = BucketBatchSampler(dataset.lengths, batch_size, shuffle=False) if len(dataset) else None
    try:
        batches = batch_loader(dataset, sampler, 0) if sampler else iter(())  # DataLoader workers read ahead
        for idx in tqdm(sampler.batches if sampler else [], desc=desc, unit="batch", leave=False,
                        disable=not progress_enabled(progress)):
            b = next(batches).to(device)  # = collate([dataset[i] for i in idx]) (unshuffled, one process)
            logp = model(b.feats, b.lengths)  # (B, T', n_classes); padding masked (batch invariant)
            n_out = model.output_lengths(b.lengths).clamp(max=logp.shape[1])
            logp = logp.float().cpu().numpy()
            for j, i in enumerate(idx):
                yield i, logp[j, :int(n_out[j])]
    finally:
        model.train(was_training)


def transcribe(model: Wav2Letter, dataset: SpeechDataset, *, batch_size: int = 16, device=None,
               progress: bool = False, desc: str = "decode", lm: "CharNgramLM | None" = None,
               decoder: DecoderConfig | None = None,
               word_lm: WordLMConfig | None = WordLMConfig()) -> list[tuple[str, str]]:
    """Decode every item: ``[(reference, hypothesis)]`` in dataset order.

    Greedy (best class per frame) unless ``lm`` or ``decoder`` is given: then CTC prefix beam search
    (:func:`toposcope.decode.ctc_beam_search`, ``decoder`` defaulting to :class:`DecoderConfig`) with ``lm``
    inside a word LM of settings ``word_lm`` (``None``: the character LM alone; :func:`toposcope.wordlm.decoding_lm`).
    """
    beam = lm is not None or decoder is not None
    lm = decoding_lm(lm, word_lm)
    out: list[tuple[str, str] | None] = [None] * len(dataset)
    for i, lp in iter_log_probs(model, dataset, batch_size=batch_size, device=device, progress=progress, desc=desc):
        hyp = ctc_beam_search(lp, lm, decoder or DecoderConfig()) if beam else decode_greedy(lp)
        out[i] = (normalize_text(dataset.items[i][2].text), hyp)  # items: no second feature read
    return out  # type: ignore[return-value]


def evaluate(run, data, split: str = "test", *, which: str = "best", batch_size: int = 16,
             progress: bool = True, write: bool = True, device=None, lm: "CharNgramLM | str | Path | None" = None,
             decoder: DecoderConfig | None = None, jobs: int | None = None,
             word_lm: WordLMConfig | None = WordLMConfig()) -> dict:
    """CER/WER of ``run`` (a :class:`Run` or run directory) on ``split`` of corpus ``data``.

    Returns ``{"split", "cer", "wer", "n_utterances", "per_speaker": {spk: {"cer", "wer", "n"}},
    "skipped", "checkpoint", "examples"}`` for greedy decoding and writes it to ``RUN/eval/<split>.json``
    when ``write``, holding the run folder's lock (:func:`toposcope.runlock.run_lock`) meanwhile.
    With ``lm`` (a :class:`~toposcope.lm.CharNgramLM` or its file) the same log-probabilities are also
    beam-searched with it, inside a word LM over its text's lexicon (``word_lm``; ``None``: the character
    LM alone; :func:`toposcope.wordlm.decoding_lm`), and the result gains ``"lm": {"cer", "wer",
    "per_speaker", "examples", "decoder", "lm"}``; the top-level numbers stay greedy (the acoustic model
    alone). The beam search runs in ``jobs`` processes (default: the usable cores;
    :func:`toposcope.decode.beam_search_many`).
    """
    lm = decoding_lm(lm, word_lm)
    if not isinstance(run, Run):
        run = load_run(run, which=which)
    kw = dict(batch_size=batch_size, progress=progress, write=write, device=device, lm=lm, jobs=jobs,
              decoder=decoder or (DecoderConfig() if lm is not None else None))
    if write and run.path is not None:
        from .runlock import run_lock

        with run_lock(run.path, "evaluate"):
            return _evaluate(run, data, split, **kw)
    return _evaluate(run, data, split, **kw)


def score_pairs(pairs: Sequence[tuple[str, str]], speakers: Sequence[str]) -> dict:
    """``{"cer", "wer", "per_speaker": {spk: {"cer", "wer", "n"}}}`` of ``(reference, hypothesis)`` pairs."""
    cer, wer = error_rates([r for r, _ in pairs], [h for _, h in pairs])
    per: dict[str, list[tuple[str, str]]] = {}
    for pair, spk in zip(pairs, speakers):
        per.setdefault(spk, []).append(pair)
    per_speaker = {}
    for spk in sorted(per):
        c, w = error_rates([r for r, _ in per[spk]], [h for _, h in per[spk]])
        per_speaker[spk] = {"cer": c, "wer": w, "n": len(per[spk])}
    return {"cer": cer, "wer": wer, "per_speaker": per_speaker}


def _evaluate(run: Run, data, split: str, *, batch_size: int, progress: bool, write: bool, device,
              lm, decoder: DecoderConfig | None, jobs: int | None) -> dict:
    from dataclasses import asdict

    corpus = data if isinstance(data, Corpus) else Corpus.load(data, alignments=False)
    utts = corpus.split(split)
    if not utts:
        raise CorpusError(f"{corpus.root}: the corpus has no {split!r} utterances")
    store = load_features(corpus, run.config.model.features, progress=progress)
    ds = SpeechDataset(utts, store)
    if device is not None:
        run.model.to(device)
    refs = [normalize_text(u.text) for _, _, u in ds.items]
    speakers = [u.speaker for _, _, u in ds.items]
    log_probs: list = [None] * len(ds)
    for i, lp in iter_log_probs(run.model, ds, batch_size=batch_size, progress=progress, desc=f"evaluate {split}"):
        log_probs[i] = lp
    greedy = [(r, decode_greedy(lp)) for r, lp in zip(refs, log_probs)]

    def examples(pairs):
        return [{"id": u.id, "ref": r, "hyp": h} for (r, h), (_, _, u) in list(zip(pairs, ds.items))[:5]]

    result = {"split": split, **score_pairs(greedy, speakers), "n_utterances": len(greedy), "decoding": "greedy",
              "skipped": [{"id": i, "why": why} for i, why in ds.skipped],
              "checkpoint": run.meta.get("checkpoint"), "examples": examples(greedy)}
    if decoder is not None:
        hyps = beam_search_many(log_probs, lm, decoder, jobs=jobs, progress=progress, desc=f"beam search {split}")
        beam = list(zip(refs, hyps))
        known = set(lm.texts) if lm is not None else set()
        result["lm"] = {**score_pairs(beam, speakers), "examples": examples(beam), "decoder": asdict(decoder),
                        "lm": None if lm is None else lm.info(),
                        # evaluated sentences the LM was fitted on: > 0 makes the LM numbers optimistic
                        "known_sentences": sum(r in known for r in refs)}
    if write and run.path is not None:
        write_text_atomic(Path(run.path) / "eval" / f"{split}.json", json.dumps(result, indent=2) + "\n")
    return result


def format_table(result: dict) -> str:
    """A plain-text table: one row per speaker, then the split total; greedy CER/WER, and the beam search's
    beside them when the result has an ``"lm"`` block."""
    lm = result.get("lm")
    rows = [(spk, v["n"], v["cer"], v["wer"]) + ((lm["per_speaker"][spk]["cer"], lm["per_speaker"][spk]["wer"])
                                                    if lm else ()) for spk, v in result["per_speaker"].items()]
    rows.append((f"all ({result['split']})", result["n_utterances"], result["cer"], result["wer"])
                + ((lm["cer"], lm["wer"]) if lm else ()))
    w = max(7, *(len(r[0]) for r in rows))
    heads = ["CER %", "WER %"] + (["LM CER %", "LM WER %"] if lm else [])
    cols = "".join(f"  {h:>8}" for h in heads)
    header = f"{'speaker':<{w}}  {'n':>5}{cols}"
    lines = [header, "-" * len(header)]
    for i, (name, n, *vals) in enumerate(rows):
        if i == len(rows) - 1:
            lines.append("-" * len(header))
        lines.append(f"{name:<{w}}  {n:>5}" + "".join(f"  {100 * v:>8.2f}" for v in vals))
    if lm:
        if lm.get("known_sentences"):
            lines.append(f"warning: {lm['known_sentences']} of the {result['n_utterances']} sentences are in the "
                         "language model's own text, so its numbers are optimistic (fit it with `toposcope lm` "
                         "on this corpus: valid and test are left out)")
        d = lm["decoder"]
        lines.append(f"LM: beam {d['beam']}, alpha {d['alpha']:g}, beta {d['beta']:g}, " + describe_lm(lm.get("lm")))
    return "\n".join(lines)
