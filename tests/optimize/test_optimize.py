"""Optimal inputs (toposcope.optimize): objectives, geometry, transforms, the loop, the data maximum, the CLI."""

from __future__ import annotations

import json
import shutil
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from toposcope.optimize import (FilterActivation, OptimizeConfig, PerSample, RegionActivation, activations,
                                clip_to_range, data_maxima, gaussian_blur, input_geometry, jitter,
                                optimize_inputs, receptive_field, region_objectives, sliding_max_mean)
from toposcope.optimize.run import choose_groups, load_data, optimize_region


def test_objectives_hand_computed():
    a = torch.tensor([[[1., 2., 3., 4.], [0., 0., 2., 2.], [5., 5., 5., 5.]],
                      [[0., 0., 0., 0.], [4., 4., 4., 4.], [1., 1., 1., 1.]]])  # (B=2, C=3, T=4)
    acts = {"conv1": a}
    assert FilterActivation("conv1", 0)(acts).tolist() == [2.5, 0.0]
    assert FilterActivation("conv1", 0)(acts, {"conv1": slice(2, 4)}).tolist() == [3.5, 0.0]
    assert RegionActivation("conv1", [0, 1])(acts).tolist() == [1.75, 2.0]
    combo = 2 * FilterActivation("conv1", 2) - FilterActivation("conv1", 1)
    assert combo(acts).tolist() == [10.0 - 1.0, 2.0 - 4.0]
    assert combo.per_frame(acts)[0].tolist() == [10., 10., 8., 8.]
    ps = PerSample([FilterActivation("conv1", 0), FilterActivation("conv1", 1)])
    assert ps(acts).tolist() == [2.5, 4.0]  # element 0 scored on filter 0, element 1 on filter 1
    objs = region_objectives("conv1", [0, 2])
    assert [type(o).__name__ for o in objs] == ["FilterActivation", "FilterActivation", "RegionActivation"]
    with pytest.raises(ValueError, match="does not exist"):
        FilterActivation("conv1", 3)(acts)
    with pytest.raises(KeyError, match="conv2"):
        FilterActivation("conv2", 0)(acts)
    with pytest.raises(ValueError, match="batch holds 2"):
        PerSample([FilterActivation("conv1", 0)])(acts)


def test_receptive_field_hand_computed_and_valid_frames_ignore_padding(tiny_model):
    # tiny: conv1 k5 s2 p2, conv2 k5 s1 p2 -> R = 5 + 4*2 = 13, J = 2, P = 2 + 2*2 = 6
    assert (receptive_field(tiny_model, "conv1").size, receptive_field(tiny_model, "conv1").jump,
            receptive_field(tiny_model, "conv1").offset) == (5, 2, 2)
    rf = receptive_field(tiny_model, "conv2")
    assert (rf.size, rf.jump, rf.offset) == (13, 2, 6)
    geo = input_geometry(tiny_model, "conv2", 0.5)  # 0.5 s = 50 frames = 25 output frames at stride 2
    assert geo.n_valid == 25 and geo.frames == 13 + 24 * 2
    # Valid frames see neither padding nor outside context: embedding the input in random context
    # (4 frames = 2 strides on the left) leaves them unchanged, while the frames next to them change.
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1, 32, geo.frames, generator=g)
    ctx = torch.cat([torch.randn(1, 32, 4, generator=g), x, torch.randn(1, 32, 6, generator=g)], dim=2)
    a = activations(tiny_model, x, ["conv2"])["conv2"][0]
    b = activations(tiny_model, ctx, ["conv2"])["conv2"][0, :, 2:2 + a.shape[1]]
    v = geo.valid
    assert torch.allclose(a[:, v], b[:, v], atol=1e-5)
    assert not torch.allclose(a[:, v.start - 1], b[:, v.start - 1], atol=1e-5)
    assert not torch.allclose(a[:, v.stop], b[:, v.stop], atol=1e-5)
    assert rf.span(v.start)[0] == 0 and rf.span(v.stop - 1)[1] == geo.frames - 1
    # the optimiser's fast path: the unpadded forward gives exactly the valid frames
    u = activations(tiny_model, x, ["conv2"], unpadded=True)["conv2"][0]
    assert u.shape == a[:, v].shape and torch.allclose(u, a[:, v], atol=1e-6)


