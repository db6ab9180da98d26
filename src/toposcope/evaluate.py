"""Greedy CTC decoding and CER/WER per split and per speaker (``jiwer``).

``evaluate(run, data, split)`` writes ``RUN/eval/<split>.json``::

    {"split", "cer", "wer", "n_utterances", "per_speaker": {spk: {"cer", "wer", "n"}}, ...}

CER/WER are corpus-level (total edits / total reference characters or words), as fractions.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import jiwer
import torch

from .checkpoint import Run, load_run, write_text_atomic
from .corpus import Corpus, CorpusError
from .data import BucketBatchSampler, SpeechDataset, batch_loader, collate, load_features, progress_enabled
from .model import Wav2Letter
from .text import ctc_greedy, normalize_text

__all__ = ["evaluate", "transcribe", "error_rates", "format_table"]


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
def transcribe(model: Wav2Letter, dataset: SpeechDataset, *, batch_size: int = 16, device=None,
               progress: bool = False, desc: str = "decode") -> list[tuple[str, str]]:
    """Greedy-decode every item: ``[(reference, hypothesis)]`` in dataset order.

    Batches are length-sorted so padding stays small; the model is put in eval mode and restored.
    """
    from tqdm.auto import tqdm

    device = device or next(model.parameters()).device
    was_training = model.training
    model.eval()
    out: list[tuple[str, str] | None] = [None] * len(dataset)
    sampler = BucketBatchSampler(dataset.lengths, batch_size, shuffle=False) if len(dataset) else None
    try:
        batches = batch_loader(dataset, sampler, 0) if sampler else iter(())  # DataLoader workers read ahead
        for idx in tqdm(sampler.batches if sampler else [], desc=desc, unit="batch", leave=False,
                        disable=not progress_enabled(progress)):
            b = next(batches).to(device)  # = collate([dataset[i] for i in idx]) (unshuffled, one process)
            logp = model(b.feats, b.lengths)  # (B, T', n_classes); padding masked (batch invariant)
            n_out = model.output_lengths(b.lengths).clamp(max=logp.shape[1])
            best = logp.argmax(-1).cpu()
            for j, i in enumerate(idx):
                ref = normalize_text(dataset[i][2].text)
                out[i] = (ref, ctc_greedy(best[j, :int(n_out[j])].tolist()))
    finally:
        model.train(was_training)
    return out  # type: ignore[return-value]


def evaluate(run, data, split: str = "test", *, which: str = "best", batch_size: int = 16,
             progress: bool = True, write: bool = True, device=None) -> dict:
    """CER/WER of ``run`` (a :class:`Run` or run directory) on ``split`` of corpus ``data``.

    Returns ``{"split", "cer", "wer", "n_utterances", "per_speaker": {spk: {"cer", "wer", "n"}},
    "skipped", "checkpoint"}`` and writes it to ``RUN/eval/<split>.json`` when ``write``, holding the run
    folder's lock (:func:`toposcope.runlock.run_lock`) meanwhile.
    """
    if not isinstance(run, Run):
        run = load_run(run, which=which)
    if write and run.path is not None:
        from .runlock import run_lock

        with run_lock(run.path, "evaluate"):
            return _evaluate(run, data, split, batch_size=batch_size, progress=progress, write=write, device=device)
    return _evaluate(run, data, split, batch_size=batch_size, progress=progress, write=write, device=device)


def _evaluate(run: Run, data, split: str, *, batch_size: int, progress: bool, write: bool, device) -> dict:
    corpus = data if isinstance(data, Corpus) else Corpus.load(data, alignments=False)
    utts = corpus.split(split)
    if not utts:
        raise CorpusError(f"{corpus.root}: the corpus has no {split!r} utterances")
    store = load_features(corpus, run.config.model.features, progress=progress)
    ds = SpeechDataset(utts, store)
    if device is not None:
        run.model.to(device)
    pairs = transcribe(run.model, ds, batch_size=batch_size, progress=progress, desc=f"evaluate {split}")
    cer, wer = error_rates([r for r, _ in pairs], [h for _, h in pairs])
    per: dict[str, list[tuple[str, str]]] = {}
    for (ref, hyp), (_, _, u) in zip(pairs, ds.items):
        per.setdefault(u.speaker, []).append((ref, hyp))
    per_speaker = {}
    for spk in sorted(per):
        c, w = error_rates([r for r, _ in per[spk]], [h for _, h in per[spk]])
        per_speaker[spk] = {"cer": c, "wer": w, "n": len(per[spk])}
    result = {"split": split, "cer": cer, "wer": wer, "n_utterances": len(pairs), "per_speaker": per_speaker,
              "skipped": [{"id": i, "why": why} for i, why in ds.skipped],
              "checkpoint": run.meta.get("checkpoint"),
              "examples": [{"id": u.id, "ref": r, "hyp": h} for (r, h), (_, _, u) in list(zip(pairs, ds.items))[:5]]}
    if write and run.path is not None:
        write_text_atomic(Path(run.path) / "eval" / f"{split}.json", json.dumps(result, indent=2) + "\n")
    return result


def format_table(result: dict) -> str:
    """A plain-text table: one row per speaker, then the split total."""
    rows = [(spk, v["n"], v["cer"], v["wer"]) for spk, v in result["per_speaker"].items()]
    rows.append((f"all ({result['split']})", result["n_utterances"], result["cer"], result["wer"]))
    w = max(7, *(len(r[0]) for r in rows))
    lines = [f"{'speaker':<{w}}  {'n':>5}  {'CER %':>7}  {'WER %':>7}", "-" * (w + 25)]
    for i, (name, n, c, wr) in enumerate(rows):
        if i == len(rows) - 1:
            lines.append("-" * (w + 25))
        lines.append(f"{name:<{w}}  {n:>5}  {100 * c:>7.2f}  {100 * wr:>7.2f}")
    return "\n".join(lines)
