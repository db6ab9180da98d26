"""``toposcope optimize`` orchestration for a run directory (docs/method.md § Optimal inputs, seed §3 / Fig. 1B bottom).

For each chosen group (phone) and layer, the most responsive region from ``RUN/maps/regions.json``
gets ``len(region) + 1`` optimal inputs, optimised together as one batch: one per region filter
(single-filter) and one for the whole region (joint). Written to ``RUN/optimal/<layer>/<group>/``::

    filter_<i>.npy     (n_mels, T) normalised log-mel input maximising filter i's mean activation
    joint.npy          (n_mels, T) input maximising the region's joint (mean) activation
    filter_<i>.wav     audio of each (de-normalised, mel inversion + Griffin-Lim)
    joint.wav
    region.png         single-filter inputs laid out like the region + the joint one
    summary.json       per target: activation reached, naturalness (share of bins inside the natural range),
                       data_max_window (best real window of the input's length; alias data_max, and where),
                       data_max_frame (largest single real frame, and where), n_utterances_searched,
                       exceeds (activation > data_max_window), natural_and_exceeds (and naturalness >= 0.95)

plus ``RUN/optimal/summary.json`` (every layer/group) and ``RUN/optimal/feature_stats.json`` (the
clip range and the de-normalisation statistics used).

**Natural (default) or unconstrained.** ``config.natural`` optimises in the natural range (per band
0.5-99.5 percentile of real normalised log-mel, from the same utterances; :mod:`.param`), with the
loss's objective divided by each target's ``data_max_window`` so the regularisers weigh alike for weak
and strong filters; ``OptimizeConfig.unconstrained()`` is the earlier pixel-space optimum clipped to
the data's min/max. ``share_natural_and_exceeds`` in the overall summary is the share of targets that
are natural (>= 0.95 of bins in range) and above their best real window (the issue 13 target).

**Sanity (enforced):** every optimised input must drive its target above the largest value of the
same objective on real data (:mod:`.data_max`). Targets that do not get up to ``retries`` more
rounds of ``steps`` steps (continuing from where they are, with a new jitter seed); the result is
reported per target and in ``all_exceed``; the CLI exits with status 1 if any target fails.
A region that several groups share (same layer, same filters) is optimised once and written for
each of them (``reused_from_same_region`` in the summary).

**Default groups** ("the three with the most distinct maps"): for every layer, the Pearson
correlation between each group's GradNAP map and every other group's; distinctness = ``1 - mean``
correlation with the others, averaged over the layers; the ``count`` most distinct groups win.
``sil`` and groups with fewer than 10 % of the median frame count of a layer (noisy maps look
"distinct") are left out. Without a profiles file, the groups whose regions have the highest smoothed
value relative to the spread of that layer's region values are taken (said in the summary).

**De-normalisation for audio:** an optimal input lives in per-utterance-normalised log-mel space;
it is mapped back with the training data's average per-utterance per-bin mean and std
(:class:`.data_max.FeatureStats`), then inverted (:func:`toposcope.melinvert.mel_to_audio`).
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from .._util import progress as _bar, read_json, write_json_atomic
from .data_max import DataMaxima, FeatureStats, data_maxima, feature_stats, naturalness
from .objectives import region_objectives, PerSample
from .param import input_geometry
from .render import OptimizeConfig, optimize_inputs, progress_enabled

__all__ = ["choose_groups", "load_regions", "load_data", "optimize_region", "optimize_run", "write_region",
           "region_digest"]

EXCLUDE_GROUPS = ("sil",)
#: An input counts as natural when at least this share of its bins lies in the natural range (issue 13).
NATURAL_TARGET = 0.95


def _write_json(path: Path, obj) -> None:
    write_json_atomic(path, obj)


def load_regions(run_dir, maps: str = "maps") -> dict:
    """``RUN/<maps>/regions.json`` -> ``{layer: {group: {"center", "filters", "value"}}}`` (``maps``: the
    maps folder, ``maps-<layout>`` for a post-hoc layout)."""
    p = Path(run_dir) / maps / "regions.json"
    if not p.is_file():
        raise FileNotFoundError(f"{p}: regions not found (run `toposcope profile` and `toposcope maps` first)")
    d = read_json(p)
    if not isinstance(d, dict):
        raise ValueError(f"{p}: expected {{layer: {{group: region}}}}")
    for layer, groups in d.items():
        for g, r in groups.items():
            if not isinstance(r, dict) or "filters" not in r or "center" not in r:
                raise ValueError(f"{p}: region {layer}/{g} lacks 'filters' or 'center'")
    return d


def regions_of_run(run_dir, model, maps: str = "maps", layers: Sequence[str] | None = None
                   ) -> tuple[dict, dict, list[str]]:
    """Regions of ``RUN/<maps>/regions.json`` ready for objectives on ``model``: ``(regions, grids, layers)``.

    Under a post-hoc layout (``maps-<method>``, recorded in its ``stats.json``) regions name grid *cells*;
    their ``filters`` are mapped back to the model's units sitting there (``cells`` keeps the cells) and
    ``grids`` holds the layout's grid for those layers (the model's own grid elsewhere). ``layers``:
    the requested layers (default every layer with regions), checked against the file."""

    run_dir = Path(run_dir)
    where = run_dir / maps / "regions.json"
    regions = load_regions(run_dir, maps)
    grids = dict(model.grids)
    st = read_json(run_dir / maps / "stats.json", missing_ok=True) or {}
    method = (st.get("layout") or {}).get("method") if isinstance(st, dict) else None
    if method is None and maps.startswith("maps-"):
        method = maps[len("maps-"):]
    if method:
        from ..analysis.layouts import load_layouts, region_in_units

        lays = load_layouts(run_dir, method, model=model)
        regions = {l: {g: {**region_in_units(r, lays[l]), "layout": method} for g, r in gs.items()}
                   if l in lays else gs for l, gs in regions.items()}
        grids.update({l: lay.grid for l, lay in lays.items()})
    avail = [l for l in model.layer_names if l in regions]
    if layers:
        bad = [l for l in layers if l not in regions]
        if bad:
            raise ValueError(f"no regions for layer(s) {', '.join(bad)} in {where}; available: {', '.join(avail)}")
        layers = [l for l in model.layer_names if l in layers]
    else:
        layers = avail
    if not layers:
        raise ValueError(f"{where} holds no region of this model's layers")
    return regions, grids, layers


def choose_groups(profiles, count: int = 3, *, layers: Sequence[str] | None = None,
                  exclude: Sequence[str] = EXCLUDE_GROUPS, min_count_ratio: float = 0.1) -> list[tuple[str, float]]:
    """The ``count`` groups with the most distinct maps: ``[(group, distinctness)]``, most distinct first.

    ``profiles``: a :class:`toposcope.analysis.profiles.Profiles` (per layer ``values (G, C)`` and ``counts (G,)``).
    See the module docstring for the definition.
    """
    groups = list(profiles.groups)
    names = [l for l in (layers or profiles.layer_names) if l in profiles.layers]
    if not names:
        raise ValueError(f"no profiled layer among {list(layers or [])}; profiled: {', '.join(profiles.layers)}")
    score = np.zeros(len(groups))
    ok = np.array([g not in exclude for g in groups])
    for l in names:
        lp = profiles.layers[l]
        v = np.asarray(lp.values, dtype=np.float64)
        counts = np.asarray(lp.counts, dtype=np.float64)
        ok &= counts >= min_count_ratio * np.median(counts[counts > 0]) if (counts > 0).any() else False
        v = v - v.mean(axis=1, keepdims=True)
        norm = np.linalg.norm(v, axis=1)
        norm[norm == 0] = np.inf  # a flat map correlates with nothing; it is excluded below anyway
        ok &= np.isfinite(norm)
        c = (v / norm[:, None]) @ (v / norm[:, None]).T
        G = len(groups)
        score += 1.0 - (c.sum(axis=1) - np.diag(c)) / max(G - 1, 1)
    score /= len(names)
    order = [i for i in np.argsort(-score, kind="stable") if ok[i]]
    return [(groups[i], float(score[i])) for i in order[:count]]


def _choose_without_profiles(regions: dict, layers: Sequence[str], count: int) -> list[tuple[str, float]]:
    groups = sorted({g for l in layers for g in regions[l]} - set(EXCLUDE_GROUPS))
    score = {g: 0.0 for g in groups}
    for l in layers:
        vals = np.array([regions[l][g]["value"] for g in groups if g in regions[l]], dtype=float)
        spread = vals.std() or 1.0
        for g in groups:
            if g in regions[l]:
                score[g] += (regions[l][g]["value"] - vals.mean()) / spread / len(layers)
    return sorted(score.items(), key=lambda kv: -kv[1])[:count]


def load_data(corpus, cfg, *, split: str = "train", max_utterances: int = 200, progress: bool = False):
    """Normalised features of up to ``max_utterances`` utterances of ``split`` (evenly spaced over the
    manifest order, deterministic) and their :class:`FeatureStats`: ``([(id, (n_mels, T))], stats)``.
    Raw log-mel comes from the project's analysis loader (:func:`toposcope.data.iter_feature_batches`)."""
    from ..data import iter_feature_batches
    from ..features import normalize

    utts = corpus.split(split) if split != "all" else list(corpus)
    if not utts:
        raise ValueError(f"{corpus.root}: split {split!r} has no utterances")
    if max_utterances and len(utts) > max_utterances:
        idx = np.linspace(0, len(utts) - 1, max_utterances).round().astype(int)
        utts = [utts[i] for i in idx]
    raws, feats = [], []
    bar = _bar(total=len(utts), enabled=progress, desc="features", unit="utt")
    for x, lengths, chunk in iter_feature_batches(corpus, utts, cfg, 8, normalized=False, sort=False):
        for b, u in enumerate(chunk):
            L = x[b, :, :int(lengths[b])]
            raws.append(L)
            feats.append((u.id, normalize(L)))
        bar.update(len(chunk))
    bar.close()
    return feats, feature_stats(raws)


