"""Reading a run directory for the report (public API): :class:`RunData` and :func:`load_run_data`.

What is read (the run layout, ``docs/usage.md``): ``config.toml``, ``metrics.jsonl``, ``eval/<split>.json``,
``profiles/<name>.npz``, ``maps/regions.json``, ``maps/stats.json``, ``optimal/<layer>/<group>/...`` and
``filters/*.png``. A missing file leaves its field empty; a corrupt one is an error naming the file.

The accessors at the end (:func:`stats_layers`, :func:`stat_block`, ...) read ``maps/stats.json`` entries
tolerantly: runs written before a key existed give ``None``, never a ``KeyError``.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .._util import read_json, read_jsonl
from .html import finite

__all__ = ["DEFAULT_PROFILE", "RunData", "load_run_data", "corpus_summary", "stats_layers", "stat_block",
           "similarity_of", "moran_of", "clustered_of", "stat_value"]

DEFAULT_PROFILE = "gradnap-phone"


@dataclass
class RunData:
    """Everything the report reads from one run directory (``None`` / empty where a file is missing).

    ``profiles``: ``{layer: {"grid": (rows, cols), "groups": [G], "values": (G, C), "counts": (G,),
    "method", "grouping", "target"}}`` of ``profiles/<profile>.npz``."""

    path: Path
    label: str
    config: dict | None = None
    train_lines: list[dict] = field(default_factory=list)
    valid_lines: list[dict] = field(default_factory=list)
    evals: dict[str, dict] = field(default_factory=dict)
    profile_path: Path | None = None
    profiles: dict | None = None
    regions: dict | None = None
    stats: dict | None = None
    filter_pngs: list[Path] = field(default_factory=list)
    optimal: list[dict] = field(default_factory=list)
    #: ``{method: stats dict}`` of ``maps-<method>/stats.json`` for each post-hoc layout in ``layouts/``
    layout_stats: dict[str, dict] = field(default_factory=dict)

    @property
    def topo_weight(self) -> float | None:
        """λ of the run's config (``train.topo_weight``), ``None`` when not readable."""
        try:
            return float(self.config["train"]["topo_weight"])
        except (TypeError, KeyError, ValueError):
            return None

    @property
    def lambda_label(self) -> str:
        """``"λ = 0.001"`` (``"λ = ?"`` when the config does not say)."""
        w = self.topo_weight
        return "λ = ?" if w is None else f"λ = {w:g}"

    @property
    def layer_names(self) -> list[str]:
        if self.config and self.config.get("layers"):
            return [f"conv{i + 1}" for i in range(len(self.config["layers"]))]
        return list(self.profiles or {})

    @property
    def stats_layers(self) -> dict:
        """``{layer: entry}`` of ``maps/stats.json`` (empty when there is none)."""
        return stats_layers(self.stats)

    def grid(self, layer: str) -> tuple[int, int] | None:
        """``(rows, cols)`` of a layer's grid, from the profiles or else the config."""
        if self.profiles and layer in self.profiles:
            return tuple(self.profiles[layer]["grid"])
        if self.config and self.config.get("layers"):
            from ..config import config_from_dict

            cfg = config_from_dict(self.config, where=str(self.path / "config.toml"))
            for name, spec in zip(cfg.model.layer_names, cfg.model.layers):
                if name == layer:
                    return spec.get_grid().shape
        return None


def _load_profiles(path: Path) -> dict:
    """``profiles/<name>.npz`` -> ``{layer: {"grid", "groups", "values" (G, C), "counts" (G,), ...}}``."""
    from ..analysis.profiles import load_profiles

    prof = load_profiles(path)
    return {layer: {"grid": lp.grid.shape, "groups": list(prof.groups),
                    "values": np.asarray(lp.values, dtype=np.float64),
                    "counts": np.asarray(lp.counts, dtype=np.int64),
                    "method": prof.method, "grouping": prof.grouping, "target": prof.target}
            for layer, lp in prof.layers.items()}


