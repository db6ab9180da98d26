"""Voices of the embedded default corpus and their rate/pitch speaker variants (docs/method.md § Data and phones).

Every ``(voice, rate, pitch)`` combination is one ``speaker`` of the corpus. ``rate`` is a speed
factor (> 1 speaks faster), ``pitch`` a factor on F0. Where an engine can change F0 natively
(Festival diphone voices through ``int_lr_params``, Flite awb/slt/kal16 through ``f0_shift``,
espeak-ng through ``-p``) it does; for voices without pitch control (Festival
``cmu_us_slt_arctic_hts``, Flite ``rms``) the pitch variant is a speed perturbation of the
waveform (resampling by ``1/pitch``: F0 and formants scale by ``pitch``, every time scales by
``1/pitch`` exactly, so the labels stay exact).
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "SynthError", "MissingPackageError", "Voice", "Speaker", "VOICES", "DEFAULT_TEST_VOICES",
    "RATES", "PITCHES", "get_voices", "check_voices",
]


class SynthError(ValueError):
    """A synthesis problem (bad argument, engine failure, unusable output)."""


class MissingPackageError(SynthError):
    """A Debian package (program or voice) the embedded corpus needs is not installed."""


@dataclass(frozen=True)
class Voice:
    name: str           # corpus-wide voice name, e.g. "festival_kal_diphone"
    engine: str         # "festival" | "flite" | "espeak"
    engine_voice: str   # the engine's own name for it
    package: str        # Debian package that provides it
    native_pitch: bool  # can the engine shift F0 itself (else: speed perturbation)
    #: ``seconds ~ a + b * characters`` at rate 1 (fitted on a 1-hour corpus; only sizes ``hours=``)
    length_model: tuple[float, float] = (0.5, 0.055)

    def speaker(self, rate: float, pitch: float) -> "Speaker":
        return Speaker(self, float(rate), float(pitch))


@dataclass(frozen=True)
class Speaker:
    voice: Voice
    rate: float
    pitch: float

    @property
    def id(self) -> str:
        return f"{self.voice.name}-r{self.rate:g}-p{self.pitch:g}"

    @property
    def perturb(self) -> float:
        """Speed-perturbation factor applied to the waveform (1.0 when F0 is shifted natively)."""
        return 1.0 if self.voice.native_pitch else self.pitch


#: Speed factors and F0 factors; every combination is one speaker per voice (3 x 3 = 9).
RATES: tuple[float, ...] = (0.85, 1.0, 1.2)
PITCHES: tuple[float, ...] = (0.85, 1.0, 1.15)

_FESTIVAL_VOICE_DIRS = {
    "kal_diphone": "/usr/share/festival/voices/english/kal_diphone",
    "ked_diphone": "/usr/share/festival/voices/english/ked_diphone",
    "cmu_us_slt_arctic_hts": "/usr/share/festival/voices/us/cmu_us_slt_arctic_hts",
}

VOICES: dict[str, Voice] = {v.name: v for v in (
    Voice("festival_kal_diphone", "festival", "kal_diphone", "festvox-kallpc16k", True, (0.76, 0.0601)),
    Voice("festival_ked_diphone", "festival", "ked_diphone", "festvox-kdlpc16k", True, (0.842, 0.0565)),
    Voice("festival_cmu_us_slt_arctic_hts", "festival", "cmu_us_slt_arctic_hts", "festvox-us-slt-hts", False,
          (0.274, 0.0596)),
    Voice("flite_awb", "flite", "awb", "flite", True, (0.487, 0.0537)),
    Voice("flite_rms", "flite", "rms", "flite", False, (0.521, 0.0612)),
    Voice("flite_slt", "flite", "slt", "flite", True, (0.536, 0.052)),
    Voice("flite_kal16", "flite", "kal16", "flite", True, (0.509, 0.0485)),
    # espeak-ng: accents x voice variants (``+m3`` etc.); pitch by speed perturbation
    Voice("espeak_en-us+m3", "espeak", "en-us+m3", "espeak-ng", False, (0.066, 0.0523)),
    Voice("espeak_en+f3", "espeak", "en+f3", "espeak-ng", False, (0.14, 0.0512)),  # British English (gmw/en)
    Voice("espeak_en-gb-scotland+m1", "espeak", "en-gb-scotland+m1", "espeak-ng", False, (0.027, 0.0515)),
    Voice("espeak_en-029+f2", "espeak", "en-029+f2", "espeak-ng", False, (0.169, 0.0521)),
)}

#: Whole voices held out for the ``test`` split (one per engine).
DEFAULT_TEST_VOICES: tuple[str, ...] = ("festival_ked_diphone", "flite_rms", "espeak_en-gb-scotland+m1")


def register(voice: Voice) -> None:
    VOICES[voice.name] = voice


def get_voices(names=None) -> list[Voice]:
    """Voice objects for ``names`` (default: all known voices), in the order given."""
    if names is None:
        return list(VOICES.values())
    if isinstance(names, str):
        names = [n.strip() for n in names.split(",") if n.strip()]
    out = []
    for n in names:
        if n not in VOICES:
            raise SynthError(f"unknown voice {n!r}; available voices: {', '.join(VOICES)}")
        if VOICES[n] not in out:
            out.append(VOICES[n])
    if not out:
        raise SynthError("no voices selected")
    return out


def check_voices(voices: list[Voice]) -> None:
    """Raise :class:`MissingPackageError` naming the Debian package to install for anything missing."""
    problems = []
    for v in voices:
        if v.engine == "festival":
            if shutil.which("festival") is None:
                problems.append("program 'festival' not found (apt-get install festival)")
            elif not Path(_FESTIVAL_VOICE_DIRS[v.engine_voice]).is_dir():
                problems.append(f"Festival voice {v.engine_voice} not found (apt-get install {v.package})")
        elif v.engine == "flite":
            if shutil.which("flite") is None:
                problems.append("program 'flite' not found (apt-get install flite)")
        elif v.engine == "espeak":
            from .espeak import check_espeak
            try:
                check_espeak()
            except MissingPackageError as e:
                problems.append(str(e))
    if problems:
        raise MissingPackageError("cannot synthesize the default corpus: " + "; ".join(sorted(set(problems))))


def cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover
        return os.cpu_count() or 1
