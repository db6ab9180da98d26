"""Festival back end: one ``festival`` process synthesizes a whole batch (docs/method.md § Data and phones).

A generated Scheme script runs ``utt.synth`` (not ``SayText``) per utterance and saves the wave
(``utt.save.wave``), the segment end times (``utt.save.segs``) and the word spans (first
segment start, last segment end of each word through the ``SylStructure`` relation). Each
utterance is wrapped in ``unwind-protect`` so one failing sentence does not stop the batch.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from .voices import Speaker, SynthError

__all__ = ["run_festival_batch", "parse_segs", "parse_words"]

_PRELUDE = r"""
(define (ts_save_words u path)
  (let ((fd (fopen path "w")))
    (mapcar (lambda (w)
      (format fd "%s %s %s\n"
        (item.feat w "R:SylStructure.daughter1.daughter1.segment_start")
        (item.feat w "R:SylStructure.daughtern.daughtern.end")
        (item.name w)))
      (utt.relation.items u 'Word))
    (fclose fd)))
(define (ts_scale_lr p)
  (set! int_lr_params
    (mapcar (lambda (kv)
              (if (or (eq? (car kv) 'target_f0_mean) (eq? (car kv) 'target_f0_std))
                  (list (car kv) (* p (car (cdr kv))))
                  kv))
            ts_base_lr)))
(define (ts_voice vfn)
  (vfn)
  (set! ts_base_ds (Parameter.get 'Duration_Stretch))
  (if (not ts_base_ds) (set! ts_base_ds 1.0))
  (set! ts_base_lr int_lr_params)
  (set! ts_base_hts (if (boundp 'hts_engine_params) hts_engine_params nil)))
(define (ts_variant rate pitch hts)
  (if hts
      (set! hts_engine_params (append ts_base_hts (list (list "-r" rate))))
      (begin
        (Parameter.set 'Duration_Stretch (/ ts_base_ds rate))
        (ts_scale_lr pitch))))
(define (ts_say u wav segs words)
  (utt.synth u)
  (utt.save.wave u wav 'riff)
  (utt.save.segs u segs)
  (ts_save_words u words)
  (format t "TS_OK %s\n" wav))
"""


def _q(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def parse_segs(path) -> list[tuple[float, str]]:
    """``utt.save.segs`` output -> ``[(end_s, label), ...]`` (header up to the ``#`` line skipped)."""
    out, body = [], False
    for line in Path(path).read_text().splitlines():
        if not body:
            body = line.strip() == "#"
            continue
        parts = line.split()
        if len(parts) >= 3:
            out.append((float(parts[0]), parts[2]))
    if not out:
        raise SynthError(f"{path}: no segments in Festival's output")
    return out


def parse_words(path) -> list[tuple[float, float, str]]:
    out = []
    for line in Path(path).read_text().splitlines():
        parts = line.split(None, 2)
        if len(parts) == 3:
            s, e = float(parts[0]), float(parts[1])
            if e > s:
                out.append((s, e, parts[2]))
    return out


def run_festival_batch(items: list[tuple[Speaker, str, Path]], workdir: Path) -> dict[Path, dict]:
    """Synthesize ``(speaker, sentence, stem)`` items in one Festival process.

    Returns ``{stem: {"wav": path, "segs": [(end, label)], "words": [(s, e, w)]}}`` for the items
    that succeeded (failed sentences are missing from the result).
    """
    workdir.mkdir(parents=True, exist_ok=True)
    lines = [_PRELUDE]
    current = None
    for spk, text, stem in items:
        v = spk.voice
        if v.engine != "festival":
            raise SynthError(f"voice {v.name} is not a Festival voice")
        if v.engine_voice != current:
            lines.append(f"(ts_voice voice_{v.engine_voice})")
            current = v.engine_voice
        hts = "t" if not v.native_pitch else "nil"
        lines.append(f"(ts_variant {spk.rate!r} {spk.pitch!r} {hts})")
        wav = _q(str(stem) + ".wav")
        # ``Utterance`` does not evaluate its text argument: the literal goes in place.
        lines.append(f"(unwind-protect (ts_say (Utterance Text {_q(text)}) {wav} {_q(str(stem) + '.segs')} "
                     f"{_q(str(stem) + '.words')}) (format t \"TS_FAIL %s\\n\" {wav}))")
    script = workdir / f"batch-{Path(items[0][2]).name}.scm"
    script.write_text("\n".join(lines) + "\n", encoding="utf-8")
    proc = subprocess.run(["festival", "-b", str(script)], capture_output=True, text=True,
                          errors="replace")
    ok = {line.split(None, 1)[1].strip() for line in proc.stdout.splitlines() if line.startswith("TS_OK ")}
    results = {}
    for spk, text, stem in items:
        wav = str(stem) + ".wav"
        if wav in ok and Path(wav).exists():
            results[Path(stem)] = {"wav": Path(wav), "segs": parse_segs(str(stem) + ".segs"),
                                   "words": parse_words(str(stem) + ".words")}
    if not results and items:
        raise SynthError(f"festival failed on every utterance of {script} (exit {proc.returncode}): "
                         f"{proc.stderr.strip()[-500:]}")
    script.unlink(missing_ok=True)
    return results
