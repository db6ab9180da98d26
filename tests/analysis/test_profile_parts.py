"""The parts a profile pass is built from (toposcope.analysis.profile_parts): adjustments, score targets,
frame labellers, each chosen by name from a registry."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from toposcope.analysis.profile_parts import (ADJUSTMENTS, GRAPHEME_GROUPS, LABELLERS, SCORE_TARGETS, ProfileError,
                                              pick, segment_index)


def test_adjustments_by_hand():
    a = torch.tensor([[[0.0, 2.0, 3.0]]])
    g = torch.tensor([[[5.0, -0.5, 2.0]]])
    assert torch.equal(ADJUSTMENTS["gradnap"](a, g), torch.tensor([[[0.0, -1.0, 6.0]]]))
    assert torch.equal(ADJUSTMENTS["absgrad"](a, g), torch.tensor([[[0.0, 1.0, 6.0]]]))
    assert torch.equal(ADJUSTMENTS["nap"](a, None), a)
    assert [k for k, v in ADJUSTMENTS.items() if v.needs_grad] == ["gradnap", "absgrad"]


def test_pick_names_objects_and_errors():
    assert pick(ADJUSTMENTS, "nap", "method") is ADJUSTMENTS["nap"]
    mine = SimpleNamespace(name="mine")
    assert pick(ADJUSTMENTS, mine, "method") is mine
    with pytest.raises(ProfileError, match="method must be one of gradnap, nap, absgrad, got 'grad'"):
        pick(ADJUSTMENTS, "grad", "method")


def test_score_targets_by_hand():
    # 1 utterance, 3 output frames (2 valid), 2 classes + blank
    p = torch.tensor([[[0.7, 0.2, 0.1], [0.1, 0.6, 0.3], [0.2, 0.2, 0.6]]])
    logp = p.log()
    s, left = SCORE_TARGETS["predicted"](logp, torch.tensor([2]), [None])
    assert left == 0 and s.item() == pytest.approx(np.log(0.7) + np.log(0.6))
    # CTC of "a" (class 3) over 2 frames of 4 classes: paths a-, -a, aa
    q = torch.tensor([[[0.5, 0.1, 0.1, 0.3], [0.4, 0.1, 0.1, 0.4]]])
    s, left = SCORE_TARGETS["ctc"](q.log(), torch.tensor([2]), [SimpleNamespace(id="u", text="a")])
    assert left == 0 and s.item() == pytest.approx(np.log(0.3 * 0.4 + 0.5 * 0.4 + 0.3 * 0.4), rel=1e-5)
    # a transcript too long for its frames: left out and counted
    s, left = SCORE_TARGETS["ctc"](q.log(), torch.tensor([2]), [SimpleNamespace(id="u", text="aaa")])
    assert left == 1 and s.item() == 0.0
    with pytest.raises(ProfileError, match="u: empty transcript"):
        SCORE_TARGETS["ctc"](q.log(), torch.tensor([2]), [SimpleNamespace(id="u", text="!!")])


def test_segment_index_and_phone_units():
    segs = [(0.0, 0.1, "sil"), (0.1, 0.25, "aa"), (0.3, 0.4, "zz")]  # a gap at 0.25-0.3; an unknown label
    t = np.array([0.0, 0.05, 0.1, 0.26, 0.3, 0.45])
    assert segment_index(t, segs).tolist() == [0, 0, 1, -1, 2, -1]
    assert segment_index(t, []).tolist() == [-1] * 6
    lab = LABELLERS["phone"].label([SimpleNamespace(phones=segs), SimpleNamespace(phones=segs[:1])],
                                   None, None, None, 0.0)
    units, unit_group = lab.frame_units(t, np.array([6, 2]))
    assert units.tolist() == [[0, 0, 1, -1, 2, -1], [0, 0, -1, -1, -1, -1]]  # past n_len: -1
    groups = LABELLERS["phone"].groups
    assert unit_group.tolist() == [[groups.index("sil"), groups.index("aa"), -1], [groups.index("sil"), -1, -1]]


def test_predicted_units_and_segments():
    # output frames at 0, 20, 40, 60 ms predicting blank, a, a, b (pred = class index)
    a, b = GRAPHEME_GROUPS.index("a"), GRAPHEME_GROUPS.index("b")
    pred = np.array([[0, a, a, b]])
    lab = LABELLERS["predicted"].label(None, pred, np.array([3]), np.array([0.0, 0.02, 0.04, 0.06]), 0.02)
    units, ug = lab.frame_units(np.array([0.0, 0.01, 0.015, 0.05, 0.07]), np.array([4]))
    # nearest valid output frame (only 3 valid: the b frame is past out_len); ties go to the earlier
    assert units.tolist() == [[0, 0, a, a, -1]]
    assert ug.shape == (1, len(GRAPHEME_GROUPS)) and ug[0, a] == a
    assert lab.segments == [[(-0.01, 0.01, "blank"), (0.01, 0.05, "a")]]