def test_transforms_hand_computed():
    x = torch.arange(8.).reshape(1, 2, 4)  # [[0,1,2,3],[4,5,6,7]]
    assert jitter(x, [1])[0].tolist() == [[0., 0., 1., 2.], [4., 4., 5., 6.]]
    assert jitter(x, [-2])[0].tolist() == [[2., 3., 3., 3.], [6., 7., 7., 7.]]
    c = torch.full((2, 5, 7), 3.0)
    assert torch.allclose(gaussian_blur(c, 1.0, 1.0), c)  # constants survive the blur
    spike = torch.zeros(1, 9, 9)
    spike[0, 4, 4] = 1.0
    b = gaussian_blur(spike, 1.0, 1.0)
    assert abs(float(b.sum()) - 1.0) < 1e-5 and float(b.max()) < 0.2 and float(b[0, 4, 4]) == float(b.max())
    z = torch.tensor([[[-5., 0.5], [3., -0.2]]])
    clip_to_range(z, torch.tensor([-1., 0.]), torch.tensor([1., 2.]))
    assert z.tolist() == [[[-1., 0.5], [2., 0.]]]
    assert sliding_max_mean(torch.tensor([1., 5., 1., 4., 4.]), 2) == (4.0, 3)
    assert sliding_max_mean(torch.tensor([1., 5.]), 3) == (float("-inf"), -1)


def test_objective_falls_and_run_is_deterministic(tiny_model):
    layer = "conv2"
    g = tiny_model.grids[layer]
    filters = [g.index(r, c) for r in range(2, 5) for c in range(2, 5)]
    obj = PerSample(region_objectives(layer, filters))
    cfg = OptimizeConfig.unconstrained(steps=12, seed=3)  # the pixel-space loop (natural: the next test)
    r = optimize_inputs(tiny_model, obj, batch=10, frames=40, config=cfg)
    assert r.inputs.shape == (10, 32, 40) and r.losses.shape == (12, 10)
    assert float(r.losses[-1].mean()) < float(r.losses[0].mean()) - 0.1  # the minimised loss falls
    assert bool((r.values > r.objective[0]).all())  # every target rose from its first step
    assert all(p.requires_grad for p in tiny_model.parameters())  # model restored
    r2 = optimize_inputs(tiny_model, obj, batch=10, frames=40, config=cfg)
    assert torch.equal(r.inputs, r2.inputs) and torch.equal(r.values, r2.values)
    r3 = optimize_inputs(tiny_model, obj, batch=10, frames=40, config=OptimizeConfig.unconstrained(steps=12, seed=4))
    assert not torch.equal(r.inputs, r3.inputs)


def test_natural_objective_rises_deterministic_and_needs_a_range(tiny_model):
    layer = "conv2"
    g = tiny_model.grids[layer]
    filters = [g.index(r, c) for r in range(2, 5) for c in range(2, 5)]
    obj = PerSample(region_objectives(layer, filters))
    lo, hi = -2.0 * torch.ones(32), 1.5 * torch.ones(32)
    cfg = OptimizeConfig(steps=12, seed=3)
    assert cfg.natural and not OptimizeConfig.unconstrained().natural
    r = optimize_inputs(tiny_model, obj, batch=10, frames=40, config=cfg, data_range=(lo, hi))
    assert float(r.losses[-1].mean()) < float(r.losses[0].mean()) - 0.1
    assert bool((r.values > r.objective[0]).all())
    r2 = optimize_inputs(tiny_model, obj, batch=10, frames=40, config=cfg, data_range=(lo, hi))
    assert torch.equal(r.inputs, r2.inputs) and torch.equal(r.values, r2.values)
    # continuing from a result starts where it stopped (the inverse of the parameterisation)
    r3 = optimize_inputs(tiny_model, obj, batch=10, frames=40, config=OptimizeConfig(steps=0), data_range=(lo, hi),
                         init=r.inputs)
    assert torch.allclose(r3.inputs, r.inputs, atol=1e-3)
    with pytest.raises(ValueError, match="natural optimal inputs need data_range"):
        optimize_inputs(tiny_model, obj, batch=10, frames=40, config=cfg)


