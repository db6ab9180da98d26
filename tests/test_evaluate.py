"""Evaluation: CER/WER per split and per speaker, JSON + table (toposcope.evaluate)."""

from __future__ import annotations

import json

import pytest

from toposcope.checkpoint import load_run
from toposcope.cli import main as cli_main
from toposcope.corpus import CorpusError
from toposcope.evaluate import error_rates, evaluate, format_table, transcribe


def test_error_rates_are_corpus_level():
    cer, wer = error_rates(["abc", "de"], ["abd", ""])
    assert cer == pytest.approx(3 / 5)  # 1 substitution + 2 deletions over 5 reference chars
    assert wer == pytest.approx(2 / 2)
    assert error_rates(["a b c"], ["a b c"]) == (0.0, 0.0)
    with pytest.raises(ValueError):
        error_rates([], [])


def test_evaluate_run_writes_json_per_speaker(run_copy, tiny_corpus):
    tiny_run = run_copy  # evaluate writes RUN/eval/: never into the shared fixture
    res = evaluate(tiny_run, tiny_corpus.root, split="test", progress=False)
    utts = tiny_corpus.split("test")
    assert res["split"] == "test" and res["n_utterances"] == len(utts)
    assert set(res["per_speaker"]) == {u.speaker for u in utts}
    assert sum(v["n"] for v in res["per_speaker"].values()) == len(utts)
    assert 0 <= res["cer"] <= 2 and 0 <= res["wer"] <= 5
    on_disk = json.loads((tiny_run / "eval" / "test.json").read_text())
    assert on_disk["cer"] == res["cer"] and on_disk["per_speaker"] == res["per_speaker"]
    # the numbers are the decoder's: recompute the CER from a fresh transcription
    from toposcope.data import SpeechDataset, load_features

    run = load_run(tiny_run)
    ds = SpeechDataset(utts, load_features(tiny_corpus, run.config.model.features, progress=False))
    pairs = transcribe(run.model, ds, batch_size=1)
    assert error_rates(*zip(*pairs))[0] == pytest.approx(res["cer"], abs=0.02)
    table = format_table(res)
    assert "all (test)" in table and all(spk in table for spk in res["per_speaker"])


def test_valid_cer_matches_training_log(tiny_run, tiny_corpus):
    best = load_run(tiny_run)
    res = evaluate(best, tiny_corpus, split="valid", progress=False, write=False)
    assert res["cer"] == pytest.approx(best.meta["metrics"]["cer"], abs=1e-9)
    assert not (tiny_run / "eval" / "valid.json").exists()


