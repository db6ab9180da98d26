"""Generate ``docs/bad-inputs.md``: every bad input tried on toposcope and what the user sees (issue 15).

Each case builds its bad input in a fresh temporary folder, runs the real command in-process
(``toposcope.cli.main``), and records the exit status, the message printed, and what is left on disk.
The table is therefore true for the code it was generated from; regenerate it after changing messages:

    .venv/bin/python scripts/bad_inputs.py            # writes docs/bad-inputs.md
    .venv/bin/python scripts/bad_inputs.py --check    # exit 1 when the file is out of date or a case crashed

A case "crashes" when the command raises anything other than a clean error (a traceback); the script
then exits 1. Paths are shown relative to the case's temporary folder (``$TMP``).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import struct
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("TOPOSCOPE_NO_PROGRESS", "1")

import numpy as np  # noqa: E402
import soundfile as sf  # noqa: E402

from toposcope.audio import write_wav  # noqa: E402
from toposcope.cli import main  # noqa: E402
from toposcope.corpus import Corpus, Utterance, write_manifest  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "bad-inputs.md"
SR = 16000
CASES = []


def case(group: str, what: str):
    def deco(fn):
        CASES.append((group, what, fn))
        return fn
    return deco


# ------------------------------------------------------------------------------------------ builders
def tone(seconds, sr=SR):
    return (0.2 * np.sin(np.arange(int(seconds * sr)) / 5)).astype(np.float32)


def corpus(t: Path, n=2, **line) -> Path:
    """A good 2-utterance corpus; ``line`` overrides fields of the LAST manifest line (None removes)."""
    root = t / "corpus"
    utts = []
    for i in range(n):
        write_wav(root / "audio" / f"u{i}.wav", tone(1.0))
        utts.append(Utterance(id=f"u{i}", audio=f"audio/u{i}.wav", speaker="s", text="a b", duration=1.0,
                              phones=[(0.0, 0.4, "sil"), (0.4, 1.0, "aa")], split="train"))
    write_manifest(root / "manifest.jsonl", utts)
    if line:
        lines = (root / "manifest.jsonl").read_text().splitlines()
        d = json.loads(lines[-1])
        for k, v in line.items():
            if v is None:
                d.pop(k, None)
            else:
                d[k] = v
        lines[-1] = json.dumps(d, allow_nan=True)
        (root / "manifest.jsonl").write_text("\n".join(lines) + "\n")
    return root


def set_last_line(root: Path, raw: bytes):
    lines = (root / "manifest.jsonl").read_bytes().splitlines()
    (root / "manifest.jsonl").write_bytes(b"\n".join(lines[:-1] + [raw]) + b"\n")


def patch(path: Path, offset: int, fmt: str, value):
    b = bytearray(path.read_bytes())
    b[offset:offset + struct.calcsize(fmt)] = struct.pack(fmt, value)
    path.write_bytes(bytes(b))


def lab_src(t: Path, labs: dict[str, str], *, txt="Hello.", wav=None) -> Path:
    src = t / "labs"
    src.mkdir(parents=True, exist_ok=True)
    for name, lab in labs.items():
        (src / f"{name}.lab").write_text(lab)
        (src / f"{name}.txt").write_text(txt)
        sf.write(str(src / f"{name}.wav"), tone(1.0), SR, subtype="PCM_16")
    return src


GOOD_LAB = "#\n0.2 125 pau\n0.6 125 hh\n1.0 125 pau\n"


def sphere(path: Path, fields: list[str], data=b"\0" * 400, size="   1024"):
    head = (f"NIST_1A\n{size}\n" + "\n".join(fields + ["end_head"]) + "\n").encode()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(head.ljust(1024, b" ") + data)


def timit_src(t: Path, fields: list[str], phn="0 200 h#\n") -> Path:
    d = t / "timit" / "dr1-fabc0"
    sphere(d / "sa1.wav", fields)
    (d / "sa1.phn").write_text(phn)
    (d / "sa1.txt").write_text("0 200 Hi.\n")
    return t / "timit"


def check(root):
    return ["check", str(root), "--no-progress"]


def imp(fmt, src, out, *extra):
    return ["import", fmt, str(src), "--out", str(out), "--no-progress", *extra]


# ------------------------------------------------------------------------------------------ manifest
@case("manifest", "NaN phone end time in the manifest")
def _(t):
    return check(corpus(t, phones=[[0.0, float("nan"), "aa"]]))


@case("manifest", "`duration: Infinity`")
def _(t):
    return check(corpus(t, duration=float("inf")))


@case("manifest", "`duration: NaN`")
def _(t):
    return check(corpus(t, duration=float("nan")))


@case("manifest", "a number too large for a float (`1e400`) as duration")
def _(t):
    root = corpus(t)
    set_last_line(root, (root / "manifest.jsonl").read_bytes().splitlines()[-1].replace(b'"duration": 1.0', b'"duration": 1e400'))
    return check(root)


@case("manifest", "a small negative phone start (-0.001 s)")
def _(t):
    return check(corpus(t, phones=[[-0.001, 1.0, "aa"]]))


@case("manifest", "times written as strings (`\"0.5\"`)")
def _(t):
    return check(corpus(t, phones=[["0", "0.5", "aa"]]))


@case("manifest", "`audio: ../../../../etc/passwd`")
def _(t):
    return check(corpus(t, audio="../../../../etc/passwd"))


@case("manifest", "`audio: /etc/passwd` (absolute)")
def _(t):
    return check(corpus(t, audio="/etc/passwd"))


@case("manifest", "`audio/` is a symlink to a folder outside the corpus")
def _(t):
    root = corpus(t)
    (t / "elsewhere").mkdir()
    os.rename(root / "audio", t / "elsewhere" / "audio")
    (root / "audio").symlink_to(t / "elsewhere" / "audio")
    return check(root)


@case("manifest", "non-UTF-8 manifest (a Latin-1 `é`)")
def _(t):
    root = corpus(t)
    set_last_line(root, (root / "manifest.jsonl").read_bytes().splitlines()[-1].replace(b'"a b"', b'"caf\xe9"'))
    return check(root)


@case("manifest", "a 100,000-deep JSON line")
def _(t):
    root = corpus(t)
    set_last_line(root, b"[" * 100_000 + b"]" * 100_000)
    return check(root)


@case("manifest", "an integer with 5,000 digits")
def _(t):
    root = corpus(t)
    set_last_line(root, b'{"id": ' + b"7" * 5000 + b"}")
    return check(root)


@case("manifest", "`manifest.jsonl` is a folder")
def _(t):
    root = corpus(t)
    (root / "manifest.jsonl").unlink()
    (root / "manifest.jsonl").mkdir()
    return check(root)


@case("manifest", "no `manifest.jsonl`")
def _(t):
    (t / "empty").mkdir()
    return check(t / "empty")


@case("manifest", "an empty manifest")
def _(t):
    root = corpus(t)
    (root / "manifest.jsonl").write_text("")
    return check(root)


@case("manifest", "a line that is not JSON")
def _(t):
    root = corpus(t)
    set_last_line(root, b"{oops")
    return check(root)


@case("manifest", "a JSON array instead of an object")
def _(t):
    root = corpus(t)
    set_last_line(root, b"[1, 2]")
    return check(root)


@case("manifest", "a missing field (`phones`)")
def _(t):
    return check(corpus(t, phones=None))


@case("manifest", "a duplicate utterance id")
def _(t):
    return check(corpus(t, id="u0"))


@case("manifest", "an unknown phone label")
def _(t):
    return check(corpus(t, phones=[[0.0, 1.0, "qq"]]))


@case("manifest", "overlapping phones")
def _(t):
    return check(corpus(t, phones=[[0.0, 0.6, "aa"], [0.5, 1.0, "sil"]]))


@case("manifest", "a phone past the end of the audio")
def _(t):
    return check(corpus(t, phones=[[0.0, 1.5, "aa"]]))


@case("manifest", "an empty transcript")
def _(t):
    return check(corpus(t, text="  "))


@case("manifest", "an unknown split (`dev`)")
def _(t):
    return check(corpus(t, split="dev"))


# ------------------------------------------------------------------------------------------ audio
@case("audio", "a WAV header rate of 2147483647 Hz")
def _(t):
    root = corpus(t)
    patch(root / "audio" / "u1.wav", 24, "<I", 2147483647)
    return check(root)


@case("audio", "a truncated WAV")
def _(t):
    root = corpus(t)
    p = root / "audio" / "u1.wav"
    p.write_bytes(p.read_bytes()[:10000])
    return check(root)


@case("audio", "8 kHz audio in a corpus")
def _(t):
    root = corpus(t)
    sf.write(str(root / "audio" / "u1.wav"), tone(1.0, 8000), 8000, subtype="PCM_16")
    return check(root)


@case("audio", "stereo audio in a corpus")
def _(t):
    root = corpus(t)
    sf.write(str(root / "audio" / "u1.wav"), np.stack([tone(1.0)] * 2, 1), SR, subtype="PCM_16")
    return check(root)


@case("audio", "manifest duration disagrees with the audio")
def _(t):
    root = corpus(t)
    write_wav(root / "audio" / "u1.wav", tone(0.8))
    return check(root)


@case("audio", "a missing audio file")
def _(t):
    root = corpus(t)
    (root / "audio" / "u1.wav").unlink()
    return check(root)


@case("audio", "a file that is not audio")
def _(t):
    root = corpus(t)
    (root / "audio" / "u1.wav").write_bytes(b"definitely not a wav file" * 10)
    return check(root)


# ------------------------------------------------------------------------------------------ importers
@case("import", "`.lab` end time `nan`")
def _(t):
    return imp("lab", lab_src(t, {"a": "#\n0.2 125 pau\nnan 125 hh\n"}), t / "out")


@case("import", "`.lab` end time `inf`")
def _(t):
    return imp("lab", lab_src(t, {"a": "#\n0.2 125 pau\ninf 125 hh\n"}), t / "out")


@case("import", "`.lab` first line with a negative end time")
def _(t):
    return imp("lab", lab_src(t, {"a": "#\n-0.2 125 pau\n0.6 125 hh\n"}), t / "out")


@case("import", "`.lab` end times out of order")
def _(t):
    return imp("lab", lab_src(t, {"a": "#\n0.6 125 pau\n0.2 125 hh\n"}), t / "out")


@case("import", "`.lab` label outside the phone set")
def _(t):
    return imp("lab", lab_src(t, {"a": "#\n0.2 125 pau\n0.6 125 zz\n"}), t / "out")


@case("import", "one good and one bad utterance, no `--skip-bad`: output folder afterwards")
def _(t):
    return imp("lab", lab_src(t, {"a": GOOD_LAB, "b": "#\n0.2 125 pau\nnan 125 hh\n"}), t / "out")


@case("import", "the same with `--skip-bad`")
def _(t):
    return imp("lab", lab_src(t, {"a": GOOD_LAB, "b": "#\n0.2 125 pau\nnan 125 hh\n"}), t / "out", "--skip-bad")


@case("import", "import into an existing corpus")
def _(t):
    return imp("lab", lab_src(t, {"a": GOOD_LAB}), corpus(t))


@case("import", "`--force` into an existing corpus, and the import fails")
def _(t):
    return imp("lab", lab_src(t, {"a": "#\n0.2 125 pau\nnan 125 hh\n"}), corpus(t), "--force")


@case("import", "`--out` is a file")
def _(t):
    (t / "file").write_text("x")
    return imp("lab", lab_src(t, {"a": GOOD_LAB}), t / "file")


@case("import", "a transcript that is not UTF-8")
def _(t):
    src = lab_src(t, {"a": GOOD_LAB})
    (src / "a.txt").write_bytes(b"caf\xe9")
    return imp("lab", src, t / "out")


@case("import", "WAV header rate 2147483647 Hz, with `--skip-bad`")
def _(t):
    src = lab_src(t, {"a": GOOD_LAB, "b": GOOD_LAB})
    patch(src / "b.wav", 24, "<I", 2147483647)
    return imp("lab", src, t / "out", "--skip-bad")


@case("import", "SPHERE `sample_count` 10^15, with `--skip-bad`")
def _(t):
    return imp("timit", timit_src(t, ["sample_count -i 1000000000000000", "sample_rate -i 16000"]), t / "out",
               "--skip-bad")


@case("import", "SPHERE `sample_rate -r inf`")
def _(t):
    return imp("timit", timit_src(t, ["sample_count -i 200", "sample_rate -r inf"]), t / "out")


@case("import", "SPHERE `sample_count -s3 abc` (a string)")
def _(t):
    return imp("timit", timit_src(t, ["sample_count -s3 abc", "sample_rate -i 16000"]), t / "out")


@case("import", "SPHERE header size 99999999")
def _(t):
    src = timit_src(t, ["sample_count -i 200", "sample_rate -i 16000"])
    sphere(src / "dr1-fabc0" / "sa1.wav", ["sample_count -i 200", "sample_rate -i 16000"], size="99999999")
    return imp("timit", src, t / "out")


@case("import", "SPHERE promising more samples than the file holds")
def _(t):
    return imp("timit", timit_src(t, ["sample_count -i 5000", "sample_rate -i 16000"]), t / "out")


@case("import", "shorten-compressed SPHERE")
def _(t):
    return imp("timit", timit_src(t, ["sample_count -i 200", "sample_rate -i 16000",
                                      "sample_coding -s26 pcm,embedded-shorten-v2.00"]), t / "out")


@case("import", "`.phn` with a negative sample index")
def _(t):
    return imp("timit", timit_src(t, ["sample_count -i 200", "sample_rate -i 16000"], phn="-5 200 h#\n"), t / "out")


@case("import", "`.phn` segment ending before it starts")
def _(t):
    return imp("timit", timit_src(t, ["sample_count -i 200", "sample_rate -i 16000"], phn="150 100 h#\n"), t / "out")


@case("import", "an unreadable TextGrid")
def _(t):
    src = t / "tg"
    src.mkdir()
    (src / "a.TextGrid").write_text('File type = "ooTextFile"\nnonsense')
    sf.write(str(src / "a.wav"), tone(1.0), SR, subtype="PCM_16")
    return imp("textgrid", src, t / "out")


@case("import", "a label map that is 3,000-deep JSON")
def _(t):
    (t / "map.json").write_text('{"a": ' + "[" * 3000)
    return imp("lab", lab_src(t, {"a": GOOD_LAB}), t / "out", "--map", str(t / "map.json"))


@case("arguments", "`--valid-fraction nan`")
def _(t):
    return imp("lab", lab_src(t, {"a": GOOD_LAB}), t / "out", "--valid-fraction", "nan")


@case("arguments", "`--valid-fraction -0.2`")
def _(t):
    return imp("lab", lab_src(t, {"a": GOOD_LAB}), t / "out", "--valid-fraction", "-0.2")


@case("arguments", "`--valid-fraction 0.5 --test-fraction 0.6` (sum ≥ 1)")
def _(t):
    return imp("lab", lab_src(t, {"a": GOOD_LAB}), t / "out", "--valid-fraction", "0.5", "--test-fraction", "0.6")


@case("arguments", "`synth --utterances -3`")
def _(t):
    return ["synth", "--out", str(t / "c"), "--utterances", "-3"]


@case("arguments", "`synth --hours nan`")
def _(t):
    return ["synth", "--out", str(t / "c"), "--hours", "nan"]


@case("arguments", "`synth --jobs 0`")
def _(t):
    return ["synth", "--out", str(t / "c"), "--jobs", "0", "--utterances", "3"]


@case("align", "a transcript file that is not UTF-8")
def _(t):
    (t / "wavs").mkdir()
    (t / "tr.tsv").write_bytes(b"a\tcaf\xe9\n")
    return ["align", "--audio", str(t / "wavs"), "--transcripts", str(t / "tr.tsv"), "--out", str(t / "o"),
            "--no-progress"]


@case("align", "a JSONL transcript line nested 100,000 deep")
def _(t):
    (t / "wavs").mkdir()
    (t / "tr.jsonl").write_bytes(b"[" * 100_000)
    return ["align", "--audio", str(t / "wavs"), "--transcripts", str(t / "tr.jsonl"), "--out", str(t / "o"),
            "--no-progress"]


@case("synth", "`synth` into a non-empty folder that is not a synthesized corpus")
def _(t):
    (t / "mine").mkdir()
    (t / "mine" / "notes.txt").write_text("keep me")
    return ["synth", "--out", str(t / "mine"), "--utterances", "3", "--voices", "flite_awb,flite_rms", "--jobs", "1",
            "--no-progress"]


# ------------------------------------------------------------------------------------------ running
def _state(t: Path, argv: list[str]) -> str:
    """What is on disk afterwards at the command's ``--out`` (if any)."""
    if "--out" not in argv:
        return ""
    out = Path(argv[argv.index("--out") + 1])
    rel = "$TMP/" + str(out.relative_to(t))
    partial = sorted(p.name for p in out.parent.iterdir() if p.name.startswith(f".{out.name}."))
    extra = f"; leftovers: {', '.join(partial)}" if partial else ""
    if not out.exists():
        return f"`{rel}` absent{extra}"
    if out.is_file():
        return f"`{rel}` (a file) unchanged{extra}"
    try:
        n = len(Corpus.load(out))
        return f"`{rel}`: a corpus of {n} utterance(s){extra}"
    except ValueError:
        files = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
        return f"`{rel}`: {', '.join(files) or 'empty'}{extra}"


