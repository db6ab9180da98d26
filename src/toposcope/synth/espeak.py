"""espeak-ng back end: phone timings from the library's phoneme events (docs/method.md § Data and phones).

The espeak-ng C library (``libespeak-ng.so.1``, Debian package ``espeak-ng`` /
``libespeak-ng1``) is driven through ``ctypes`` in a worker process (one per batch: the
library is not thread-safe and keeps global state). The worker initialises the library once
and forks a child for every utterance, so each utterance is synthesized from the same fresh
state (the library's noise generator, flutter and echo otherwise carry over from one utterance
to the next, and an utterance's samples and phoneme times would depend on its batch). It is
initialised with ``espeakINITIALIZE_PHONEME_EVENTS``; the synth callback receives the audio
and, for every phoneme, an ``espeakEVENT_PHONEME`` event with the phoneme mnemonic
(``id.string``) and its start ``sample`` in the output. A phoneme ends where the next one
starts, the last one at the end of the audio.

Rate: ``espeakRATE = 175 wpm x rate``. Pitch: speed perturbation of the waveform (see
:mod:`.voices`), because espeak's pitch parameter (0-100) is not a factor on F0.

:data:`ESPEAK_TO_ARPABET` maps the English phoneme mnemonics of espeak-ng 1.51 (the eight
accents of :data:`.voices.ESPEAK_ACCENTS`: ``en``, ``en-us``, ``en-us-nyc``, ``en-gb-scotland``,
``en-gb-x-gbclan``, ``en-gb-x-rp``, ``en-gb-x-gbcwmd``, ``en-029``; every mnemonic they produce on
the whole sentence list is in the table; variants change the voice, not the phonemes) to the
canonical inventory (docs/method.md § Data and phones). Documented choices: reduced vowels
``@ @- @2 @5 a# V`` -> ``ah``; r-coloured ``3 3: VR IR`` -> ``er``; the US flap ``t#`` -> ``d``
(as TIMIT ``dx``); syllabic ``@L`` -> ``l`` and ``n-`` -> ``n`` (as TIMIT ``el``, ``en``);
centring diphthongs keep their first part (``i@`` -> ``iy``, ``e@`` -> ``eh``, ``U@`` -> ``uh``,
``A@`` -> ``aa``, ``O@ o@`` -> ``ao``, ``aI@`` -> ``ay``); the linking glide ``;`` -> ``y``; the
glottal stop ``?`` is merged into the preceding segment (as TIMIT ``q``); pauses ``_ _: _! _|``
-> ``sil``. An unmapped mnemonic is an error (the utterance is skipped and reported), never
silently relabelled.
"""

from __future__ import annotations

import ctypes
import functools
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from .voices import MissingPackageError, Speaker, SynthError

__all__ = ["ESPEAK_TO_ARPABET", "ESPEAK_LIBRARY", "check_espeak", "run_espeak_batch", "map_espeak"]

ESPEAK_LIBRARY = "libespeak-ng.so.1"
BASE_WPM = 175

ESPEAK_TO_ARPABET: dict[str, str | None] = {
    # vowels
    "0": "aa", "A:": "aa", "A@": "aa", "A": "aa", "aa": "ae", "a": "ae", "a#": "ah",
    "@": "ah", "@-": "ah", "@2": "ah", "@5": "ah", "V": "ah",
    "3": "er", "3:": "er", "VR": "er", "IR": "er", "@r": "er",
    "E": "eh", "e": "eh", "e@": "eh", "eI": "ey",
    "I": "ih", "I#": "ih", "I2": "ih", "i": "iy", "i:": "iy", "i@": "iy", "i@3": "iy",
    "O": "ao", "O:": "ao", "O2": "ao", "O@": "ao", "o@": "ao", "OI": "oy",
    "oU": "ow", "oU#": "ow", "o:": "ow", "U": "uh", "U@": "uh", "u:": "uw", "u": "uw",
    "aI": "ay", "aI2": "ay", "aI3": "ay", "aI@": "ay", "aU": "aw", "aU@": "aw",
    # consonants
    "b": "b", "d": "d", "f": "f", "g": "g", "h": "hh", "k": "k", "l": "l", "m": "m", "n": "n",
    "p": "p", "r": "r", "r-": "r", "s": "s", "t": "t", "t2": "t", "t[": "t", "v": "v", "w": "w",
    "w#": "w", "z": "z", "D": "dh", "T": "th", "S": "sh", "Z": "zh", "N": "ng", "j": "y",
    "tS": "ch", "dZ": "jh", "t#": "d", "@L": "l", "l/": "l", "n-": "n", "m-": "m", "x": "k",
    ";": "y", "?": None,
    # pauses
    "_": "sil", "_:": "sil", "_!": "sil", "_|": "sil",
}