def test_evaluate_cli_and_errors(run_copy, tiny_corpus, tmp_path, capsys):
    tiny_run = run_copy
    assert cli_main(["evaluate", str(tiny_run), "--data", str(tiny_corpus.root), "--split", "valid",
                     "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "CER %" in out and "all (valid)" in out
    assert (tiny_run / "eval" / "valid.json").is_file()
    with pytest.raises(FileNotFoundError):
        evaluate(tmp_path / "no_run", tiny_corpus.root)
    assert cli_main(["evaluate", str(tmp_path / "no_run"), "--data", str(tiny_corpus.root)]) == 2
    from helpers import tone_corpus

    only_train = tone_corpus(tmp_path / "c", n=3, splits=("train",))
    with pytest.raises(CorpusError, match="no 'test' utterances"):
        evaluate(tiny_run, only_train.root, progress=False)


def test_evaluate_with_language_model(tiny_run, tiny_corpus, tmp_path):
    from toposcope.decode import DecoderConfig
    from toposcope.lm import CharNgramLM, LMConfig, lm_for_corpus

    lm = lm_for_corpus(tiny_corpus, config=LMConfig(order=4))
    greedy = evaluate(tiny_run, tiny_corpus, split="test", progress=False, write=False)
    res = evaluate(tiny_run, tiny_corpus, split="test", progress=False, write=False, lm=lm, word_lm=None)
    for k in ("cer", "wer", "per_speaker", "examples"):
        assert res[k] == greedy[k]  # the top-level numbers stay the acoustic model's greedy ones
    assert "lm" not in greedy and res["decoding"] == "greedy"
    b = res["lm"]
    assert set(b["per_speaker"]) == set(res["per_speaker"]) and 0 <= b["cer"] <= 2
    assert b["decoder"] == {"beam": 64, "alpha": 1.0, "beta": 1.5, "prune": -8.0}
    assert b["lm"]["order"] == 4 and b["lm"]["sentences"] == len(lm.texts) and b["lm"]["sources"] == ["train"]
    # the beam numbers are the decoder's: recompute them through transcribe()
    from toposcope.data import SpeechDataset, load_features

    run = load_run(tiny_run)
    ds = SpeechDataset(tiny_corpus.split("test"), load_features(tiny_corpus, run.config.model.features, progress=False))
    pairs = transcribe(run.model, ds, lm=lm, decoder=DecoderConfig(), word_lm=None)
    assert error_rates(*zip(*pairs)) == pytest.approx((b["cer"], b["wer"]))
    assert [p[1] for p in pairs[:5]] == [e["hyp"] for e in b["examples"]]
    table = format_table(res)
    assert "LM CER %" in table and "4-gram characters" in table and "words" not in table
    assert "words" not in b["lm"]
    # by default the character LM sits inside a word LM over its lexicon; transcribe() agrees with it
    words = evaluate(tiny_run, tiny_corpus, split="test", progress=False, write=False, lm=lm)
    assert words["lm"]["lm"]["words"] == {"order": 3, "discount": 0.75, "oov": 0.0,
                                         "lexicon": len({w for t in lm.texts for w in t.split()})}
    pairs = transcribe(run.model, ds, lm=lm, decoder=DecoderConfig())
    assert error_rates(*zip(*pairs)) == pytest.approx((words["lm"]["cer"], words["lm"]["wer"]))
    assert "3-gram words over a" in format_table(words)
    assert b["known_sentences"] == 0 and "warning" not in table
    # an LM that knows the evaluated sentences: counted, and the table says the numbers are optimistic
    leaky = CharNgramLM([u.text for u in tiny_corpus], LMConfig(order=4))
    res = evaluate(tiny_run, tiny_corpus, split="test", progress=False, write=False, lm=leaky)
    assert res["lm"]["known_sentences"] == len(tiny_corpus.split("test"))
    assert "optimistic" in format_table(res)


def test_lm_and_evaluate_cli(run_copy, tiny_corpus, tmp_path, capsys):
    lm_file = tmp_path / "lm.json"
    assert cli_main(["lm", "--data", str(tiny_corpus.root), "--out", str(lm_file), "--order", "5"]) == 0
    out = capsys.readouterr().out
    assert "perplexity per character on test" in out and lm_file.is_file()
    assert "lexicon (the word LM's words" in out and "% of its words are outside the lexicon" in out
    assert cli_main(["evaluate", str(run_copy), "--data", str(tiny_corpus.root), "--lm", str(lm_file),
                     "--beam", "4", "--alpha", "0.5", "--beta", "1", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "LM WER %" in out and "beam 4, alpha 0.5, beta 1, 3-gram words" in out and "5-gram characters" in out
    saved = json.loads((run_copy / "eval" / "test.json").read_text())
    assert saved["lm"]["decoder"]["beam"] == 4 and saved["lm"]["lm"]["path"] == str(lm_file)
    assert saved["lm"]["lm"]["words"]["order"] == 3
    assert cli_main(["evaluate", str(run_copy), "--data", str(tiny_corpus.root), "--lm", str(lm_file),
                     "--beam", "4", "--words", "2", "--oov", "-3", "--no-progress"]) == 0
    assert "2-gram words" in capsys.readouterr().out
    saved = json.loads((run_copy / "eval" / "test.json").read_text())
    assert saved["lm"]["lm"]["words"]["order"] == 2 and saved["lm"]["lm"]["words"]["oov"] == -3.0
    assert cli_main(["evaluate", str(run_copy), "--data", str(tiny_corpus.root), "--lm", str(lm_file),
                     "--beam", "4", "--words", "0", "--no-progress"]) == 0
    assert "words" not in capsys.readouterr().out.splitlines()[-2]
    assert "words" not in json.loads((run_copy / "eval" / "test.json").read_text())["lm"]["lm"]
    assert cli_main(["evaluate", str(run_copy), "--data", str(tiny_corpus.root), "--lm", str(lm_file),
                     "--oov", "2", "--no-progress"]) == 2
    assert "oov" in capsys.readouterr().err
    assert cli_main(["evaluate", str(run_copy), "--data", str(tiny_corpus.root), "--lm", str(tmp_path / "x.json")]) == 2
    assert "toposcope lm" in capsys.readouterr().err
    text = tmp_path / "more.txt"
    text.write_text("A sentence of extra text.\nAnother one here.\n")
    assert cli_main(["lm", "--data", str(tiny_corpus.root), "--out", str(lm_file), "--no-train",
                     "--text", str(text)]) == 0
    assert "2 sentences (text)" in capsys.readouterr().out
