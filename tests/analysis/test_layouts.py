"""Post-hoc layouts (toposcope.analysis.layouts): fitting, files, applying, checks."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from toposcope.analysis.layouts import (Layout, LayoutConfig, LayoutError, apply_layout, check_fit_split, fit_cells,
                                        fit_layout, identity_layout, layer_fingerprint, layout_path, layout_run,
                                        load_layouts, trustworthiness)
from toposcope.analysis.profiles import LayerProfile, Profiles, compute_profiles
from toposcope.grid import Grid


# ---------------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------------
def latent_units(n: int, groups: int = 40, seed: int = 0, nonlinear: bool = True):
    """``n`` units whose profiles are a smooth (nonlinear) function of a known 2D latent ``z (n, 2)``."""
    rng = np.random.default_rng(seed)
    z = rng.uniform(0, 1, (n, 2))
    A = rng.normal(0, 3, (2, groups))
    b = rng.uniform(0, 2 * np.pi, groups)
    X = np.sin(z @ A + b) if nonlinear else z @ A
    return z, X + 0.05 * rng.normal(size=X.shape)


def make_profiles(values: np.ndarray, grid: Grid, split: str = "train", layer: str = "conv1",
                  checkpoint: str = "best") -> Profiles:
    """Profiles of one layer whose ``values (G, C)`` are given; per-unit side arrays derived from them."""
    G, C = values.shape
    raw = values + 1.0
    lp = LayerProfile(values=values, raw=raw, counts=np.arange(1, G + 1), grid=grid,
                      epochs=np.stack([values, 2 * values, 3 * values], axis=2), epoch_counts=np.ones((G, 3), int),
                      seg_sums=np.concatenate([raw, 2 * raw]), seg_counts=np.ones(2 * G, int),
                      gram=raw.T @ raw, act_sum=raw.sum(0), act_count=G)
    return Profiles(groups=tuple(f"g{i}" for i in range(G)), method="gradnap", grouping="phone",
                    layers={layer: lp}, meta={"split": split, "checkpoint": checkpoint})


def symmetries(m: np.ndarray) -> list[np.ndarray]:
    """The grid's own symmetries of a ``(..., rows, cols)`` map: flips, rotations (and transposition if square)."""
    out = [m, m[..., ::-1, :], m[..., :, ::-1], m[..., ::-1, ::-1]]
    if m.shape[-1] == m.shape[-2]:
        t = np.swapaxes(m, -1, -2)
        out += [t, t[..., ::-1, :], t[..., :, ::-1], t[..., ::-1, ::-1]]
    return out


def same_up_to_symmetry(a: np.ndarray, b: np.ndarray, **tol) -> bool:
    return any(s.shape == b.shape and np.allclose(s, b, **tol) for s in symmetries(a))