def load_run_data(run_dir, label: str | None = None, *, profile: str = DEFAULT_PROFILE) -> RunData:
    """Read what a run directory holds; a missing file leaves its field empty, a corrupt one is an error."""
    p = Path(run_dir)
    if not p.is_dir():
        raise FileNotFoundError(f"{p}: run directory not found")
    cfg_path = p / "config.toml"
    if not cfg_path.is_file():
        raise FileNotFoundError(f"{p}: not a run directory (config.toml missing; train a model with `toposcope train`)")
    try:
        config = tomllib.loads(cfg_path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as e:
        raise ValueError(f"{cfg_path}: invalid TOML ({e})") from None
    rd = RunData(path=p, label=label or p.name, config=config)
    lines = read_jsonl(p / "metrics.jsonl")  # tolerant: a line cut short by an interrupted run is skipped
    rd.train_lines = [l for l in lines if isinstance(l, dict) and l.get("kind") == "train"]
    rd.valid_lines = [l for l in lines if isinstance(l, dict) and l.get("kind") == "valid"]
    for split in ("test", "valid", "train"):
        d = read_json(p / "eval" / f"{split}.json", missing_ok=True)
        if d is not None:
            rd.evals[split] = d
    pp = p / "profiles" / f"{profile}.npz"
    if pp.is_file():
        rd.profile_path = pp
        rd.profiles = _load_profiles(pp)
    rd.regions = read_json(p / "maps" / "regions.json", missing_ok=True)
    rd.stats = read_json(p / "maps" / "stats.json", missing_ok=True)
    fdir = p / "filters"
    if fdir.is_dir():
        rd.filter_pngs = sorted(fdir.glob("*.png"))
    rd.optimal = _scan_optimal(p / "optimal")
    for method in sorted({f.stem.rsplit("-", 1)[-1] for f in (p / "layouts").glob("*-*.json")}):
        d = read_json(p / f"maps-{method}" / "stats.json", missing_ok=True)  # maps_run(layout=method) output
        if isinstance(d, dict):
            rd.layout_stats[method] = d
    return rd


def _scan_optimal(root: Path) -> list[dict]:
    """``optimal/<layer>/<group>/`` folders with their summary, PNGs and WAVs."""
    out = []
    if not root.is_dir():
        return out
    for layer_dir in sorted(d for d in root.iterdir() if d.is_dir()):
        for gdir in sorted(d for d in layer_dir.iterdir() if d.is_dir()):
            summary = read_json(gdir / "summary.json", missing_ok=True) or {}
            out.append({"layer": layer_dir.name, "group": gdir.name, "dir": gdir, "summary": summary,
                        "pngs": {f.stem: f for f in sorted(gdir.glob("*.png"))},
                        "wavs": {f.stem: f for f in sorted(gdir.glob("*.wav"))}})
    return out


def corpus_summary(data) -> dict | None:
    """:meth:`Corpus.summary` of a corpus (directory or :class:`toposcope.corpus.Corpus`) with the voices
    of each split (synthetic corpora name a speaker's voice in an extra field); ``None`` for ``None``."""
    if data is None:
        return None
    from ..corpus import Corpus

    corpus = data if isinstance(data, Corpus) else Corpus.load(data)
    summary = corpus.summary()
    summary["voices"] = sorted({str(u.extra.get("voice", u.speaker)) for u in corpus})
    for split, d in summary["splits"].items():
        d["voices"] = sorted({str(u.extra.get("voice", u.speaker)) for u in corpus.split(split)})
    return summary


# -- maps/stats.json accessors (written by `toposcope maps`, toposcope.analysis.stats) ------------------------
def stats_layers(stats: dict | None) -> dict:
    """``{layer: {...}}`` of a ``maps/stats.json``."""
    if not isinstance(stats, dict) or not isinstance(stats.get("layers"), dict):
        return {}
    return {k: v for k, v in stats["layers"].items() if isinstance(v, dict)}


def stat_block(entry: dict | None, key: str, need: str = "observed") -> dict | None:
    """A test-result dict of a layer entry (``s_bar``, ``label_null``, ``functional_similarity``, ...) when it
    is there and has the ``need`` key; ``None`` otherwise (old runs, failed statistics)."""
    v = (entry or {}).get(key)
    return v if isinstance(v, dict) and need in v else None


def stat_value(entry: dict | None, key: str) -> float | None:
    """A finite number of a layer entry (``share_phone_specific``, ...), ``None`` when absent or not finite."""
    v = (entry or {}).get(key)
    return float(v) if finite(v) else None


def similarity_of(entry: dict | None) -> dict | None:
    """``{"observed", "mean", "sd", "z", "p"}``: S̄ of the layer's weights against the position null."""
    return stat_block(entry, "s_bar")


def moran_of(entry: dict | None) -> dict:
    """``{group: {"morans_i", "z", "p", "p_label", "q_label", "regions", ...}}`` of one layer."""
    v = (entry or {}).get("groups")
    return {g: d for g, d in v.items() if isinstance(d, dict)} if isinstance(v, dict) else {}


def clustered_of(entry: dict | None, key: str = "share_clustered") -> float | None:
    """A share of a layer entry (default: phones whose map is smoother than under shuffled positions)."""
    return stat_value(entry, key)
