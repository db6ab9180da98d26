"""Grapheme alphabet and transcript normalisation (docs/method.md § Features and model)."""

from __future__ import annotations

import pytest

from toposcope.text import ALPHABET, BLANK, N_CLASSES, ctc_greedy, decode, encode, normalize_text


def test_alphabet_layout():
    assert ALPHABET[0] == BLANK and ALPHABET[1] == " " and ALPHABET[2] == "'"
    assert ALPHABET[3] == "a" and ALPHABET[28] == "z" and N_CLASSES == 29


@pytest.mark.parametrize("raw, norm", [
    ("Hello, World!", "hello world"),
    ("  Don't   STOP  ", "don't stop"),
    ("'Quoted' words", "quoted words"),
    ("rock 'n' roll", "rock n roll"),
    ("It\u2019s fine", "it's fine"),
    ("Café naïve Ångström", "cafe naive angstrom"),
    ("room 101, floor 2", "room floor"),
    ("e-mail\tand\nnewline", "e mail and newline"),
    ("...", ""),
    ("", ""),
])
def test_normalize_text(raw, norm):
    assert normalize_text(raw) == norm


def test_encode_decode():
    ids = encode("hi you'd")
    assert ids == [10, 11, 1, 27, 17, 23, 2, 6]
    assert decode(ids) == "hi you'd" and decode([0, 10, 0, 11]) == "hi"
    with pytest.raises(ValueError, match="'H' is not in the grapheme alphabet"):
        encode("Hi")


def test_ctc_greedy_collapses_repeats_and_blanks():
    h, e, l, o = 10, 7, 14, 17
    assert ctc_greedy([h, h, 0, e, l, l, 0, l, o, o]) == "hello"
    assert ctc_greedy([0, 1, 1, h, 1, 0, 1, 3, 1]) == "h a"  # repeated/edge spaces collapsed and stripped
    assert ctc_greedy([]) == "" and ctc_greedy([0, 0]) == ""