def positions(cells: np.ndarray, grid: Grid) -> np.ndarray:
    return np.stack([cells // grid.cols, cells % grid.cols], axis=1)


# ---------------------------------------------------------------------------------------------------
# trustworthiness
# ---------------------------------------------------------------------------------------------------
def test_trustworthiness_hand_computed():
    x = np.array([0.0, 1, 3, 6, 10, 15])[:, None]
    # swap the two end points: intruders are point 4 for point 0 (rank 4 in X), point 5 for point 1
    # (rank 5) and point 1 for point 5 (rank 4): penalties 3 + 4 + 3 = 10; 2 / (n k (2n - 3k - 1)) = 1/24
    y = np.array([15.0, 1, 3, 6, 10, 0])[:, None]
    assert trustworthiness(x, y, k=1) == pytest.approx(1 - 10 / 24)
    assert trustworthiness(x, x, k=2) == pytest.approx(1.0)
    rng = np.random.default_rng(0)
    z = rng.normal(size=(200, 2))
    assert trustworthiness(z, rng.normal(size=(200, 2)), k=5) < 0.65  # an unrelated embedding
    with pytest.raises(ValueError, match="k must be"):
        trustworthiness(x, y, k=3)


# ---------------------------------------------------------------------------------------------------
# fitting
# ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("method", ["som", "assign"])
@pytest.mark.parametrize("grid", [Grid(16, 16), Grid(8, 32)])
def test_layout_recovers_a_known_2d_latent(method, grid):
    z, X = latent_units(grid.size, nonlinear=True, seed=1)
    cells = fit_cells(X, grid, LayoutConfig(method=method, seed=0))
    assert np.array_equal(np.sort(cells), np.arange(grid.size))  # a permutation: one unit per cell
    t = trustworthiness(z, positions(cells, grid), k=5)
    assert t >= 0.9, f"{method} on {grid}: trustworthiness {t:.3f}"
    # the same units at random cells are not trustworthy: the check can fail
    t0 = trustworthiness(z, positions(np.random.default_rng(0).permutation(grid.size), grid), k=5)
    assert t0 < 0.7


def test_pca_embedding_recovers_a_linear_latent():
    grid = Grid(16, 16)
    z, X = latent_units(grid.size, nonlinear=False, seed=1)
    cells = fit_cells(X, grid, LayoutConfig(method="assign", embedding="pca"))
    assert trustworthiness(z, positions(cells, grid), k=5) >= 0.9


def test_fit_is_deterministic_under_seed_and_seed_matters():
    _, X = latent_units(64, seed=2)
    a = fit_cells(X, Grid(8, 8), LayoutConfig(method="som", seed=3))
    b = fit_cells(X, Grid(8, 8), LayoutConfig(method="som", seed=3))
    c = fit_cells(X, Grid(8, 8), LayoutConfig(method="som", seed=4, som_iterations=300))
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


@pytest.mark.parametrize("method", ["som", "assign"])
def test_shuffled_units_give_the_same_maps(method):
    """Profiles of the same units in another order: the laid-out maps are equal (up to grid symmetries)."""
    grid = Grid(8, 8)
    _, X = latent_units(64, groups=12, seed=5)
    prof = make_profiles(X.T.copy(), grid)
    perm = np.random.default_rng(7).permutation(64)
    shuffled = make_profiles(X.T[:, perm].copy(), grid)
    cfg = LayoutConfig(method=method, seed=0)
    m1 = apply_layout(prof, [fit_layout(prof, "conv1", cfg)])["conv1"]
    m2 = apply_layout(shuffled, [fit_layout(shuffled, "conv1", cfg)])["conv1"]
    for which in ("values", "raw"):
        assert same_up_to_symmetry(m1.maps(which), m2.maps(which), rtol=1e-9, atol=1e-12)
    # without the layout the two orders give different maps: the property is not trivial
    assert not same_up_to_symmetry(prof["conv1"].maps(), shuffled["conv1"].maps())


def _permute_channels(model, layer: str, nxt: str, perm: np.ndarray) -> None:
    p = torch.as_tensor(perm)
    with torch.no_grad():
        conv = model.conv(layer)
        conv.weight.copy_(conv.weight[p])
        conv.bias.copy_(conv.bias[p])
        nconv = model.conv(nxt)
        nconv.weight.copy_(nconv.weight[:, p])


def test_shuffling_a_models_units_gives_the_same_layout_maps(tiny_corpus):
    """A model whose conv2 units are permuted computes the same function; its layout maps match."""
    from toposcope.config import load_config
    from toposcope.model import Wav2Letter

    torch.manual_seed(0)
    model = Wav2Letter(load_config("tiny").model).eval()
    shuffled = Wav2Letter(load_config("tiny").model).eval()
    shuffled.load_state_dict(model.state_dict())
    _permute_channels(shuffled, "conv2", "conv3", np.random.default_rng(1).permutation(64))
    utts = tiny_corpus.split("train")[:6]
    kw = dict(features=model.cfg.features, layers=["conv2"], progress=False, meta={"split": "train"})
    p1 = compute_profiles(model, tiny_corpus, utts, **kw)
    p2 = compute_profiles(shuffled, tiny_corpus, utts, **kw)
    assert not np.allclose(p1["conv2"].values, p2["conv2"].values)
    for method, features in (("som", "gradnap"), ("assign", "gradnap"), ("som", "activations")):
        cfg = LayoutConfig(method=method, features=features, seed=0)
        m1 = apply_layout(p1, [fit_layout(p1, "conv2", cfg)])["conv2"].maps()
        m2 = apply_layout(p2, [fit_layout(p2, "conv2", cfg)])["conv2"].maps()
        scale = np.abs(m1).max()
        assert same_up_to_symmetry(m1, m2, rtol=1e-4, atol=1e-5 * scale), (method, features)


# ---------------------------------------------------------------------------------------------------
# applying
# ---------------------------------------------------------------------------------------------------
def test_apply_layout_moves_every_per_unit_axis_by_hand():
    values = np.array([[1.0, 2.0, 3.0, 4.0], [10.0, 20.0, 30.0, 40.0]])
    prof = make_profiles(values, Grid(2, 2))
    lay = Layout(layer="conv1", method="som", features="gradnap", grid=Grid(2, 2),
                 cell_of_unit=np.array([2, 0, 3, 1]), fit_split="train")
    out = apply_layout(prof, {"conv1": lay})
    lp, old = out["conv1"], prof["conv1"]
    # cell 0 <- unit 1, cell 1 <- unit 3, cell 2 <- unit 0, cell 3 <- unit 2
    assert out.map("conv1", "g0").tolist() == [[2.0, 4.0], [1.0, 3.0]]
    assert lp.values[1].tolist() == [20.0, 40.0, 10.0, 30.0]
    order = [1, 3, 0, 2]
    assert np.array_equal(lp.raw, old.raw[:, order])
    assert np.array_equal(lp.epochs, old.epochs[:, order, :])
    assert np.array_equal(lp.seg_sums, old.seg_sums[:, order])
    assert np.array_equal(lp.gram, old.gram[np.ix_(order, order)])
    assert np.array_equal(lp.act_sum, old.act_sum[order])
    assert np.array_equal(lp.counts, old.counts) and lp.act_count == old.act_count
    assert out.meta["layout"]["conv1"]["fit_split"] == "train"
    assert np.array_equal(prof["conv1"].values, values)  # the input is not modified
    w = torch.arange(8.0).reshape(4, 2)
    assert lay.permute_weight(w)[:, 0].tolist() == [2.0, 6.0, 0.0, 4.0]


def test_apply_layout_can_change_the_grid_shape():
    values = np.arange(8.0)[None, :]
    prof = make_profiles(values, Grid(4, 2))
    lay = Layout(layer="conv1", method="assign", features="gradnap", grid=(2, 4), cell_of_unit=np.arange(8)[::-1],
                 fit_split="train")
    out = apply_layout(prof, [lay])
    assert out["conv1"].grid == Grid(2, 4)
    assert out.map("conv1", "g0").tolist() == [[7, 6, 5, 4], [3, 2, 1, 0]]


def test_identity_layout_changes_nothing():
    _, X = latent_units(16, groups=5)
    prof = make_profiles(X.T.copy(), Grid(4, 4))
    out = apply_layout(prof, [identity_layout("conv1", Grid(4, 4))])
    assert np.array_equal(out["conv1"].values, prof["conv1"].values)


# ---------------------------------------------------------------------------------------------------
# bad input
# ---------------------------------------------------------------------------------------------------
def test_bad_input_gives_clear_errors():
    _, X = latent_units(20, groups=6)
    prof = make_profiles(X.T.copy(), Grid(5, 4))
    with pytest.raises(LayoutError, match="no layer 'conv9'.*conv1"):
        fit_layout(prof, "conv9")
    with pytest.raises(LayoutError, match="too small for 20 units"):
        fit_cells(X, Grid(4, 4))
    with pytest.raises(LayoutError, match="too small for 20 units"):
        fit_layout(prof, "conv1", grid=(3, 3))
    with pytest.raises(LayoutError, match="25 cells for 20 units"):
        fit_cells(X, Grid(5, 5))
    with pytest.raises(LayoutError, match="method must be one of som, assign"):
        LayoutConfig(method="umap")
    with pytest.raises(LayoutError, match="not a permutation"):
        Layout(layer="conv1", method="som", features="gradnap", grid=Grid(2, 2), cell_of_unit=[0, 0, 1, 2],
               fit_split="train")
    lay16 = identity_layout("conv1", Grid(4, 4))
    with pytest.raises(LayoutError, match="places 16 units; the profile's layer has 20"):
        apply_layout(prof, [lay16])
    with pytest.raises(LayoutError, match="no such layer"):
        apply_layout(prof, [identity_layout("conv2", Grid(5, 4))])
    last = Layout(layer="conv1", method="som", features="gradnap", grid=Grid(5, 4), cell_of_unit=np.arange(20),
                  fit_split="train", checkpoint="last")
    with pytest.raises(LayoutError, match="'last' checkpoint"):
        apply_layout(prof, [last])
    with pytest.raises(LayoutError, match="activation Gram|Gram matrix"):
        no_gram = make_profiles(X.T.copy(), Grid(5, 4))
        no_gram.layers["conv1"].gram = None
        fit_layout(no_gram, "conv1", LayoutConfig(features="activations"))


def test_fit_split_is_enforced():
    _, X = latent_units(16, groups=5)
    lay = fit_layout(make_profiles(X.T.copy(), Grid(4, 4), split="train"), "conv1", LayoutConfig(method="assign"))
    assert lay.fit_split == "train"
    judged_test = make_profiles(X.T.copy(), Grid(4, 4), split="test")
    judged_train = make_profiles(X.T.copy(), Grid(4, 4), split="train")
    judged_all = make_profiles(X.T.copy(), Grid(4, 4), split="all")
    assert check_fit_split([lay], judged_test) is False
    for p in (judged_train, judged_all):
        with pytest.raises(LayoutError, match="fitted on split train.*smooth by construction"):
            check_fit_split({"conv1": lay}, p)
        assert check_fit_split([lay], p, allow_fit_split=True) is True


def test_layout_file_roundtrip_and_bad_files(tmp_path):
    _, X = latent_units(16, groups=5)
    lay = fit_layout(make_profiles(X.T.copy(), Grid(4, 4)), "conv1", LayoutConfig(method="som"), fingerprint="w:abc")
    path = lay.save(layout_path(tmp_path, "conv1", "som"))
    d = json.loads(path.read_text())
    assert {"layer", "method", "features", "grid", "cell_of_unit", "fit_split"} <= set(d)
    assert d["grid"] == [4, 4] and sorted(d["cell_of_unit"]) == list(range(16)) and d["fit_split"] == "train"
    back = load_layouts(tmp_path, "som", verify=False)["conv1"]
    assert np.array_equal(back.cell_of_unit, lay.cell_of_unit) and back.grid == lay.grid
    assert back.quality["trustworthiness"] == pytest.approx(lay.quality["trustworthiness"])
    with pytest.raises(LayoutError, match="no 'assign' layouts.*methods there: som"):
        load_layouts(tmp_path, "assign")
    with pytest.raises(LayoutError, match="no 'som' layout for layer.*conv2"):
        load_layouts(tmp_path, "som", layers=["conv2"], verify=False)
    d["grid"] = [3, 3]
    path.write_text(json.dumps(d))
    with pytest.raises(LayoutError, match=r"conv1-som\.json.*too small for 16 units"):
        load_layouts(tmp_path, "som", verify=False)
    path.write_text("{not json")
    with pytest.raises(LayoutError, match=r"conv1-som\.json.*not valid JSON"):
        load_layouts(tmp_path, "som", verify=False)


def test_a_layout_of_another_model_is_refused(tmp_path):
    from toposcope.config import load_config
    from toposcope.model import Wav2Letter

    torch.manual_seed(0)
    a = Wav2Letter(load_config("tiny").model)
    b = Wav2Letter(load_config("tiny").model)
    _, X = latent_units(64, groups=5)
    prof = make_profiles(X.T.copy(), Grid(8, 8), layer="conv2")
    lay = fit_layout(prof, "conv2", LayoutConfig(method="assign"), fingerprint=layer_fingerprint(a, "conv2"))
    lay.save(layout_path(tmp_path, "conv2", "assign"))
    assert load_layouts(tmp_path, "assign", model=a)["conv2"].fingerprint == lay.fingerprint
    with pytest.raises(LayoutError, match="another model or checkpoint"):
        load_layouts(tmp_path, "assign", model=b)
    with pytest.raises(LayoutError, match="another model or checkpoint"):
        lay.permute_weight(b.weight("conv2"))
    assert lay.permute_weight(a.weight("conv2")).shape == a.weight("conv2").shape


# ---------------------------------------------------------------------------------------------------
# the run-folder entry point
# ---------------------------------------------------------------------------------------------------
def test_layout_run_writes_the_contract_files(tiny_run, tiny_corpus, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run, ignore=shutil.ignore_patterns("profiles", "layouts", "maps*"))
    out = layout_run(run, tiny_corpus.root, layer="all", method="assign", fit_split="train", seed=0, progress=False)
    assert set(out) == {"conv1", "conv2", "conv3"}
    z = np.load(run / "profiles" / "gradnap-phone-train.npz")  # the fit's profile, without per-segment sums
    assert "conv1.values" in z.files and not any(k.endswith(".seg_sums") or k.startswith("segments.") for k in z.files)
    for n, lay in out.items():
        d = json.loads(layout_path(run, n, "assign").read_text())
        rows, cols = d["grid"]
        assert d["layer"] == n and d["method"] == "assign" and d["features"] == "gradnap"
        assert d["fit_split"] == "train" and sorted(d["cell_of_unit"]) == list(range(rows * cols))
        assert d["fingerprint"].startswith("w:") and d["checkpoint"] == "best"
    # verified against the run's own checkpoint; deterministic; the profile is reused
    again = layout_run(run, None, layer="conv2", method="assign", fit_split="train", progress=False)
    assert np.array_equal(again["conv2"].cell_of_unit, out["conv2"].cell_of_unit)
    loaded = load_layouts(run, "assign")
    assert set(loaded) == {"conv1", "conv2", "conv3"}
    som = layout_run(run, None, layer="conv1", method="som", features="activations", progress=False)
    assert som["conv1"].features == "activations"
    with pytest.raises(LayoutError, match="no layer 'conv7'"):
        layout_run(run, None, layer="conv7", progress=False)
    with pytest.raises(LayoutError, match="pass the corpus"):
        layout_run(run, None, layer="conv1", fit_split="valid", progress=False)


def test_layout_command(tiny_run, tiny_corpus, tmp_path, capsys):
    from toposcope.cli import main

    run = tmp_path / "run"
    shutil.copytree(tiny_run, run, ignore=shutil.ignore_patterns("profiles", "layouts", "maps*"))
    assert main(["layout", str(run), "--layer", "conv3", "--method", "som", "--grid", "4x8", "--data",
                 str(tiny_corpus.root), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "conv3: 32 units on 4x8 (som, gradnap, fitted on train" in out
    d = json.loads(layout_path(run, "conv3", "som").read_text())
    assert d["grid"] == [4, 8] and sorted(d["cell_of_unit"]) == list(range(32))
    assert main(["layout", str(run), "--layer", "conv3", "--grid", "3x8", "--no-progress"]) == 2
    assert "grid 3x8 too small for 32 units" in capsys.readouterr().err
    assert main(["layout", str(run), "--layer", "fc", "--no-progress"]) == 2
    assert "no layer 'fc'" in capsys.readouterr().err


def test_maps_of_a_layout_are_judged_on_another_split(tiny_run, tiny_corpus, tmp_path):
    """End to end: fit on train, profile test, maps under the layout; judging on train needs the flag."""
    from toposcope.analysis.maps import maps_run
    from toposcope.analysis.profiles import load_profiles, profile_run

    run = tmp_path / "run"
    shutil.copytree(tiny_run, run, ignore=shutil.ignore_patterns("profiles", "layouts", "maps*"))
    lays = layout_run(run, tiny_corpus.root, layer="conv2", method="som", fit_split="train", progress=False)
    profile_run(run, tiny_corpus.root, split="test", progress=False)
    kw = dict(n_permutations=200, label_permutations=0, plots=False, progress=False)
    st = maps_run(run, layout="som", **kw)
    assert st["layout"]["judged_on_fitting_split"] is False and st["layout"]["fit_split"] == ["train"]
    test_prof = load_profiles(run / "profiles" / "gradnap-phone.npz")
    laid = apply_layout(test_prof, lays)
    regions = json.loads((run / "maps-som" / "regions.json").read_text())
    assert "conv2" in json.dumps(regions) and laid["conv2"].grid == lays["conv2"].grid
    with pytest.raises(ValueError, match="smooth by construction"):
        maps_run(run, profile="gradnap-phone-train", layout="som", **kw)
    st = maps_run(run, profile="gradnap-phone-train", layout="som", allow_fit_split=True, **kw)
    assert st["layout"]["judged_on_fitting_split"] is True
    assert any("judged on the fitting split" in n for n in st["notes"])


def test_region_cells_map_back_to_units():
    from toposcope.analysis.layouts import region_in_units
    from toposcope.analysis.maps import find_region

    values = np.arange(16.0)[None, :]  # unit u responds u
    prof = make_profiles(values, Grid(4, 4))
    lay = Layout(layer="conv1", method="som", features="gradnap", grid=Grid(4, 4),
                 cell_of_unit=np.random.default_rng(3).permutation(16), fit_split="train")
    laid = apply_layout(prof, [lay])
    reg = find_region(laid.map("conv1", "g0"))
    r = region_in_units({"center": reg.center, "filters": reg.filters}, lay)
    # the units at the region's cells are the units whose values the laid-out map shows there
    assert [int(values[0, u]) for u in r["filters"]] == [int(laid["conv1"].values[0, c]) for c in r["cells"]]
    assert r["cells"] == list(reg.filters) and r["filters"] != r["cells"]
    with pytest.raises(LayoutError, match="outside"):
        region_in_units({"filters": [16]}, lay)
