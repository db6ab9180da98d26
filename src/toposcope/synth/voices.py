"""Voices of the embedded default corpus and their rate/pitch speaker variants (docs/method.md § Data and phones).

Voices (106; ``toposcope synth --list-voices`` prints them with their engine and package):

* Festival (every English voice Debian ships; festvox-kallpc8k/kdlpc8k are the same two diphone
  speakers at 8 kHz): ``kal_diphone``, ``ked_diphone``, ``cmu_us_slt_arctic_hts``;
* Flite (every voice built into Debian's ``flite`` but ``awb_time``): ``awb``, ``rms``, ``slt``,
  ``kal16``;
* espeak-ng: the eight English accents of :data:`ESPEAK_ACCENTS` alone (``espeak_en-us``, ...),
  and the 91 voice variants of :data:`ESPEAK_VARIANTS` (every variant of espeak-ng 1.51 but the
  ten of :data:`ESPEAK_EXCLUDED`), each spoken in one accent (:func:`espeak_pairs`: 11 or 12
  variants per accent), e.g. ``espeak_en-us+m3``. The variants change the formants (``formant``
  lines: frequency, strength, width), the pitch range, voicing, breathiness, tone and the
  synthesizer (``klatt``), so espeak-ng's formant variation comes with them. espeak-ng's MBROLA
  voices (``mb/*``) are left out (:data:`ESPEAK_EXCLUDED`).

Opt-in (:data:`EXTRA_VOICES`, the set ``"extra"``; never in the default corpus): 26 voices from Debian's
``contrib`` and ``non-free`` components, which a stock Debian does not enable (so the default corpus
cannot depend on them; ``make extra-voices`` enables them and installs the packages):

* six more English Festival voices: ``rab_diphone`` (British male), ``don_diphone`` (British male,
  10 kHz), ``us1_mbrola`` (American female), ``us2_mbrola``, ``us3_mbrola`` (American males),
  ``en1_mbrola`` (British male); the last four on MBROLA diphone databases;
* the twenty espeak-ng voices that speak English through an MBROLA database
  (:data:`ESPEAK_MBROLA_ENGLISH`): the four English speakers again, with espeak-ng's phonemes and
  timing, and fifteen speakers of Afrikaans, German (six), French (two), Greek, Hungarian, Dutch,
  Polish, Romanian and Swedish (two) whose recorded diphones speak English with their accent.

``synthesize(voices="default,extra")`` adds them to train/valid; none is held out, so the test split
stays the default corpus's, utterance for utterance (docs/benchmarks/training.md, round 5, measures
what they change).

Held out for the ``test`` split (:data:`DEFAULT_TEST_VOICES`; no train or valid utterance uses
them): Festival ``ked_diphone``, Flite ``rms``, and the whole ``en-gb-scotland`` accent
(:data:`ESPEAK_TEST_ACCENTS`): the accent alone and its 12 variants (anikaRobot, boris, edward2,
gustave, john, linda, m1, Mario, norbert, robosoft3, steph3, zac), so a test speaker's accent and
variant are both unseen (a few variant files are near relatives of each other, e.g. steph/steph2 in
train and steph3 in test, edward in train and edward2 in test; their accents differ). 15 test
voices, 91 train/valid voices.

Every ``(voice, rate, pitch)`` combination is one ``speaker`` of the corpus. ``rate`` is a speed
factor (> 1 speaks faster), ``pitch`` a factor on F0. Where an engine can change F0 natively
(Festival diphone voices through ``int_lr_params``, Flite awb/slt/kal16 through ``f0_shift``)
it does; for voices without pitch control (Festival ``cmu_us_slt_arctic_hts``, Flite ``rms``,
espeak-ng, whose pitch parameter is not a factor on F0) the pitch variant is a speed perturbation
of the waveform (resampling by ``1/pitch``: F0 and formants scale by ``pitch``, every time scales
by ``1/pitch`` exactly, so the labels stay exact). Festival and Flite have no formant control.
"""

from __future__ import annotations