def map_espeak(label: str) -> str | None:
    try:
        return ESPEAK_TO_ARPABET[label]
    except KeyError:
        raise SynthError(f"espeak-ng phoneme {label!r} has no ARPAbet mapping in ESPEAK_TO_ARPABET") from None


def check_espeak(engine_voices=()) -> None:
    """Raise :class:`MissingPackageError` when the library, its data or a voice of ``engine_voices``
    (``accent`` or ``accent+variant``, as in :attr:`.voices.Voice.engine_voice`) is not installed.

    espeak-ng silently ignores an unknown variant (the accent alone would speak under the variant's
    name), so every variant file is checked here.
    """
    data = _data_dir()
    missing = []
    for ev in engine_voices:
        accent, _, variant = ev.partition("+")
        if accent.casefold() not in _accent_files(data):
            missing.append(f"espeak-ng voice {accent!r}")
        if variant and not (Path(data) / "voices" / "!v" / variant).is_file():
            missing.append(f"espeak-ng variant {variant!r}")
    if missing:
        raise MissingPackageError(f"{', '.join(sorted(set(missing)))} not found in {data} "
                                  "(apt-get install espeak-ng-data)")


@functools.lru_cache(maxsize=1)
def _data_dir() -> str:
    """The espeak-ng data folder (the library is initialised in this process only to ask for it)."""
    try:
        lib = ctypes.CDLL(ESPEAK_LIBRARY)
    except OSError:
        raise MissingPackageError(f"espeak-ng library {ESPEAK_LIBRARY} not found (apt-get install espeak-ng)") from None
    if lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, None, _INIT_DONT_EXIT) <= 0:
        raise MissingPackageError("espeak-ng cannot initialise: espeak-ng-data missing? "
                                  "(apt-get install espeak-ng-data)")
    path = ctypes.c_char_p()
    lib.espeak_Info.restype = ctypes.c_char_p
    lib.espeak_Info(ctypes.byref(path))
    return (path.value or b"").decode("utf-8", "replace")


@functools.lru_cache(maxsize=4)
def _accent_files(data: str) -> frozenset[str]:
    return frozenset(f.name.casefold() for f in (Path(data) / "lang").rglob("*") if f.is_file())


def run_espeak_batch(items: list[tuple[Speaker, str, Path]], workdir: Path) -> dict[Path, dict]:
    """Synthesize ``(speaker, sentence, stem)`` items in one worker process.

    Returns ``{stem: {"wav": path, "segs": [(end_s, espeak mnemonic)], "words": None}}``;
    the labels are espeak mnemonics (mapped later with :func:`map_espeak`).
    """
    workdir.mkdir(parents=True, exist_ok=True)
    jobs = [{"voice": s.voice.engine_voice, "wpm": int(round(BASE_WPM * s.rate)), "text": t, "stem": str(stem)}
            for s, t, stem in items]
    jobfile = workdir / f"espeak-{Path(items[0][2]).name}.json"
    jobfile.write_text(json.dumps(jobs), encoding="utf-8")
    proc = subprocess.run([sys.executable, "-c", "import sys; from toposcope.synth.espeak import _worker; "
                           "sys.exit(_worker(sys.argv[1]))", str(jobfile)],
                          capture_output=True, text=True, errors="replace")
    results = {}
    for _, _, stem in items:
        side = Path(str(stem) + ".pho.json")
        wav = Path(str(stem) + ".wav")
        if side.exists() and wav.exists():
            data = json.loads(side.read_text())
            segs = [(float(e), str(lab)) for e, lab in data["segs"]]
            side.unlink()
            # no words: espeak-ng's word events merge and drop short function words
            results[Path(stem)] = {"wav": wav, "segs": segs, "words": None}
    if not results and items:
        raise SynthError(f"espeak-ng worker failed on every utterance of {jobfile} (exit {proc.returncode}): "
                         f"{proc.stderr.strip()[-500:]}")
    jobfile.unlink(missing_ok=True)
    return results


