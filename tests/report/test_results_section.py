"""The report's accuracy table: greedy numbers, and the beam-search + LM columns when evaluated with an LM."""

from __future__ import annotations

from toposcope.report import RunData
from toposcope.report.sections.summary import results


def rd(tmp_path, name, weight, ev) -> RunData:
    d = tmp_path / name
    d.mkdir()
    return RunData(path=d, label=name, config={"train": {"topo_weight": weight}}, evals={"test": ev})


def test_greedy_only_table_has_no_lm_columns(tmp_path):
    html = results([rd(tmp_path, "topo", 0.5, {"cer": 0.40, "wer": 0.90, "n_utterances": 7}),
                    rd(tmp_path, "base", 0.0, {"cer": 0.42, "wer": 0.95, "n_utterances": 7})])
    assert "greedy CTC decoding)" in html and "beam search" not in html
    assert "40.0" in html and "-2.0" in html and "-5.0" in html  # topo minus baseline, points


def test_lm_columns_and_their_note(tmp_path):
    lm = {"cer": 0.35, "wer": 0.70, "decoder": {"beam": 16, "alpha": 0.75, "beta": 1.5},
          "lm": {"order": 8, "sentences": 1234}, "per_speaker": {"spk1": {"cer": 0.333, "wer": 0.7, "n": 7}}}
    per = {"spk1": {"cer": 0.40, "wer": 0.90, "n": 7}}
    html = results([rd(tmp_path, "topo", 0.5, {"cer": 0.40, "wer": 0.90, "n_utterances": 7, "lm": lm,
                                               "per_speaker": per}),
                    rd(tmp_path, "base", 0.0, {"cer": 0.42, "wer": 0.95, "n_utterances": 7, "per_speaker": per})])
    assert "CER, beam search + LM" in html and "35.0" in html and "70.0" in html
    assert "language model (8-gram characters, 1234 sentences; beam 16" in html
    assert "acoustic model alone" in html
    assert html.count("<tr>") == html.count("</tr>")
    # the baseline, evaluated without an LM, shows n/a in the LM columns rather than breaking the row
    base_row = html.split('<td class="l">base</td>')[1].split("</tr>")[0]
    assert base_row.count("<td>") == 8
    voice_row = html.split('<td class="l">spk1</td>')[1].split("</tr>")[0]
    assert "CER topo, beam + LM" in html and voice_row.endswith("<td>33.3 %</td><td>–</td>")


def test_the_note_names_a_word_lm(tmp_path):
    lm = {"cer": 0.30, "wer": 0.60, "decoder": {"beam": 64, "alpha": 1.0, "beta": 2.0},
          "lm": {"order": 8, "sentences": 99, "words": {"order": 3, "oov": -1.0, "lexicon": 500}}}
    html = results([rd(tmp_path, "topo", 0.5, {"cer": 0.40, "wer": 0.90, "n_utterances": 7, "lm": lm})])
    assert ("3-gram words over a 500-word lexicon (unknown words: penalty -1.0, spelled by 8-gram characters), "
            "99 sentences; beam 64, LM weight 1.0") in html
