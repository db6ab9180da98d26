"""Flite back end: one ``flite`` process per utterance (cheap: ~20 ms) (docs/method.md § Data and phones).

``flite -psdur`` prints ``phone:end_s`` pairs on stdout; the wave goes to a file. Rate is
``duration_stretch = 1/rate``, pitch ``f0_shift = pitch`` (voices with ``native_pitch``).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from .voices import Speaker, SynthError

__all__ = ["run_flite", "parse_psdur"]


def parse_psdur(text: str) -> list[tuple[float, str]]:
    out = []
    for tok in text.split():
        if ":" not in tok:
            continue
        lab, _, t = tok.rpartition(":")
        try:
            out.append((float(t), lab))
        except ValueError:
            continue
    return out


def run_flite(spk: Speaker, text: str, stem: Path) -> dict:
    v = spk.voice
    wav = Path(str(stem) + ".wav")
    cmd = ["flite", "-voice", v.engine_voice, "-psdur", "--setf", f"duration_stretch={1.0 / spk.rate:.6g}"]
    if v.native_pitch and spk.pitch != 1.0:
        cmd += ["--setf", f"f0_shift={spk.pitch:.6g}"]
    cmd += ["-t", text, "-o", str(wav)]
    proc = subprocess.run(cmd, capture_output=True, text=True, errors="replace")
    segs = parse_psdur(proc.stdout)
    if proc.returncode != 0 or not wav.exists() or not segs:
        raise SynthError(f"flite failed for voice {v.engine_voice} on {text!r} (exit {proc.returncode}): "
                         f"{proc.stderr.strip()[-300:]}")
    return {"wav": wav, "segs": segs, "words": None}