def test_data_range_clip_holds(tiny_model):
    lo, hi = -torch.ones(32) * 0.5, torch.ones(32) * torch.linspace(0.1, 1.0, 32)
    for cfg in (OptimizeConfig(steps=5), OptimizeConfig.unconstrained(steps=5)):
        r = optimize_inputs(tiny_model, PerSample([FilterActivation("conv1", 0), FilterActivation("conv1", 1)]),
                            batch=2, frames=20, config=cfg, data_range=(lo, hi))
        assert bool((r.inputs >= lo[:, None]).all()) and bool((r.inputs <= hi[:, None]).all())


@pytest.mark.parametrize("seed", range(6))
def test_natural_inputs_stay_in_range_property(tiny_model, seed):
    """Whatever the range, target, length, lr or spectrum: every bin of a natural input lies in its band's range."""
    from toposcope.optimize.data_max import naturalness

    g = torch.Generator().manual_seed(seed)
    lo = -0.2 - 3 * torch.rand(32, generator=g)
    hi = lo + 0.05 + 4 * torch.rand(32, generator=g)
    layer = ("conv1", "conv2")[seed % 2]
    filt = int(torch.randint(0, 64, (1,), generator=g))
    frames = int(torch.randint(14, 60, (1,), generator=g))
    cfg = OptimizeConfig(steps=15, lr=float(10 ** (-2 + 1.5 * torch.rand(1, generator=g))), seed=seed,
                         decay=float(3 * torch.rand(1, generator=g)), tv=float(torch.rand(1, generator=g)),
                         saturation=float(torch.rand(1, generator=g)))
    r = optimize_inputs(tiny_model, PerSample([FilterActivation(layer, filt), RegionActivation(layer, sorted({filt, 62, 63}))]),
                        batch=2, frames=frames, config=cfg, data_range=(lo, hi))
    assert bool((r.inputs >= lo[:, None] - 1e-6).all()) and bool((r.inputs <= hi[:, None] + 1e-6).all())
    assert naturalness(r.inputs, lo, hi).tolist() == [1.0, 1.0]
    out = r.inputs.clone()
    out[0, 3, :5] = hi[3] + 1.0  # 5 of 32 * frames bins pushed out: naturalness drops by exactly that share
    assert float(naturalness(out, lo, hi)[0]) == pytest.approx(1 - 5 / (32 * frames))


def test_band_percentiles_match_exact_quantiles():
    from toposcope.optimize.data_max import BandHistogram, feature_stats

    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 20000, generator=g) * torch.tensor([[1.0], [2.0], [0.5]]) + torch.tensor([[0.0], [1.0], [-1.0]])
    h = BandHistogram(3)
    h.update(x[:, :7000])
    h.update(x[:, 7000:])
    for q in (0.005, 0.5, 0.995):
        assert torch.allclose(h.quantile(q), torch.quantile(x, q, dim=1), atol=0.01)
    raws = [torch.randn(4, 4000, generator=g) * 3 + 7 for _ in range(5)]
    st = feature_stats(raws)
    from toposcope.features import normalize

    allx = torch.cat([normalize(r) for r in raws], dim=1)
    assert torch.allclose(st.p_lo, torch.quantile(allx, 0.005, dim=1), atol=0.01)
    assert torch.allclose(st.p_hi, torch.quantile(allx, 0.995, dim=1), atol=0.01)
    assert bool((st.lo <= st.p_lo).all()) and bool((st.p_hi <= st.hi).all())