def optimize_region(model, layer: str, filters: Sequence[int], *, config: OptimizeConfig, frames: int,
                    data_range=None, data_max: Sequence[float] | None = None, retries: int = 2,
                    progress: bool = False, desc: str = "optimize") -> dict:
    """Optimise ``len(filters)`` single-filter inputs + 1 joint input as one batch.

    Returns ``{"inputs": (K + 1, n_mels, frames), "values": (K + 1,), "losses": (steps_total, K + 1),
    "rounds": int}``. With ``data_max`` (``(K + 1,)``), up to ``retries`` further rounds run while
    any value is not above its data maximum.
    """
    objective = PerSample(region_objectives(layer, filters))
    B = len(objective)
    scale = None
    if data_max is not None and config.natural:  # regularisers relative to each target's best real window
        scale = torch.as_tensor([float(m) if np.isfinite(m) else 1.0 for m in data_max]).clamp(min=1e-3)
    res = optimize_inputs(model, objective, batch=B, frames=frames, config=config, data_range=data_range,
                          scale=scale, progress=progress, desc=desc)
    losses, rounds = [res.losses], 1
    while data_max is not None and rounds <= retries:
        dm = torch.as_tensor([float(m) for m in data_max])
        if bool((res.values > dm).all()):
            break
        cfg = OptimizeConfig(**{**asdict(config), "seed": config.seed + 1000 * rounds, "redirect_steps": 0})
        res = optimize_inputs(model, objective, batch=B, frames=frames, config=cfg, data_range=data_range,
                              init=res.inputs, scale=scale, progress=progress, desc=f"{desc} (retry {rounds})")
        losses.append(res.losses)
        rounds += 1
    return {"inputs": res.inputs, "values": res.values, "losses": torch.cat(losses), "rounds": rounds}