# ----------------------------------------------------------------------------- worker process

class _ID(ctypes.Union):
    _fields_ = [("number", ctypes.c_int), ("name", ctypes.c_char_p), ("string", ctypes.c_char * 8)]


class _Event(ctypes.Structure):
    _fields_ = [("type", ctypes.c_int), ("unique_identifier", ctypes.c_uint), ("text_position", ctypes.c_int),
                ("length", ctypes.c_int), ("audio_position", ctypes.c_int), ("sample", ctypes.c_int),
                ("user_data", ctypes.c_void_p), ("id", _ID)]


_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event))
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INIT_PHONEME_EVENTS, _INIT_DONT_EXIT = 0x0001, 0x8000
_EVENT_LIST_TERMINATED, _EVENT_PHONEME = 0, 7
_POS_CHARACTER, _PARAM_RATE = 1, 1


def _worker(jobfile: str) -> int:
    import soundfile as sf

    lib = ctypes.CDLL(ESPEAK_LIBRARY)
    sr = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, None, _INIT_PHONEME_EVENTS | _INIT_DONT_EXIT)
    if sr <= 0:
        print(f"espeak_Initialize failed ({sr}): espeak-ng-data missing? (apt-get install espeak-ng-data)",
              file=sys.stderr)
        return 2
    chunks: list[np.ndarray] = []
    phones: list[tuple[int, str]] = []

    def callback(wav, n, ev):
        if n > 0:
            chunks.append(np.ctypeslib.as_array(wav, (n,)).copy())
        i = 0
        while ev[i].type != _EVENT_LIST_TERMINATED:
            if ev[i].type == _EVENT_PHONEME:
                phones.append((int(ev[i].sample), ev[i].id.string.decode("ascii", "replace")))
            i += 1
        return 0

    cb = _CALLBACK(callback)
    lib.espeak_SetSynthCallback(cb)
    status = 0
    for job in json.loads(Path(jobfile).read_text(encoding="utf-8")):
        # One forked child per utterance: the library keeps state from one utterance to the next (its
        # noise generator, flutter and echo), so the same job gave different samples (and phoneme
        # times) depending on what the worker synthesized before it. A child starts from the
        # initialised, never-used library every time: the output depends on the job alone.
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                code = _synth_one(lib, job, chunks, phones, sr, sf)
            except BaseException:
                import traceback
                traceback.print_exc()
            finally:
                sys.stderr.flush()
                os._exit(code)
        _, wstatus = os.waitpid(pid, 0)
        if not (os.WIFEXITED(wstatus) and os.WEXITSTATUS(wstatus) == 0):
            status = 1
    return status


def _synth_one(lib, job: dict, chunks: list, phones: list, sr: int, sf) -> int:
    if lib.espeak_SetVoiceByName(job["voice"].encode()) != 0:
        print(f"espeak-ng: unknown voice {job['voice']!r}", file=sys.stderr)
        return 1
    # an MBROLA voice synthesizes at its diphone database's rate (16 kHz for most), not at the rate
    # espeak_Initialize returned (22050 Hz, espeak-ng's own voices)
    if hasattr(lib, "espeak_ng_GetSampleRate"):
        sr = int(lib.espeak_ng_GetSampleRate())
    lib.espeak_SetParameter(_PARAM_RATE, int(job["wpm"]), 0)
    text = job["text"].encode("utf-8")
    lib.espeak_Synth(text, len(text) + 1, 0, _POS_CHARACTER, 0, 0, None, None)
    lib.espeak_Synchronize()
    if not chunks or not phones:
        print(f"espeak-ng produced no audio/phonemes for {job['text']!r}", file=sys.stderr)
        return 1
    wave = np.concatenate(chunks)
    n = len(wave)
    starts = sorted(phones, key=lambda x: x[0])  # stable: keeps espeak's order on ties
    segs = []
    for k, (s, lab) in enumerate(starts):
        e = starts[k + 1][0] if k + 1 < len(starts) else n
        segs.append([min(e, n) / sr, lab])
    if starts[0][0] > 0:  # audio before the first phoneme: silence
        segs.insert(0, [starts[0][0] / sr, "_"])
    sf.write(job["stem"] + ".wav", wave, sr, subtype="PCM_16", format="WAV")
    Path(job["stem"] + ".pho.json").write_text(json.dumps({"segs": segs}))
    return 0