def test_data_maxima_match_brute_force(tiny_model):
    g = torch.Generator().manual_seed(0)
    feats = [("a", torch.randn(32, 60, generator=g)), ("b", torch.randn(32, 45, generator=g))]
    objs = [FilterActivation("conv2", 5), RegionActivation("conv2", [1, 2, 3])]
    dm = data_maxima(tiny_model, feats, objs, [4, 4])
    rf = receptive_field(tiny_model, "conv2")
    best = [-np.inf, -np.inf]
    for uid, f in feats:
        a = activations(tiny_model, f[None], ["conv2"])["conv2"][0]
        v = rf.valid_frames(f.shape[1], a.shape[1])
        for k, series in enumerate([a[5], a[[1, 2, 3]].mean(0)]):
            for s in range(v.start, v.stop - 3):
                best[k] = max(best[k], float(series[s:s + 4].mean()))
    assert np.allclose(dm.values, best, rtol=1e-5)
    assert dm.utterances == 2 and dm.where[0][0] in ("a", "b")


def test_choose_groups_prefers_distinct_maps_and_skips_sil():
    rng = np.random.default_rng(0)
    base = rng.normal(size=16)
    maps = {"aa": base + 0.1 * rng.normal(size=16), "ae": base + 0.1 * rng.normal(size=16),
            "ah": base + 0.1 * rng.normal(size=16), "s": rng.normal(size=16), "sil": rng.normal(size=16),
            "zh": rng.normal(size=16)}
    groups = tuple(maps)
    values = np.stack([maps[k] for k in groups])
    counts = np.array([100, 100, 100, 100, 100, 3])  # zh: too few frames to trust
    lp = SimpleNamespace(values=values, counts=counts)
    prof = SimpleNamespace(groups=groups, layers={"conv1": lp}, layer_names=("conv1",))
    chosen = [g for g, _ in choose_groups(prof, 2)]
    assert chosen[0] == "s" and "sil" not in chosen and "zh" not in chosen


def test_optimised_input_exceeds_data_max_on_trained_model(tiny_run, tiny_corpus):
    from toposcope.checkpoint import load_run

    run = load_run(tiny_run)
    model, fcfg = run.model, run.config.model.features
    feats, stats = load_data(tiny_corpus, fcfg, split="train", max_utterances=12)
    layer = "conv2"
    g = model.grids[layer]
    filters = [g.index(r, c) for r in range(3, 6) for c in range(3, 6)]
    geo = input_geometry(model, layer, 0.5)
    objs = region_objectives(layer, filters)
    dm = data_maxima(model, feats, objs, [geo.n_valid] * len(objs))
    assert all(np.isfinite(dm.values))
    r = optimize_region(model, layer, filters, config=OptimizeConfig.unconstrained(steps=60), frames=geo.frames,
                        data_range=(stats.lo, stats.hi), data_max=dm.values, retries=1)
    assert r["values"].shape == (10,)
    assert bool((r["values"] > torch.tensor(dm.values)).all()), (r["values"], dm.values)
    assert bool((r["inputs"] >= stats.lo[:, None] - 1e-6).all()) and bool((r["inputs"] <= stats.hi[:, None] + 1e-6).all())
    # natural inputs: inside the 0.5-99.5 percentile range of every band and still above the best real window
    from toposcope.optimize.data_max import naturalness

    r = optimize_region(model, layer, filters, config=OptimizeConfig(steps=60), frames=geo.frames,
                        data_range=(stats.p_lo, stats.p_hi), data_max=dm.values, retries=1)
    assert bool((r["values"] > torch.tensor(dm.values)).all()), (r["values"], dm.values)
    assert bool((naturalness(r["inputs"], stats.p_lo, stats.p_hi) >= 0.95).all())
    assert all(f >= w for f, w in zip(dm.frame_values, dm.values))  # a frame peak is at least any window mean