def _centre_freqs(cfg) -> np.ndarray:
    from ..features import hz_to_mel, mel_to_hz

    return mel_to_hz(np.linspace(hz_to_mel(cfg.f_min), hz_to_mel(cfg.top), cfg.n_mels + 2))[1:-1]


def write_region(out_dir: Path, *, layer: str, group: str, region: dict, grid, inputs: torch.Tensor,
                 values: torch.Tensor, maxima: DataMaxima, first: int, stats: FeatureStats, feats_cfg,
                 geometry, config: OptimizeConfig, extra: dict, images: bool = True, audio: bool = True,
                 dpi: int = 110) -> dict:
    """Write the ``.npy``/``.wav``/``region.png``/``summary.json`` of one region; returns the summary."""
    from ..melinvert import mel_to_audio

    out_dir.mkdir(parents=True, exist_ok=True)
    filters = [int(i) for i in region["filters"]]
    cells = [int(i) for i in region.get("cells", filters)]  # grid cells (other than filters under a layout)
    names = [f"filter_{i}" for i in filters] + ["joint"]
    targets = []
    for k, name in enumerate(names):
        x = inputs[k].numpy().astype(np.float32)
        np.save(out_dir / f"{name}.npy", x)
        if audio:
            from ..audio import write_wav

            wave = mel_to_audio(x, feats_cfg, mean=stats.mean, std=stats.std, seed=config.seed)
            write_wav(out_dir / f"{name}.wav", wave.numpy(), feats_cfg.sample_rate)
        dm = maxima.values[first + k]
        where = maxima.where[first + k]
        fm = maxima.frame_values[first + k] if maxima.frame_values else float("nan")
        fwhere = maxima.frame_where[first + k] if maxima.frame_where else None
        v = float(values[k])
        nat = float(naturalness(x, stats.p_lo, stats.p_hi)) if stats.p_lo is not None else None
        t = {"name": name, "activation": v,
             "data_max": dm if np.isfinite(dm) else None,
             "data_max_at": {"utterance": where[0], "frame": where[1]} if where else None,
             "data_max_window": dm if np.isfinite(dm) else None,
             "data_max_frame": ({"value": fm, "utterance": fwhere[0], "frame": fwhere[1]}
                                if fwhere and np.isfinite(fm) else None),
             "n_utterances_searched": maxima.utterances,
             "naturalness": nat,
             "exceeds": bool(np.isfinite(dm) and v > dm),
             "natural_and_exceeds": bool(np.isfinite(dm) and v > dm and nat is not None and nat >= NATURAL_TARGET),
             "ratio": (v / dm) if np.isfinite(dm) and dm > 0 else None}
        if k < len(filters):
            t["filter"] = filters[k]
            t["position"] = list(grid.position(cells[k]))
        else:
            t["filters"] = filters
        targets.append(t)
    if images:
        import matplotlib

        if not os.environ.get("MPLBACKEND"):
            matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        from ..viz.inputs import plot_region_inputs

        pos = [grid.position(i) for i in cells]
        r0, c0 = min(p[0] for p in pos), min(p[1] for p in pos)
        art = plot_region_inputs(
            [inputs[k].numpy() for k in range(len(filters))], [(r - r0, c - c0) for r, c in pos],
            inputs[-1].numpy(), titles=[f"#{i} ({t['activation']:.2f} / {t['data_max'] or float('nan'):.2f})"
                                        for i, t in zip(filters, targets)],
            joint_title=f"joint ({targets[-1]['activation']:.2f} / {targets[-1]['data_max'] or float('nan'):.2f})",
            frame_seconds=feats_cfg.frame_seconds, freqs=_centre_freqs(feats_cfg),
            suptitle=f"{layer} · /{group}/ · region around {tuple(region['center'])} · "
                     f"activation reached / data max")
        art["fig"].savefig(out_dir / "region.png", dpi=dpi)
        plt.close(art["fig"])
    summary = {
        "layer": layer, "group": group, "center": list(region["center"]), "filters": filters,
        "region_value": region.get("value"),
        "input": {"frames": geometry.frames, "seconds": geometry.frames * feats_cfg.frame_seconds,
                  "valid_output_frames": [geometry.valid.start, geometry.valid.stop],
                  "receptive_field": geometry.rf.size, "stride": geometry.rf.jump},
        "objective": "mean post-ReLU activation over the valid output frames (joint: mean over the region)",
        "data_max_definition": (f"data_max_window: max over {maxima.utterances} real utterances of the same objective "
                                f"over windows of {geometry.n_valid} valid output frames (the input's own length); "
                                f"data_max_frame: the largest single valid frame over the same utterances"),
        "parameterization": "natural" if config.natural else "unconstrained",
        "natural_range": (f"per mel band, the {stats.percentiles[0]:g}-{stats.percentiles[1]:g} percentile of real "
                          f"normalised log-mel over {stats.utterances} utterances; naturalness = share of an "
                          f"input's bins inside it" if stats.p_lo is not None else None),
        "targets": targets, "all_exceed": all(t["exceeds"] for t in targets),
        "share_natural_and_exceeds": float(np.mean([t["natural_and_exceeds"] for t in targets])),
        "config": asdict(config), **extra,
    }
    _write_json(out_dir / "summary.json", summary)
    return summary


