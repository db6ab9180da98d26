"""Maps and regions (SPEC §6): smoothing and region-finding against hand-computed arrays."""

from __future__ import annotations

import json

import numpy as np
import pytest

from toposcope.grid import Grid
from toposcope.maps import compute_regions, find_region, safe_filename, smooth_map, write_maps
from toposcope.profiles import LayerProfile, Profiles


def test_smooth_by_hand_with_borders():
    m = np.arange(1.0, 10.0).reshape(3, 3)
    # corners average 4 cells, edges 6, the centre 9
    exp = np.array([[(1 + 2 + 4 + 5) / 4, (1 + 2 + 3 + 4 + 5 + 6) / 6, (2 + 3 + 5 + 6) / 4],
                    [(1 + 2 + 4 + 5 + 7 + 8) / 6, 5.0, (2 + 3 + 5 + 6 + 8 + 9) / 6],
                    [(4 + 5 + 7 + 8) / 4, (4 + 5 + 6 + 7 + 8 + 9) / 6, (5 + 6 + 8 + 9) / 4]])
    np.testing.assert_allclose(smooth_map(m), exp)
    # batched maps smooth independently; same shape
    stack = np.stack([m, -m])
    np.testing.assert_allclose(smooth_map(stack), np.stack([exp, -exp]))
    # a single cell spreads 1/4 to a corner window, 1/6 to edge, 1/9 inside
    one = np.zeros((4, 5))
    one[1, 1] = 36.0
    s = smooth_map(one)
    assert s[0, 0] == 9.0 and s[0, 1] == 6.0 and s[1, 1] == 4.0 and s[2, 2] == 4.0 and s[3, 3] == 0.0
    with pytest.raises(ValueError):
        smooth_map(np.zeros(5))


def test_find_region_interior_and_border():
    m = np.arange(1.0, 10.0).reshape(3, 3)
    r = find_region(m)
    assert r.center == (2, 2) and r.value == pytest.approx(7.0)
    assert list(r.filters) == [4, 5, 7, 8] and r.box == (1, 2, 1, 2)  # clipped at the border
    # a hot corner wins in the smoothed map because border windows average fewer cells
    c = np.zeros((4, 5))
    c[0, 4] = 9.0
    r = find_region(c)
    assert r.center == (0, 4) and r.value == pytest.approx(9.0 / 4) and list(r.filters) == [3, 4, 8, 9]
    # interior blob: full 3x3 block, row-major filter indices of a 6x5 grid
    b = np.zeros((6, 5))
    b[2:5, 1:4] = 1.0
    b[3, 2] = 2.0
    r = find_region(b)
    assert r.center == (3, 2) and list(r.filters) == [11, 12, 13, 16, 17, 18, 21, 22, 23]
    assert r.value == pytest.approx(10.0 / 9)
    # an already smoothed map is used as given
    r2 = find_region(smooth_map(b), smoothed=True)
    assert r2.center == r.center and r2.value == pytest.approx(r.value)
    assert r.to_dict() == {"center": [3, 2], "filters": [11, 12, 13, 16, 17, 18, 21, 22, 23],
                           "value": pytest.approx(10 / 9)}
    with pytest.raises(ValueError, match="NaN"):
        find_region(np.full((3, 3), np.nan))


def _profiles(rng, groups=("aa", "s", "sil")):
    grid = Grid(6, 5)
    raw = rng.normal(size=(len(groups), 30))
    for r in range(1, 4):  # /s/: a blob centred at (2, 2)
        for c in range(1, 4):
            raw[1, grid.index(r, c)] += 10.0 if (r, c) == (2, 2) else 5.0
    values = raw - raw.mean(0)
    lp = LayerProfile(values=values, raw=raw, counts=np.array([5, 6, 7]), grid=grid)
    return Profiles(groups=tuple(groups), method="gradnap", grouping="phone", layers={"conv1": lp})


def test_write_maps_files(tmp_path):
    prof = _profiles(np.random.default_rng(0))
    regions = compute_regions(prof)
    assert regions["conv1"]["s"].center == (2, 2)
    write_maps(prof, tmp_path / "maps", progress=False, dpi=50)
    for g in prof.groups:
        assert (tmp_path / "maps" / "conv1" / f"{g}.png").stat().st_size > 1000
    assert (tmp_path / "maps" / "conv1" / "overview.png").is_file()
    data = json.loads((tmp_path / "maps" / "regions.json").read_text())
    assert set(data["conv1"]) == {"aa", "s", "sil"}
    assert data["conv1"]["s"]["center"] == [2, 2] and 12 in data["conv1"]["s"]["filters"]
    assert data["conv1"]["s"]["value"] == pytest.approx(regions["conv1"]["s"].value)


def test_safe_filename():
    assert safe_filename("aa") == "aa" and safe_filename("blank") == "blank"
    assert "/" not in safe_filename("../x") and safe_filename(" ") != " "