import difflib
import shutil
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "SynthError", "MissingPackageError", "Voice", "Speaker", "VOICES", "DEFAULT_TEST_VOICES",
    "RATES", "PITCHES", "get_voices", "check_voices", "EXTRA_VOICES", "VOICE_SETS", "ESPEAK_MBROLA_ENGLISH",
    "ESPEAK_ACCENTS", "ESPEAK_TEST_ACCENTS", "ESPEAK_VARIANTS", "ESPEAK_EXCLUDED", "OTHER_EXCLUDED",
    "espeak_pairs",
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
    #: the phone set of the engine's labels: "radio" (US ARPAbet-like), "mrpa" (Festival's British set)
    #: or "espeak"; it picks the mapping onto the canonical phones (:mod:`toposcope.phones`)
    phoneset: str = "radio"
    #: the share group of the corpus plan (each group speaks an equal share of every split); ``None``:
    #: the engine. espeak-ng's MBROLA voices form their own group, "espeak-mbrola", so their recorded
    #: speakers are not drowned among espeak-ng's 99 formant voices.
    group: str | None = None

    @property
    def share_group(self) -> str:
        return self.group or self.engine

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
}  # + the opt-in Festival voices (after EXTRA_VOICES)

#: espeak-ng's English accents (the ``gmw`` language voices; ``en`` is gmw/en, British English).
ESPEAK_ACCENTS: tuple[str, ...] = ("en-us", "en", "en-gb-scotland", "en-gb-x-gbclan", "en-gb-x-rp",
                                   "en-gb-x-gbcwmd", "en-029", "en-us-nyc")
#: Accents held out whole for the ``test`` split (with every variant paired with them).
ESPEAK_TEST_ACCENTS: tuple[str, ...] = ("en-gb-scotland",)
#: espeak-ng voice variants used (files in ``espeak-ng-data/voices/!v``, sorted case-insensitively):
#: every variant of espeak-ng 1.51 except :data:`ESPEAK_EXCLUDED`.
ESPEAK_VARIANTS: tuple[str, ...] = (
    "adam", "Alex", "Alicia", "Andrea", "Andy", "anika", "anikaRobot", "Annie", "announcer", "antonio",
    "AnxiousAndy", "aunty", "belinda", "benjamin", "boris", "croak", "david", "Demonic", "Denis", "Diogo",
    "ed", "edward", "edward2", "f1", "f2", "f3", "f4", "f5", "Gene", "Gene2", "grandma", "grandpa", "gustave",
    "Henrique", "Hugo", "iven", "iven2", "iven3", "iven4", "Jacky", "john", "kaukovalta", "klatt", "klatt2",
    "klatt3", "klatt4", "klatt5", "Lee", "linda", "m1", "m2", "m3", "m4", "m5", "m6", "m7", "m8", "marcelo",
    "Mario", "max", "Michael", "michel", "miguel", "Mike", "Mr serious", "Nguyen", "norbert", "pablo", "paul",
    "pedro", "quincy", "rob", "robert", "robosoft2", "robosoft3", "robosoft4", "robosoft5", "robosoft7",
    "sandro", "shelby", "steph", "steph2", "steph3", "Storm", "travis", "Tweaky", "UniRobot", "victor",
    "whisper", "whisperf", "zac",
)
_STRONG_ECHO = ("strong late echo ({} ms later, amplitude {} of espeak-ng's maximum 100): the delayed copy rings "
                "into the following phones and pauses, so the labels no longer delimit the sound (vowel/pause "
                "RMS ratio {} on 40 sentences; kept variants: median 380)")