def run_case(fn) -> tuple[str, int | str, str, str, bool]:
    with tempfile.TemporaryDirectory(prefix="bad-") as tmp:
        t = Path(tmp)
        argv = fn(t)
        buf = io.StringIO()
        crashed = False
        with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(buf):
            try:
                rc = main(argv)
            except SystemExit as e:
                rc = e.code
            except Exception as e:  # a traceback: what this table exists to catch
                rc, crashed = "crash", True
                print(f"CRASH {type(e).__name__}: {e}")
        text = buf.getvalue().replace(str(t), "$TMP")
        lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
        keep = [ln for ln in lines if not ln.startswith(("usage:", "[-", "DIR"))]  # argparse's usage lines
        if any(ln.endswith("problem(s):") for ln in keep):  # check: the summary is dropped, the problems kept
            keep = keep[next(k for k, ln in enumerate(keep) if ln.endswith("problem(s):")):]
        shown = " ⏎ ".join(keep)[:700]
        cmd = "toposcope " + " ".join(a.replace(str(t), "$TMP") for a in argv)
        return cmd, rc, shown, _state(t, argv), crashed


def render() -> tuple[str, bool]:
    rows = []
    any_crash = False
    for k, (group, what, fn) in enumerate(CASES, 1):
        cmd, rc, shown, state, crashed = run_case(fn)
        any_crash |= crashed
        esc = lambda s: s.replace("|", "\\|")  # noqa: E731
        rows.append(f"| {k} | {group} | {what} | `{esc(cmd)}` | {rc} | {esc(shown)} | {esc(state)} |")
    head = [
        "# Bad inputs and what the user sees",
        "",
        "Generated by `scripts/bad_inputs.py` (do not edit by hand; `--check` tells whether it is current). Each",
        "row builds one bad input in a fresh temporary folder (`$TMP`), runs the command in-process and records the",
        "exit status (2: a clean error; 1: `check` found problems; 0: done, with anything skipped listed), the",
        "message printed (`⏎` joins lines), and what is left at `--out` afterwards. Rules behind the messages:",
        "`docs/method.md` § Reliability; the checks live in `src/toposcope/validation.py` (one parser for",
        "`Corpus.load` and `check`), the all-or-nothing folder in `toposcope._util.atomic_dir`.",
        "",
        "All or nothing: `import`, `align` and `synth` build in `.<out>.<random>.partial` (synth: `.<out>.partial`,",
        "kept after a failure or Ctrl-C so the next `synth` with the same `--out` resumes there) and rename it to",
        "`--out` only when complete. An existing non-empty `--out` is refused unless `--force`, which replaces it",
        "at the end (old renamed aside, new renamed in, old deleted), so a failed `--force` leaves the old corpus",
        "as it was. `synth` into a folder it synthesized before (one holding `.synth/`) reuses its matching",
        "utterances and replaces it the same way. Run-folder inputs (locks, a run killed before its first",
        "checkpoint, a torn `metrics.jsonl`) belong to the training commands and are not in this table.",
        "",
        "Every parser is also fuzzed (`tests/test_fuzz.py`; long run in `docs/benchmarks.md`).",
        "",
        "| # | area | bad input | command | exit | what the user sees | `--out` afterwards |",
        "|---|---|---|---|---|---|---|",
    ]
    return "\n".join(head + rows) + "\n", any_crash


def main_(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check", action="store_true", help="do not write; exit 1 when docs/bad-inputs.md differs")
    ap.add_argument("--out", type=Path, default=DOC)
    args = ap.parse_args(argv)
    text, crashed = render()
    if args.check:
        same = args.out.exists() and args.out.read_text(encoding="utf-8") == text
        print("up to date" if same else f"{args.out} is out of date; run scripts/bad_inputs.py")
        return 0 if same and not crashed else 1
    args.out.write_text(text, encoding="utf-8")
    print(f"wrote {args.out}: {len(CASES)} bad inputs{'; SOME CRASHED' if crashed else ''}")
    return 1 if crashed else 0


if __name__ == "__main__":
    sys.exit(main_())
