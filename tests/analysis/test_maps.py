"""Maps and regions (docs/method.md § Maps and regions): smoothing and region-finding against hand-computed arrays."""

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


def test_write_maps_files_do_not_depend_on_jobs(tmp_path):
    """Layers drawn in two forked processes give the same bytes as in this one."""
    rng = np.random.default_rng(0)
    prof = _profiles(rng)
    lp = prof.layers["conv1"]
    two = LayerProfile(values=-lp.values, raw=lp.raw, counts=lp.counts, grid=lp.grid)
    prof = Profiles(groups=prof.groups, method="gradnap", grouping="phone", layers={"conv1": lp, "conv2": two})
    write_maps(prof, tmp_path / "one", progress=False, dpi=40, jobs=1)
    write_maps(prof, tmp_path / "two", progress=False, dpi=40, jobs=2)
    files = sorted(p.relative_to(tmp_path / "one") for p in (tmp_path / "one").rglob("*.*"))
    assert len(files) == 2 * (3 + 1) + 1  # 3 groups + an overview per layer, regions.json
    for f in files:
        assert (tmp_path / "one" / f).read_bytes() == (tmp_path / "two" / f).read_bytes(), f


def test_safe_filename():
    assert safe_filename("aa") == "aa" and safe_filename("blank") == "blank"
    assert "/" not in safe_filename("../x") and safe_filename(" ") != " "


# -- maps_run: the library entry point of `toposcope maps` ------------------------------------------------
def _profiled_copy(tiny_run, tiny_corpus, tmp_path, checkpoint="best"):
    """A copy of the session's tiny run (never mutated) with a GradNAP phone profile of its test split."""
    import shutil

    from toposcope.analysis.profiles import profile_run

    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    profile_run(run, tiny_corpus.root, checkpoint=checkpoint, progress=False)
    return run


def test_maps_run_writes_the_contract(tiny_run, tiny_corpus, tmp_path):
    from toposcope.analysis.maps import maps_run
    from toposcope.checkpoint import load_run
    from toposcope.topography import neighborhood_similarity

    run = _profiled_copy(tiny_run, tiny_corpus, tmp_path, checkpoint="last")
    st = maps_run(run, n_permutations=200, label_permutations=99, plots=False, progress=False)
    on_disk = json.loads((run / "maps" / "stats.json").read_text())
    assert on_disk["checkpoint"] == st["checkpoint"] == "last" and on_disk["label_permutations"] == 99
    assert (run / "maps" / "regions.json").is_file() and not (run / "maps" / "conv1").exists()
    model = load_run(run, "last").model
    for name, L in on_disk["layers"].items():
        # S̄ of the checkpoint the profile was computed from, with the run's neighbourhood (tiny: 3, clip)
        sb = float(neighborhood_similarity(model.weight(name).detach(), model.grids[name], 3, "clip").mean())
        assert L["s_bar"]["observed"] == pytest.approx(sb, abs=1e-6)
        assert set(L["label_null"]) == {"observed", "mean", "sd", "z", "p", "n_permutations"}
        assert set(L["functional_similarity"]) == {"observed", "mean", "sd", "z", "p", "n_permutations"}
        assert -1 <= L["functional_similarity"]["observed"] <= 1 and 0 <= L["share_phone_specific"] <= 1
        assert "s_bar_bn_folded" not in L  # tiny has no BatchNorm
        ps = [g["p_label"] for k, g in L["groups"].items() if k != "sil"]
        assert all(0 < p <= 1 for p in ps) and L["groups"].get("sil", {}).get("p_label") is None
    assert on_disk["neighborhood"] == 3 and on_disk["boundary"] == "clip"


def test_maps_run_refuses_a_checkpoint_other_than_the_profiles(tiny_run, tiny_corpus, tmp_path):
    from toposcope.analysis.maps import MapsError, maps_run

    run = _profiled_copy(tiny_run, tiny_corpus, tmp_path, checkpoint="best")
    with pytest.raises(MapsError, match="computed from the 'best' checkpoint, not 'last'"):
        maps_run(run, checkpoint="last", plots=False, progress=False)
    with pytest.raises(MapsError, match="profiles file not found"):
        maps_run(run, profile="nap-phone", plots=False, progress=False)
    from toposcope.analysis.layouts import LayoutError

    with pytest.raises(LayoutError, match="no 'som' layouts"):
        maps_run(run, layout="som", plots=False, progress=False)


