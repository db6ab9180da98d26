"""``toposcope synth``: synthesize the embedded default corpus (README; docs/usage.md)."""

from __future__ import annotations

from ..validation import count_arg, positive_arg

HELP = "synthesize the embedded default corpus (Festival/Flite/espeak-ng voices, exact phone timings)"
DESCRIPTION = (
    "Synthesize a phone-aligned speech corpus locally from Debian packages (festival, flite, espeak-ng, "
    "fortunes): 16 kHz WAV + manifest.jsonl (the native corpus format). Whole voices are held out for the test "
    "split, unseen sentences for valid. Deterministic for a seed; re-running resumes. All or nothing: "
    "the corpus is built in .OUT.partial beside OUT and renamed when complete."
)


def add_arguments(parser) -> None:
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--utterances", type=count_arg(3), default=None, metavar="N", help="number of utterances")
    size.add_argument("--hours", type=positive_arg, default=None, metavar="H",
                      help="approximate hours of audio (default: 1 when neither is given)")
    parser.add_argument("--out", metavar="DIR", help="corpus directory to write (required unless --list-voices)")
    parser.add_argument("--seed", type=count_arg(0), default=0, help="random seed (default 0)")
    parser.add_argument("--jobs", type=count_arg(1), default=None, metavar="J", help="parallel jobs (default: all cores)")
    parser.add_argument("--force", action="store_true",
                        help="replace OUT when it is a non-empty folder that is not a synthesized corpus")
    parser.add_argument("--voices", default=None, metavar="V1,V2",
                        help="comma-separated voice names or sets: 'default' (the default corpus's 106 voices, "
                             "used when not given), 'extra' (26 opt-in voices from Debian contrib/non-free, "
                             "train/valid only), e.g. 'default,extra'; see --list-voices")
    parser.add_argument("--list-voices", action="store_true", help="list the voices and exit")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args) -> int:
    from ..synth import DEFAULT_TEST_VOICES, VOICES, SynthError, synthesize, voices_by_split

    if args.list_voices:
        _list_voices()
        return 0
    if not args.out:
        raise SynthError("--out DIR is required (the corpus directory to write)")
    corpus = synthesize(args.out, utterances=args.utterances, hours=args.hours, seed=args.seed,
                        jobs=args.jobs, voices=args.voices, progress=not args.no_progress, force=args.force)
    s, voices = corpus.summary(), voices_by_split(corpus)
    print(f"wrote {corpus.root}: {s['utterances']} utterances, {s['hours']:.3f} h, "
          f"{len(voices['all'])} voices, {len(s['speakers'])} speakers")
    for name, sp in s["splits"].items():
        print(f"  {name:5s} {sp['utterances']:6d} utterances  {sp['hours']:7.3f} h  "
              f"{len(sp['speakers']):3d} speakers  voices: {', '.join(voices[name])}")
    return 0


def _list_voices() -> None:
    """Every voice (engine, the engine's name for it, Debian package, test or train), the opt-in voices,
    then what is left out."""
    from ..synth.voices import (DEFAULT_TEST_VOICES, ESPEAK_EXCLUDED, EXTRA_VOICES, OTHER_EXCLUDED, VOICES,
                                MissingPackageError, check_voices)

    width = max(len(n) for n in (*VOICES, *EXTRA_VOICES)) + 2
    for v in VOICES.values():
        held = "  (held out for test)" if v.name in DEFAULT_TEST_VOICES else ""
        print(f"{v.name:{width}s} engine={v.engine:8s} voice={v.engine_voice!r:28s} package={v.package}{held}")
    n_test = sum(v in VOICES for v in DEFAULT_TEST_VOICES)
    print(f"{len(VOICES)} voices (the set 'default'): {len(VOICES) - n_test} train/valid, {n_test} test; "
          "each voice x 3 rates x 3 pitches = 9 speakers")
    print("opt-in voices (the set 'extra', train/valid only; Debian contrib, and non-free for the MBROLA data; "
          "--voices default,extra):")
    for v in EXTRA_VOICES.values():
        try:
            check_voices([v])
            state = "installed"
        except MissingPackageError:
            state = "not installed"
        print(f"{v.name:{width}s} engine={v.engine:8s} voice={v.engine_voice!r:28s} package={v.package}  ({state})")
    print("not used:")
    for name, why in {**{f"espeak-ng {k}": w for k, w in ESPEAK_EXCLUDED.items()}, **OTHER_EXCLUDED}.items():
        print(f"  {name}: {why}")