#: espeak-ng voices and variants not used, with the reason (checked on espeak-ng 1.51). Every other
#: variant synthesizes every sentence tried, with all phonemes mapped (the whisper variants included:
#: unvoiced, but with the phones where the labels say). Kept echo variants: weak echoes (amplitude
#: <= 50: Alicia, announcer, f2-f5, m2, pablo) or short ones (<= 10 ms: a robotic timbre whose tail,
#: two delays, stays within 20 ms of the phone: anikaRobot, Demonic, robosoft2-5/7, UniRobot; their
#: vowel/pause RMS ratios are 9-28).
ESPEAK_EXCLUDED: dict[str, str] = {
    "mb/* (other)": "espeak-ng's MBROLA voices that speak another language (mb-de1, mb-fr1, ...: German, French "
                    "phonemes, not English ones); its English-speaking MBROLA voices are opt-in "
                    "(ESPEAK_MBROLA_ENGLISH in EXTRA_VOICES)",
    "fast": "identical output to the accent without a variant (its only setting, fast_test2, acts above "
            "~450 words per minute; our rates stay below 210)",
    "caleb": "identical output to klatt (klatt 6 ignores its breath/voicing settings)",
    "klatt6": "identical output to klatt",
    "Marco": _STRONG_ECHO.format(50, 80, 19),
    "RicishayMax": _STRONG_ECHO.format(100, 100, 6.3),
    "RicishayMax2": _STRONG_ECHO.format(150, 100, 3.6),
    "RicishayMax3": _STRONG_ECHO.format(200, 100, 3.1),
    "robosoft": _STRONG_ECHO.format(30, 100, 9.2),
    "robosoft6": _STRONG_ECHO.format(40, 100, 8.2),
    "robosoft8": _STRONG_ECHO.format(40, 100, 11),
}
#: Flite and Festival voices not used, with the reason.
OTHER_EXCLUDED: dict[str, str] = {
    "flite awb_time": "a limited-domain voice (it only says the time of day: \"The time is now, a quarter past "
                      "three\"); other text comes out cut short (\"The quick brown fox jumps.\" -> /dh ax/)",
}
#: Variants whose accent is fixed (the espeak-ng voices of the 11-voice corpus keep their names).
_ESPEAK_PINNED = {"m3": "en-us", "f3": "en", "m1": "en-gb-scotland", "f2": "en-029"}


def espeak_pairs() -> dict[str, str]:
    """``{variant: accent}``: each variant of :data:`ESPEAK_VARIANTS` is spoken in exactly one accent.

    The pinned variants keep their accent; every other variant, in :data:`ESPEAK_VARIANTS` order, goes
    to the accent with the fewest variants so far (ties: :data:`ESPEAK_ACCENTS` order), so the accents
    get 11 or 12 variants each and the pairing depends only on the two lists.
    """
    counts = {a: 0 for a in ESPEAK_ACCENTS}
    for a in _ESPEAK_PINNED.values():
        counts[a] += 1
    out = {}
    for var in ESPEAK_VARIANTS:
        acc = _ESPEAK_PINNED.get(var)
        if acc is None:
            acc = min(ESPEAK_ACCENTS, key=counts.__getitem__)
            counts[acc] += 1
        out[var] = acc
    return out


#: ``seconds ~ a + b * characters`` at rate 1 for each accent without a variant (fitted on 200 sentences).
_ESPEAK_LENGTH: dict[str, tuple[float, float]] = {
    "en-us": (0.114, 0.0515), "en": (0.06, 0.0518), "en-gb-scotland": (0.061, 0.0503),
    "en-gb-x-gbclan": (0.061, 0.0522), "en-gb-x-rp": (0.062, 0.0516), "en-gb-x-gbcwmd": (0.063, 0.0526),
    "en-029": (0.067, 0.0523), "en-us-nyc": (0.098, 0.0508),
}
#: Variants that change the tempo (``stressLength``, ``speed``...): length over the accent's model on 40
#: sentences, where it differs from 1 by 4 % or more (the others are within 3 %).
_ESPEAK_TEMPO: dict[str, float] = {
    "Alicia": 1.14, "Andrea": 0.87, "Andy": 1.06, "anika": 0.85, "anikaRobot": 0.86, "antonio": 0.85,
    "AnxiousAndy": 1.23, "Demonic": 1.1, "Lee": 1.05, "m4": 1.06, "pedro": 0.85, "robosoft2": 0.87,
    "robosoft3": 0.88, "robosoft4": 0.85, "robosoft5": 0.86, "robosoft7": 0.85, "UniRobot": 0.83,
}


def _espeak_voice(accent: str, variant: str | None) -> "Voice":
    a, b = _ESPEAK_LENGTH[accent]
    f = _ESPEAK_TEMPO.get(variant, 1.0) if variant else 1.0
    if variant is None:
        return Voice(f"espeak_{accent}", "espeak", accent, "espeak-ng", False, (round(a * f, 3), round(b * f, 4)),
                     "espeak")
    return Voice(f"espeak_{accent}+{variant.replace(' ', '_')}", "espeak", f"{accent}+{variant}", "espeak-ng",
                 False, (round(a * f, 3), round(b * f, 4)), "espeak")


