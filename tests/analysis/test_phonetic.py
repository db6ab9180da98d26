"""Phonetic organization (docs/statistics.md): the feature table, the phone distance, Mantel r and region
separation against hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest

from toposcope.analysis.phonetic import (FEATURE_NAMES, FEATURES, feature_row, mantel_r, map_dissimilarity,
                                         phonetic_distance, region_centres, region_separation)
from toposcope.phones import PHONES


def test_table_covers_the_39_phones():
    phones = [p for p in PHONES if p != "sil"]
    assert len(phones) == 39 and set(FEATURES) == set(phones)
    for p in phones:
        row = feature_row(p)
        assert len(row) == len(FEATURE_NAMES) and FEATURES[p]["ipa"]
        if row[0] == "vowel":
            assert row[2] is None and None not in row[4:]
        else:
            assert None not in row[1:4] and row[4:] == (None, None, None)
    with pytest.raises(KeyError, match="no phonetic features"):
        feature_row("sil")


def test_phonetic_distance_by_hand():
    d = phonetic_distance(["p", "b", "t", "aa", "iy", "s", "z"])
    assert d[0, 1] == pytest.approx(1 / 7)   # voicing only
    assert d[0, 2] == pytest.approx(1 / 7)   # place only
    assert d[5, 6] == pytest.approx(1 / 7)   # s/z: voicing
    assert d[3, 4] == pytest.approx(2 / 7)   # aa/iy: height and backness
    assert d[0, 3] == pytest.approx(1.0)     # p/aa: everything differs
    assert d[1, 3] == pytest.approx(6 / 7)   # b/aa: both voiced
    assert d[0, 5] == pytest.approx(2 / 7)   # p/s: manner and place
    assert np.allclose(d, d.T) and np.all(np.diag(d) == 0)


def test_map_dissimilarity_and_mantel_by_hand():
    v = np.array([[1.0, 2.0, 3.0], [2.0, 4.0, 6.0], [3.0, 2.0, 1.0], [5.0, 5.0, 5.0]])
    dm = map_dissimilarity(v)
    np.testing.assert_allclose(dm[0], [0.0, 0.0, 2.0, 1.0], atol=1e-12)  # r = 1, 1, -1, constant -> 0
    dist = np.array([[0, 1, 2], [1, 0, 3], [2, 3, 0]], dtype=float)
    assert mantel_r(dist, dist) == pytest.approx(1.0)
    assert mantel_r(-dist, dist) == pytest.approx(-1.0)
    # pairs (0,1), (0,2), (1,2): [1, 2, 3] against [1, 3, 2] -> r = 0.5
    other = np.array([[0, 1, 3], [1, 0, 2], [3, 2, 0]], dtype=float)
    assert mantel_r(other, dist) == pytest.approx(0.5)
    batch = np.stack([dist, other])
    np.testing.assert_allclose(mantel_r(batch, dist), [1.0, 0.5])


def test_region_separation_by_hand():
    maps = np.zeros((2, 9, 9))
    maps[0, 1:4, 1:4] = 1.0
    maps[0, 2, 2] = 2.0
    maps[1, 4:7, 5:8] = 1.0
    maps[1, 5, 6] = 2.0
    assert region_centres(maps).tolist() == [[2.0, 2.0], [5.0, 6.0]]
    assert region_separation(maps) == pytest.approx(5.0)
    three = np.concatenate([maps, maps[:1]])  # pairs: 5, 0, 5
    assert region_separation(three) == pytest.approx(10 / 3)
    assert region_separation(np.stack([maps, three[[0, 0]]]).reshape(2, 2, 9, 9)).tolist() == [5.0, 0.0]