def test_cli_writes_region_outputs(tiny_run, tiny_corpus, tmp_path):
    from toposcope.cli import main

    run = tmp_path / "run"
    shutil.copytree(tiny_run / "checkpoints", run / "checkpoints")
    shutil.copy(tiny_run / "config.toml", run / "config.toml")
    filters = [9, 10, 11, 17, 18, 19, 25, 26, 27]  # conv1 8x8 grid, block around (2, 2)
    (run / "maps").mkdir()
    (run / "maps" / "regions.json").write_text(json.dumps(
        {"conv1": {"aa": {"center": [2, 2], "filters": filters, "value": 0.5}}}))
    rc = main(["optimize", str(run), "--layer", "conv1", "--group", "aa", "--steps", "60", "--data",
               str(tiny_corpus.root), "--max-utterances", "8", "--no-progress"])
    out = run / "optimal" / "conv1" / "aa"
    s = json.loads((out / "summary.json").read_text())
    assert rc == (0 if s["all_exceed"] else 1)
    assert [t["name"] for t in s["targets"]] == [f"filter_{i}" for i in filters] + ["joint"]
    for t in s["targets"]:
        x = np.load(out / f"{t['name']}.npy")
        assert x.shape == (32, s["input"]["frames"]) and np.isfinite(x).all()
        assert (out / f"{t['name']}.wav").stat().st_size > 1000
        assert t["exceeds"] == (t["activation"] > t["data_max"])
        assert t["data_max_window"] == t["data_max"] and t["data_max_frame"]["value"] >= t["data_max_window"]
        assert t["n_utterances_searched"] == 8 and t["naturalness"] >= 0.95
    assert s["targets"][0]["position"] == [1, 1]
    assert (out / "region.png").stat().st_size > 10000
    assert json.loads((run / "optimal" / "summary.json").read_text())["groups"] == ["aa"]
    assert main(["optimize", str(run), "--layer", "conv9", "--data", str(tiny_corpus.root)]) == 2  # clear error


def test_unpadded_fast_path_and_receptive_field_with_a_frontend():
    """With the 2-D front end (time kernel 5) the receptive field grows by 4 frames, and the unpadded forward
    still gives exactly the padded forward's valid frames (the optimiser's fast path)."""
    from helpers import random_tiny_model
    from toposcope.config import FrontendConfig

    m = random_tiny_model("batch", 0, FrontendConfig(channels=3, kernel=(3, 5), pool=4))
    rf = receptive_field(m, "conv2")
    assert (rf.size, rf.jump, rf.offset) == (17, 2, 8)  # 5 + 4 + 4*2; offset 2 + 2 + 2*2
    geo = input_geometry(m, "conv2", 0.5)
    x = torch.randn(1, 32, geo.frames, generator=torch.Generator().manual_seed(1))
    a = activations(m, x, ["conv2"])["conv2"][0]
    u = activations(m, x, ["conv2"], unpadded=True)["conv2"][0]
    assert u.shape == a[:, geo.valid].shape and torch.allclose(u, a[:, geo.valid], atol=1e-5)


def test_redirected_relus_cover_the_frontend_and_are_restored():
    from helpers import random_tiny_model
    from toposcope.config import FrontendConfig
    from toposcope.optimize.render import RedirectedReLU, redirected_relus

    m = random_tiny_model("none", 0, FrontendConfig(channels=2, kernel=(3, 3), pool=4))
    with redirected_relus(m, "conv1"):
        assert isinstance(m.frontend.act, RedirectedReLU) and isinstance(m.blocks["conv1"].act, RedirectedReLU)
        assert isinstance(m.blocks["conv2"].act, torch.nn.ReLU)
    assert type(m.frontend.act) is torch.nn.ReLU and type(m.blocks["conv1"].act) is torch.nn.ReLU