def test_maps_run_uses_the_runs_boundary_and_folds_batchnorm(tmp_path):
    """A run trained with a torus neighbourhood and BatchNorm: S̄ and its null use wrap, and the BN-folded S̄
    is the S̄ of W[c] * gamma_c / sqrt(var_c + eps)."""
    import dataclasses

    import torch

    from toposcope.analysis.maps import maps_run
    from toposcope.checkpoint import save_checkpoint
    from toposcope.config import load_config
    from toposcope.model import Wav2Letter
    from toposcope.topography import neighborhood_similarity

    cfg = load_config("tiny")
    cfg = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, norm="batch"),
                              train=dataclasses.replace(cfg.train, boundary="wrap"))
    torch.manual_seed(0)
    model = Wav2Letter(cfg.model).eval()
    with torch.no_grad():
        for name in model.layer_names:
            bn = model.blocks[name].norm
            bn.weight.copy_(torch.randn(bn.weight.shape))
            bn.running_var.uniform_(0.5, 2.0)
    run = tmp_path / "run"
    save_checkpoint(run / "checkpoints" / "best.pt", {"model": model.state_dict(), "config": cfg.to_dict()})
    prof = _profiles(np.random.default_rng(0))
    grid = model.grids["conv1"]
    lp = prof.layers["conv1"]
    lp = LayerProfile(values=np.tile(lp.values, (1, 3))[:, :grid.size], raw=np.tile(lp.raw, (1, 3))[:, :grid.size],
                      counts=lp.counts, grid=grid)
    Profiles(groups=prof.groups, method="gradnap", grouping="phone", layers={"conv1": lp},
             meta={"checkpoint": "best"}).save(run / "profiles" / "gradnap-phone.npz")
    st = maps_run(run, n_permutations=200, label_permutations=0, plots=False, progress=False)
    L = st["layers"]["conv1"]
    w = model.weight("conv1").detach()
    bn = model.blocks["conv1"].norm
    folded = w * (bn.weight / torch.sqrt(bn.running_var + bn.eps)).detach()[:, None, None]
    assert L["s_bar"]["observed"] == pytest.approx(float(neighborhood_similarity(w, grid, 3, "wrap").mean()), abs=1e-6)
    assert L["s_bar"]["observed"] != pytest.approx(float(neighborhood_similarity(w, grid, 3, "clip").mean()), abs=1e-6)
    assert L["s_bar_bn_folded"]["observed"] == pytest.approx(
        float(neighborhood_similarity(folded, grid, 3, "wrap").mean()), abs=1e-6)
    assert st["boundary"] == "wrap" and L["label_null"] is None and L["functional_similarity"] is None
    assert any("label_permutations = 0" in n for n in st["notes"])