VOICES: dict[str, Voice] = {v.name: v for v in (
    Voice("festival_kal_diphone", "festival", "kal_diphone", "festvox-kallpc16k", True, (0.76, 0.0601)),
    Voice("festival_ked_diphone", "festival", "ked_diphone", "festvox-kdlpc16k", True, (0.842, 0.0565)),
    Voice("festival_cmu_us_slt_arctic_hts", "festival", "cmu_us_slt_arctic_hts", "festvox-us-slt-hts", False,
          (0.274, 0.0596)),
    Voice("flite_awb", "flite", "awb", "flite", True, (0.487, 0.0537)),
    Voice("flite_rms", "flite", "rms", "flite", False, (0.521, 0.0612)),
    Voice("flite_slt", "flite", "slt", "flite", True, (0.536, 0.052)),
    Voice("flite_kal16", "flite", "kal16", "flite", True, (0.509, 0.0485)),
    # espeak-ng: each accent alone, then each variant in its accent (pitch by speed perturbation)
    *(_espeak_voice(a, None) for a in ESPEAK_ACCENTS),
    *(_espeak_voice(a, var) for var, a in espeak_pairs().items()),
)}

#: Whole voices held out for the ``test`` split: Festival ked_diphone, Flite rms and every espeak-ng
#: voice of the :data:`ESPEAK_TEST_ACCENTS` (the accent alone and its variants, none of them in train).
DEFAULT_TEST_VOICES: tuple[str, ...] = (
    "festival_ked_diphone", "flite_rms",
    *(v.name for v in VOICES.values()
      if v.engine == "espeak" and v.engine_voice.partition("+")[0] in ESPEAK_TEST_ACCENTS),
)


#: Debian's ``contrib`` and ``non-free`` components (not enabled on a stock Debian machine).
EXTRA_COMPONENTS_HINT = ("`make extra-voices` in a toposcope checkout does it all; by hand, add 'contrib non-free' "
                         "to the Components of /etc/apt/sources.list.d/debian.sources, apt-get update, then "
                         "apt-get install")

#: espeak-ng's voices that speak English through an MBROLA diphone database (``voices/mb``): the four
#: English speakers, then fifteen speakers of other languages whose ``-en`` voice maps English phonemes
#: onto their own language's diphones (English with that accent). espeak-ng's phonemes and timings, the
#: speaker's recorded diphones; data from Debian non-free (``mbrola-us1``, ...).
ESPEAK_MBROLA_ENGLISH: tuple[str, ...] = (
    "mb-us1", "mb-us2", "mb-us3", "mb-en1", "mb-af1-en", "mb-de1-en", "mb-de2-en", "mb-de3-en", "mb-de4-en",
    "mb-de5-en", "mb-de6-en", "mb-fr1-en", "mb-fr4-en", "mb-gr2-en", "mb-hu1-en", "mb-nl2-en", "mb-pl1-en",
    "mb-ro1-en", "mb-sw1-en", "mb-sw2-en",
)
MBROLA_DIR = Path("/usr/share/mbrola")

#: Opt-in English voices (the set ``"extra"``; module docstring): six Festival voices from Debian's ``contrib``
#: (festvox-us1/us2/us3/en1 read MBROLA diphone databases from ``non-free``), then espeak-ng's English MBROLA
#: voices (:data:`ESPEAK_MBROLA_ENGLISH`), a share group of their own in the corpus plan. Never in the
#: default corpus, whose plan must not depend on what a machine has installed; ``synthesize(voices=
#: "default,extra")`` adds them to train/valid (none is held out, so the ``test`` split keeps its default
#: voices). The Festival ones take Festival's LR intonation model, so their pitch variants are native,
#: like kal's; ``rab``/``don``/``en1`` speak British English in the ``mrpa`` phone set; ``don_diphone`` is
#: a 10 kHz voice (nothing above 5 kHz). Length models: fitted on 40 sentences per Festival voice and on
#: the 80 MBROLA utterances of a 2 h corpus (one model for the twenty).
EXTRA_VOICES: dict[str, Voice] = {v.name: v for v in (
    Voice("festival_rab_diphone", "festival", "rab_diphone", "festvox-rablpc16k", True, (0.549, 0.0576), "mrpa"),
    Voice("festival_don_diphone", "festival", "don_diphone", "festvox-don", True, (0.488, 0.0573), "mrpa"),
    Voice("festival_us1_mbrola", "festival", "us1_mbrola", "festvox-us1", True, (0.594, 0.0617)),
    Voice("festival_us2_mbrola", "festival", "us2_mbrola", "festvox-us2", True, (0.573, 0.0599)),
    Voice("festival_us3_mbrola", "festival", "us3_mbrola", "festvox-us3", True, (0.61, 0.0526)),
    Voice("festival_en1_mbrola", "festival", "en1_mbrola", "festvox-en1", True, (0.672, 0.0492), "mrpa"),
    *(Voice(f"espeak_{ev}", "espeak", ev, f"mbrola-{ev.split('-')[1]}", False, (-0.028, 0.0444), "espeak",
            "espeak-mbrola") for ev in ESPEAK_MBROLA_ENGLISH),
)}
_FESTIVAL_VOICE_DIRS.update({v.engine_voice: f"/usr/share/festival/voices/english/{v.engine_voice}"
                             for v in EXTRA_VOICES.values() if v.engine == "festival"})