def region_digest(summary: dict) -> dict:
    """A region's headline numbers (from its ``summary.json`` dict): the joint input's activation and the best
    real window (``joint_activation``, ``joint_data_max``), and over all its targets the lowest activation /
    data-max ratio (``min_ratio``; ``inf`` where no data maximum is known) and the lowest naturalness."""
    targets = summary["targets"]
    joint = targets[-1]
    return {"joint_activation": joint["activation"], "joint_data_max": joint["data_max"],
            "min_ratio": min((t["activation"] / t["data_max"] if t["data_max"] else float("inf")) for t in targets),
            "min_naturalness": min((t.get("naturalness") or 0.0) for t in targets)}


def optimize_run(run_dir, **kw) -> dict:
    """Optimal inputs for every chosen (layer, group) region of a run, holding the run folder's lock
    (``toposcope.runlock``); keywords as :func:`_optimize_run`, whose docstring describes them."""
    from ..runlock import run_lock

    with run_lock(run_dir, "optimize"):
        return _optimize_run(run_dir, **kw)


def _optimize_run(run_dir, *, layers: Sequence[str] | None = None, groups: Sequence[str] | None = None,
                 data=None, split: str = "train", max_utterances: int = 200, n_groups: int = 3,
                 seconds: float = 0.5, config: OptimizeConfig = OptimizeConfig(), retries: int = 2,
                 profiles: str = "gradnap-phone", checkpoint: str = "best", images: bool = True,
                 audio: bool = True, progress: bool = True, out=None, layout: str | None = None) -> dict:
    """Optimal inputs for every chosen (layer, group) region of a run; see the module docstring.

    ``layout``: a post-hoc layout method (``docs/layouts.md``): regions come from ``RUN/maps-<layout>/``
    (cells of the layout's grid), the objectives use the units sitting at those cells, images are laid
    out on the layout's grid, and the default output folder is ``RUN/optimal-<layout>``.

    ``data``: corpus directory (default: the one recorded in the profiles file); returns the overall
    summary (also written to ``RUN/optimal/summary.json``).
    """
    from ..checkpoint import load_run
    from ..corpus import Corpus
    from ..analysis.maps import safe_filename

    run = load_run(run_dir, checkpoint)
    run_dir = Path(run.path or run_dir)
    out = Path(out) if out is not None else run_dir / ("optimal" if not layout else f"optimal-{layout}")
    model, fcfg = run.model, run.config.model.features
    regions, grids, layers = regions_of_run(run_dir, model, "maps" if not layout else f"maps-{layout}", layers)

    prof = None
    prof_path = run_dir / "profiles" / f"{profiles}.npz"
    if prof_path.is_file():
        from ..analysis.profiles import load_profiles

        prof = load_profiles(prof_path)
    if groups:
        for g in groups:
            missing = [l for l in layers if g not in regions[l]]
            if missing:
                raise ValueError(f"group {g!r} has no region in layer(s) {', '.join(missing)}; groups: "
                                 f"{', '.join(sorted(regions[layers[0]]))}")
        chosen = [(g, None) for g in groups]
        how = "given"
    elif prof is not None:
        chosen = [(g, s) for g, s in choose_groups(prof, n_groups, layers=layers)
                  if all(g in regions[l] for l in layers)]
        how = f"most distinct maps in {prof_path.name} (1 - mean correlation with the other groups' maps)"
    else:
        chosen = _choose_without_profiles(regions, layers, n_groups)
        how = "no profiles file: highest region value relative to the spread over groups"
    if not chosen:
        raise ValueError("no group to optimise (all excluded or without regions)")

    if data is None:
        data = (prof.meta.get("corpus") if prof is not None else None)
        if not data:
            raise ValueError("no corpus given (--data) and none recorded in the profiles file; the data maximum "
                             "needs real utterances")
    corpus = Corpus.load(data)
    feats, stats = load_data(corpus, fcfg, split=split, max_utterances=max_utterances, progress=progress)

    # One pass over the data for every target of every region.
    jobs, objectives, windows = [], [], []
    for layer in layers:
        geo = input_geometry(model, layer, seconds)
        for g, score in chosen:
            reg = regions[layer][g]
            objs = region_objectives(layer, reg["filters"])
            jobs.append((layer, g, score, reg, geo, len(objectives)))
            objectives.extend(objs)
            windows.extend([geo.n_valid] * len(objs))
    maxima = data_maxima(model, feats, objectives, windows, progress=progress, total=len(feats))
    data_range = (stats.p_lo, stats.p_hi) if config.natural else (stats.lo, stats.hi)

    results, done = [], {}
    for layer, g, score, reg, geo, first in jobs:
        key = (layer, tuple(int(i) for i in reg["filters"]))
        t0 = time.perf_counter()
        reused = key in done
        if reused:  # another group chose the same region: same targets, same seed, same result
            r, elapsed = done[key]
        else:
            dm = maxima.values[first:first + len(reg["filters"]) + 1]
            r = optimize_region(model, layer, reg["filters"], config=config, frames=geo.frames,
                                data_range=data_range, data_max=dm, retries=retries, progress=progress,
                                desc=f"{layer}/{g}")
            elapsed = time.perf_counter() - t0
            done[key] = (r, elapsed)
        losses = r["losses"]
        extra = {"distinctness": score, "group_choice": how, "rounds": r["rounds"], "steps_run": int(losses.shape[0]),
                 "loss_first": losses[0].tolist(), "loss_last": losses[-1].tolist(), "seconds": elapsed,
                 "reused_from_same_region": reused,
                 "checkpoint": run.meta.get("checkpoint"), "corpus": str(corpus.root), "split": split}
        s = write_region(out / layer / safe_filename(g), layer=layer, group=g, region=reg, grid=grids[layer],
                         inputs=r["inputs"], values=r["values"], maxima=maxima, first=first, stats=stats,
                         feats_cfg=fcfg, geometry=geo, config=config, extra=extra, images=images, audio=audio)
        results.append(s)
    _write_json(out / "feature_stats.json", stats.to_dict())
    every = [t for s in results for t in s["targets"]]
    overall = {"run": str(run_dir), "groups": [g for g, _ in chosen], "group_choice": how, "layers": layers,
               "parameterization": "natural" if config.natural else "unconstrained",
               "all_exceed": all(s["all_exceed"] for s in results),
               "share_exceeds": float(np.mean([t["exceeds"] for t in every])),
               "share_natural_and_exceeds": float(np.mean([t["natural_and_exceeds"] for t in every])),
               "natural_target": NATURAL_TARGET,
               "n_utterances_searched": maxima.utterances,
               "failures": [f"{s['layer']}/{s['group']}/{t['name']}" for s in results for t in s["targets"]
                            if not t["exceeds"]],
               "regions": [{k: s[k] for k in ("layer", "group", "center", "filters", "all_exceed", "seconds", "rounds")}
                           | {"path": str(out / s["layer"] / safe_filename(s["group"]))} | region_digest(s)
                           for s in results]}
    _write_json(out / "summary.json", overall)
    return overall
