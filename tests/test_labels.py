"""Frame -> phone labelling of any layer (docs/method.md § Profiles "frame -> group")."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from toposcope.labels import frame_centers, frame_times, label_frames


@pytest.mark.parametrize("convs, expect", [
    ([], [0, 1, 2, 3]),                                    # the feature frames themselves
    ([(5, 2, 0)], [2, 4, 6, 8]),                           # stride 2, kernel 5, no padding: 2t + 2
    ([(5, 2, 2)], [0, 2, 4, 6]),                           # 'same'-style padding: 2t
    ([(5, 2, 2), (3, 1, 1)], [0, 2, 4, 6]),                # a centred k3 layer on top changes nothing
    ([(4, 2, 1), (7, 1, 3), (2, 3, 0)], [1.5, 7.5, 13.5, 19.5]),  # 2(3t + 0.5) - 1 + 1.5 = 6t + 1.5
    # paper-like: k32 p15 -> t + 0.5; k7 p3 -> t + 0.5; k48 s2 p23 -> 2(t + 0.5) - 23 + 23.5 = 2t + 1.5
    ([(48, 2, 23), (7, 1, 3), (32, 1, 15)], [1.5, 3.5, 5.5, 7.5]),
])
def test_frame_centers_by_hand(convs, expect):
    np.testing.assert_allclose(frame_centers(4, convs), expect)


def test_frame_times_scale_by_hop():
    # stride 2, kernel 5, pad 2 at hop 128 / 16 kHz: centres 0, 2, 4 feature frames = 0, 16, 32 ms
    np.testing.assert_allclose(frame_times(3, [(5, 2, 2)], 128, 16000), [0.0, 0.016, 0.032])
    np.testing.assert_allclose(frame_times(3, [(5, 2, 0)], 160, 16000), [0.02, 0.04, 0.06])


@pytest.mark.parametrize("convs", [[(5, 2, 0)], [(5, 2, 2), (3, 1, 1)], [(4, 2, 1), (7, 1, 3), (2, 3, 0)],
                                   [(6, 3, 1), (5, 2, 4)]])
def test_frame_centers_match_receptive_fields_of_real_convs(convs):
    """Independent check: the centre of the input span that actually influences each output
    frame of a torch Conv1d stack (found by autograd) equals frame_centers."""
    n_in = 80
    x = torch.zeros(1, 1, n_in, requires_grad=True)
    y = x
    for k, s, p in convs:
        conv = torch.nn.Conv1d(1, 1, k, stride=s, padding=p, bias=False)
        torch.nn.init.constant_(conv.weight, 1.0)
        y = conv(y)
    n_out = y.shape[-1]
    centres = frame_centers(n_out, convs)
    rf = 1 + sum((k - 1) * int(np.prod([s for _, s, _ in convs[:i]])) for i, (k, _, _) in enumerate(convs))
    checked = 0
    for t in range(n_out):
        (g,) = torch.autograd.grad(y[0, 0, t], x, retain_graph=True)
        idx = torch.nonzero(g[0, 0]).flatten()
        if len(idx) == 0 or idx[-1] - idx[0] + 1 != rf:  # span clipped by the border: skip
            continue
        assert centres[t] == pytest.approx((idx[0].item() + idx[-1].item()) / 2)
        checked += 1
    assert checked >= n_out // 2


SEGS = [(0.0, 0.1, "sil"), (0.1, 0.25, "aa"), (0.3, 0.5, "b")]  # gap 0.25-0.3
GROUPS = ["aa", "b", "sil"]


def test_label_frames_half_open_segments_and_gaps():
    times = np.array([-0.01, 0.0, 0.05, 0.0999, 0.1, 0.2499, 0.25, 0.28, 0.3, 0.49, 0.5, 0.7])
    got = label_frames(times, SEGS, GROUPS)
    assert got.tolist() == [-1, 2, 2, 2, 0, 0, -1, -1, 1, 1, -1, -1]


def test_label_frames_labels_not_in_groups_and_empty():
    times = np.array([0.05, 0.15, 0.35])
    assert label_frames(times, SEGS, ["b"]).tolist() == [-1, -1, 0]
    assert label_frames(times, [], GROUPS).tolist() == [-1, -1, -1]


def test_label_frames_layer_with_stride_2_kernel_5():
    # layer frames centred at feature frames 2t + 2 (no padding), hop 160 @ 16 kHz -> 20t + 20 ms
    times = frame_times(15, [(5, 2, 0)], 160, 16000)
    np.testing.assert_allclose(times[:3], [0.02, 0.04, 0.06])
    got = label_frames(times, SEGS, GROUPS)
    # 0.02..0.08 sil; 0.10..0.24 aa; 0.26, 0.28 gap; 0.30 b
    assert got.tolist() == [2] * 4 + [0] * 8 + [-1, -1] + [1]


# -- targets of the phone head ([phone_head], toposcope.train) ---------------------------------------------------
def test_phone_targets_by_hand():
    from toposcope.labels import phone_targets
    from toposcope.phones import PHONES

    sil, s, aa = PHONES.index("sil"), PHONES.index("s"), PHONES.index("aa")
    segs = [(0.0, 0.05, "sil"), (0.05, 0.12, "s"), (0.12, 0.2, "aa")]
    convs = [(3, 2, 1)]  # frame t centred at feature frame 2t = 0.02 t s at hop 160 / 16 kHz
    # times 0, .02, .04, .06, .08, .10 for the 6 valid frames; frames 6 and 7 are padding
    y = phone_targets([segs], [6], 8, convs, 160, 16000)
    assert y.tolist() == [[sil, sil, sil, s, s, s, -1, -1]] and y.dtype == np.int64
    # speed perturbation made this input 2x shorter: times x2 = 0, .04, .08, .12, .16, .20 (.20 is past the end)
    y2 = phone_targets([segs, segs], [6, 3], 6, convs, 160, 16000, time_scale=[2.0, 1.0])
    assert y2.tolist() == [[sil, sil, s, aa, aa, -1], [sil, sil, sil, -1, -1, -1]]
    # a label outside the 40 phones and an utterance without alignments give -1, not an error
    assert phone_targets([[(0.0, 1.0, "xx")], []], [2, 2], 2, convs, 160, 16000).tolist() == [[-1, -1], [-1, -1]]