#: Names that stand for a set of voices in ``get_voices``.
VOICE_SETS: dict[str, tuple[str, ...]] = {"default": tuple(VOICES), "extra": tuple(EXTRA_VOICES)}


def register(voice: Voice) -> None:
    VOICES[voice.name] = voice


def get_voices(names=None) -> list[Voice]:
    """Voice objects for ``names`` (default: the default corpus's voices, :data:`VOICES`), in the order given.

    ``names`` is a list or a comma-separated string of voice names from :data:`VOICES` or
    :data:`EXTRA_VOICES`, or of the set names of :data:`VOICE_SETS` (``"default,extra"``: every voice).
    """
    if names is None:
        return list(VOICES.values())
    if isinstance(names, str):
        names = [n.strip() for n in names.split(",") if n.strip()]
    known = {**VOICES, **EXTRA_VOICES}
    out = []
    for n in names:
        if n in VOICE_SETS:
            picked = [known[m] for m in VOICE_SETS[n]]
        elif n in known:
            picked = [known[n]]
        else:
            close = difflib.get_close_matches(n, [*VOICE_SETS, *known], n=3, cutoff=0.6)
            raise SynthError(f"unknown voice {n!r}" + (f" (did you mean {', '.join(close)}?)" if close else "")
                             + f"; the sets are {', '.join(VOICE_SETS)}, and `toposcope synth --list-voices` "
                             f"lists the {len(known)} voices")
        out += [v for v in picked if v not in out]
    if not out:
        raise SynthError("no voices selected")
    return out


def check_voices(voices: list[Voice]) -> None:
    """Raise :class:`MissingPackageError` naming the Debian package to install for anything missing
    (for the opt-in voices, once, how to enable the components that hold them)."""
    problems, extra = [], set()
    for v in voices:
        if v.engine == "festival":
            if shutil.which("festival") is None:
                problems.append("program 'festival' not found (apt-get install festival)")
            elif not Path(_FESTIVAL_VOICE_DIRS[v.engine_voice]).is_dir():
                if v.name in EXTRA_VOICES:
                    problems.append(f"Festival voice {v.engine_voice} not found (package {v.package})")
                    extra.add(v.package)
                else:
                    problems.append(f"Festival voice {v.engine_voice} not found (apt-get install {v.package})")
            elif v.engine_voice.endswith("_mbrola") and shutil.which("mbrola") is None:
                problems.append("program 'mbrola' not found (package mbrola)")
                extra.add("mbrola")
        elif v.engine == "flite":
            if shutil.which("flite") is None:
                problems.append("program 'flite' not found (apt-get install flite)")
    mbrola = [v for v in voices if v.engine == "espeak" and v.engine_voice.startswith("mb-")]
    for v in mbrola:
        db = v.engine_voice.split("-")[1]
        if not (MBROLA_DIR / db / db).is_file():
            problems.append(f"MBROLA database {db} not found in {MBROLA_DIR} (package {v.package})")
            extra.add(v.package)
        elif shutil.which("mbrola") is None:
            problems.append("program 'mbrola' not found (package mbrola)")
            extra.add("mbrola")
    espeak = [v.engine_voice for v in voices if v.engine == "espeak" and v not in mbrola]
    if espeak:
        from .espeak import check_espeak
        try:
            check_espeak(espeak)
        except MissingPackageError as e:
            problems.append(str(e))
    if problems:
        msg = "cannot synthesize the corpus: " + "; ".join(sorted(set(problems)))
        if extra:
            msg += f". The opt-in voices need Debian's contrib and non-free components: {EXTRA_COMPONENTS_HINT} " \
                   + " ".join(sorted(extra))
        raise MissingPackageError(msg)