def test_maps_run_under_a_layout_refuses_its_fitting_split_then_labels(tmp_path):
    """A layout fitted on the profile's own split is refused; allowed, every output says so; S̄ is the
    S̄ of the weight in cell order and the maps move with the units."""
    import torch

    from toposcope.analysis.layouts import Layout, LayoutError, layout_path, weight_fingerprint
    from toposcope.analysis.maps import maps_run
    from toposcope.checkpoint import save_checkpoint
    from toposcope.config import load_config
    from toposcope.model import Wav2Letter
    from toposcope.topography import neighborhood_similarity

    cfg = load_config("tiny")
    torch.manual_seed(1)
    model = Wav2Letter(cfg.model).eval()
    run = tmp_path / "run"
    save_checkpoint(run / "checkpoints" / "best.pt", {"model": model.state_dict(), "config": cfg.to_dict()})
    grid = model.grids["conv1"]
    rng = np.random.default_rng(0)
    raw = rng.normal(size=(3, grid.size))
    Profiles(groups=("aa", "s", "sil"), method="gradnap", grouping="phone",
             layers={"conv1": LayerProfile(values=raw - raw.mean(0), raw=raw, counts=np.array([3, 4, 5]), grid=grid)},
             meta={"checkpoint": "best", "split": "test"}).save(run / "profiles" / "gradnap-phone.npz")
    w = model.weight("conv1").detach()
    cell_of_unit = np.arange(grid.size)[::-1].copy()  # unit u at cell C-1-u
    Layout(layer="conv1", method="rev", features="gradnap", grid=grid, cell_of_unit=cell_of_unit, fit_split="test",
           fingerprint=weight_fingerprint(w), checkpoint="best").save(layout_path(run, "conv1", "rev"))
    with pytest.raises(LayoutError, match="fitted on split test"):
        maps_run(run, layout="rev", plots=False, progress=False, label_permutations=0, n_permutations=200)
    st = maps_run(run, layout="rev", allow_fit_split=True, plots=False, progress=False, label_permutations=0,
                  n_permutations=200)
    on_disk = json.loads((run / "maps-rev" / "stats.json").read_text())
    assert on_disk["layout"]["judged_on_fitting_split"] is True and on_disk["layout"]["method"] == "rev"
    assert any("judged on the fitting split" in n for n in on_disk["notes"])
    sb = float(neighborhood_similarity(w.flip(0), grid, 3, "clip").mean())
    assert st["layers"]["conv1"]["s_bar"]["observed"] == pytest.approx(sb, abs=1e-6)
    from toposcope.analysis.stats import morans_i

    moved = grid.to_map((raw[1] - raw.mean(0))[::-1])  # /s/'s map with unit u at cell C-1-u
    regions = json.loads((run / "maps-rev" / "regions.json").read_text())
    assert regions["conv1"]["s"]["filters"] == list(find_region(moved).filters)
    assert on_disk["layers"]["conv1"]["groups"]["s"]["morans_i"] == pytest.approx(float(morans_i(moved)), abs=1e-9)
    assert not (run / "maps" / "stats.json").exists()


def test_cli_maps_wires_the_label_null_options(tmp_path, capsys):
    """`toposcope maps --label-permutations N --seed S` on a run whose profile has per-segment sums: the
    table leads with the phone-specific tests and names Moran's I against positions as smoothness."""
    import torch

    from toposcope.analysis.profiles import SegmentTable, subtract_baseline
    from toposcope.checkpoint import save_checkpoint
    from toposcope.cli import main
    from toposcope.config import load_config
    from toposcope.model import Wav2Letter

    cfg = load_config("tiny")
    torch.manual_seed(0)
    model = Wav2Letter(cfg.model).eval()
    run = tmp_path / "run"
    save_checkpoint(run / "checkpoints" / "best.pt", {"model": model.state_dict(), "config": cfg.to_dict()})
    rng = np.random.default_rng(0)
    groups = ("aa", "s", "t", "sil")
    label = np.array(list(groups) * 30)
    S = len(label)
    seg = SegmentTable(utt=np.array([f"u{i // 8}" for i in range(S)]), speaker=np.array(["a", "b", "c"] * 40),
                       label=label, start=np.zeros(S), end=np.ones(S))
    layers = {}
    for name in model.layer_names:
        grid = model.grids[name]
        counts = rng.integers(1, 5, size=S)
        sums = counts[:, None] * rng.normal(size=(S, grid.size))
        raw = np.stack([sums[label == g].sum(0) / counts[label == g].sum() for g in groups])
        c = np.array([counts[label == g].sum() for g in groups])
        layers[name] = LayerProfile(values=subtract_baseline(raw, c), raw=raw, counts=c, grid=grid, seg_sums=sums,
                                    seg_counts=counts)
    Profiles(groups=groups, method="gradnap", grouping="phone", layers=layers, segments=seg,
             meta={"checkpoint": "best", "split": "test"}).save(run / "profiles" / "gradnap-phone.npz")
    assert main(["maps", str(run), "--no-plots", "--no-progress", "--permutations", "200",
                 "--label-permutations", "99", "--seed", "3"]) == 0
    out = capsys.readouterr().out
    head = out.splitlines()[0]
    assert head.index("phone-specific") < head.index("S̄ (z)") < head.index("smoothness: mean I")
    assert "99 label permutations" in out and "map smoothness, not phoneme grouping" in out
    st = json.loads((run / "maps" / "stats.json").read_text())
    assert st["label_permutations"] == 99 and st["seed"] == 3 and st["checkpoint"] == "best"
    assert st["layers"]["conv1"]["groups"]["s"]["p_label"] is not None
    assert main(["maps", str(run), "--no-plots", "--no-progress", "--label-permutations", "10"]) == 2
    assert "at least 99 label permutations" in capsys.readouterr().err
