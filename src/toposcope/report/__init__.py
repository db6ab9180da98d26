"""``toposcope report``: one self-contained HTML page from one run directory (and optionally a baseline).

Everything the page shows is read from the run directories (SPEC run layout): ``config.toml``,
``metrics.jsonl``, ``eval/<split>.json``, ``profiles/<name>.npz``, ``maps/regions.json``,
``maps/stats.json``, ``optimal/<layer>/<group>/...`` and ``filters/*.png``. A section whose files are
missing says so and names the command that makes them; nothing is filled in.

The page embeds its images (PNG data URIs), audio (WAV data URIs), CSS and JS (``toposcope/assets/report.*``),
so it works offline in any browser. Maps are drawn client-side from the embedded GradNAP arrays: the
on-grid values, the smoothed map (``toposcope.analysis.maps.smooth_map``) and the region of each run.
Every label, path and transcript goes through :func:`html.escape`; JSON inside ``<script>`` has
``<``, ``>`` and ``&`` written as ``\\u003c``-style escapes, so no string can close the element.
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
import json
import math
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Sequence

import numpy as np

__all__ = ["RunData", "load_run_data", "build_report", "render_report", "script_json", "svg_line_chart"]

DEFAULT_PROFILE = "gradnap-phone"
ESC = html.escape

#: Categorical colours (Tableau 10) for layers / series.
PALETTE = ("#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7",
           "#9c755f", "#bab0ac")


# -- small pieces ---------------------------------------------------------------------------------------
def script_json(obj) -> str:
    """JSON safe to place inside ``<script type="application/json">``: ``<``, ``>``, ``&`` and the JS line
    separators are written as ``\\uXXXX`` escapes, so ``</script>`` and ``<!--`` can never appear."""
    s = json.dumps(obj, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    return (s.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
            .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))


def _data_uri(path: Path, mime: str) -> str:
    return f"data:{mime};base64," + base64.b64encode(Path(path).read_bytes()).decode("ascii")


def _img(path: Path, alt: str, cls: str = "fig", width: int | None = None) -> str:
    w = f' width="{int(width)}"' if width else ""
    return f'<img class="{cls}" src="{_data_uri(path, "image/png")}" alt="{ESC(alt)}" title="{ESC(alt)}"{w}>'


def _audio(path: Path, label: str) -> str:
    return (f'<audio controls preload="none" title="{ESC(label)}" aria-label="{ESC(label)}" '
            f'src="{_data_uri(path, "audio/wav")}"></audio>')


def _missing(what: str, how: str | None = None) -> str:
    extra = f" Make it with <code>{ESC(how)}</code>." if how else ""
    return f'<p class="missing">{ESC(what)}{extra}</p>'


def _pct(x) -> str:
    return "n/a" if x is None or not _finite(x) else f"{100 * float(x):.1f} %"


def _num(x, digits: int = 3) -> str:
    if x is None or not _finite(x):
        return "n/a"
    x = float(x)
    if x != 0 and digits >= 3 and (abs(x) < 10 ** -(digits) or abs(x) >= 1e5):
        return f"{x:.{digits - 1}e}"
    return f"{x:.{digits}f}"


def _pval(p) -> str:
    if p is None or not _finite(p):
        return "n/a"
    return f"{float(p):.3f}" if p >= 0.001 else f"{float(p):.1e}"


def _finite(x) -> bool:
    try:
        return math.isfinite(float(x))
    except (TypeError, ValueError):
        return False


def _read_json(path: Path):
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{path}: not valid JSON ({e})") from None


def _read_jsonl(path: Path) -> list[dict]:
    out = []
    try:
        with open(path, encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                if line.strip():
                    try:
                        out.append(json.loads(line))
                    except json.JSONDecodeError:
                        # a line cut short by an interrupted run: the report shows what is complete
                        continue
    except FileNotFoundError:
        pass
    return out


def _round_list(a: np.ndarray, sig: int = 4) -> list[float]:
    """Values rounded to ``sig`` significant digits (keeps the embedded JSON small)."""
    a = np.asarray(a, dtype=np.float64)
    return [float(f"{v:.{sig}g}") if np.isfinite(v) else 0.0 for v in a.ravel()]


# -- SVG line charts --------------------------------------------------------------------------------------
def _nice_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return []
    if hi <= lo:
        hi = lo + (abs(lo) if lo else 1.0)
    raw = (hi - lo) / max(1, n)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    start = math.ceil(lo / step) * step
    ticks, t = [], start
    while t <= hi + 1e-9 * step:
        ticks.append(round(t, 12))
        t += step
    return ticks


def _tick_label(v: float) -> str:
    if v == 0:
        return "0"
    a = abs(v)
    if a >= 1e4 or a < 1e-3:
        return f"{v:.0e}"
    return f"{v:g}" if a >= 1 else f"{v:.3g}"


def svg_line_chart(series: Sequence[dict], *, title: str, xlabel: str, ylabel: str = "", width: int = 430,
                   height: int = 250, log_y: bool = False, max_points: int = 400,
                   xticks: Sequence[tuple[float, str]] | None = None) -> str:
    """An inline SVG line chart. ``series``: dicts with ``label``, ``x``, ``y`` and optional ``color``,
    ``dash`` (bool), ``marker`` (bool); ``xticks``: ``(x, label)`` pairs instead of numeric ticks.
    Labels are escaped; non-finite points are dropped."""
    pts = []
    for s in series:
        xy = [(float(x), float(y)) for x, y in zip(s["x"], s["y"])
              if _finite(x) and _finite(y) and (not log_y or float(y) > 0)]
        if len(xy) > max_points:  # even thinning keeps the shape and the file small
            idx = np.linspace(0, len(xy) - 1, max_points).round().astype(int)
            xy = [xy[i] for i in idx]
        pts.append(xy)
    if not any(pts):
        return ""
    ml, mr, mt, mb = 62, 12, 24, 38
    legend_rows = math.ceil(len(series) / 3)
    height_total = height + 16 * legend_rows
    pw, ph = width - ml - mr, height - mt - mb
    xs = [x for p in pts for x, _ in p]
    ys = [math.log10(y) if log_y else y for p in pts for _, y in p]
    x0, x1 = min(xs), max(xs)
    y0, y1 = min(ys), max(ys)
    if x1 == x0:
        x0, x1 = x0 - 1, x1 + 1
    if y1 == y0:
        pad = abs(y0) * 0.1 or 1.0
        y0, y1 = y0 - pad, y1 + pad
    else:
        pad = (y1 - y0) * 0.05
        y0, y1 = y0 - pad, y1 + pad
    X = lambda x: ml + (x - x0) / (x1 - x0) * pw  # noqa: E731
    Y = lambda y: mt + (1 - ((math.log10(y) if log_y else y) - y0) / (y1 - y0)) * ph  # noqa: E731
    out = [f'<svg class="chart" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height_total}" '
           f'viewBox="0 0 {width} {height_total}" role="img" aria-label="{ESC(title)}">',
           f'<text class="title" x="{ml}" y="15">{ESC(title)}</text>',
           f'<rect x="{ml}" y="{mt}" width="{pw}" height="{ph}" fill="none" stroke="#bbb"/>']
    for t, lab in (xticks if xticks is not None else [(t, _tick_label(t)) for t in _nice_ticks(x0, x1)]):
        if x0 <= t <= x1:
            out.append(f'<line x1="{X(t):.1f}" y1="{mt + ph}" x2="{X(t):.1f}" y2="{mt + ph + 4}" stroke="#888"/>'
                       f'<text x="{X(t):.1f}" y="{mt + ph + 15}" text-anchor="middle">{ESC(str(lab))}</text>')
    if log_y:  # 1-2-5 ticks, placed in log space
        yt = [math.log10(m * 10.0 ** e) for e in range(math.floor(y0) - 1, math.ceil(y1) + 1) for m in (1, 2, 5)]
        if sum(y0 <= t <= y1 for t in yt) < 2:
            yt = _nice_ticks(y0, y1)
    else:
        yt = _nice_ticks(y0, y1)
    for t in yt:
        if y0 <= t <= y1:
            yy = mt + (1 - (t - y0) / (y1 - y0)) * ph
            lab = _tick_label(float(f"{10 ** t:.3g}")) if log_y else _tick_label(t)
            out.append(f'<line x1="{ml}" y1="{yy:.1f}" x2="{ml + pw}" y2="{yy:.1f}" stroke="#eee"/>'
                       f'<text x="{ml - 4}" y="{yy + 4:.1f}" text-anchor="end">{lab}</text>')
    out.append(f'<text x="{ml + pw / 2}" y="{mt + ph + 31}" text-anchor="middle">{ESC(xlabel)}</text>')
    if ylabel:
        out.append(f'<text transform="translate(13 {mt + ph / 2}) rotate(-90)" text-anchor="middle">'
                   f'{ESC(ylabel)}</text>')
    for i, (s, p) in enumerate(zip(series, pts)):
        color = s.get("color") or PALETTE[i % len(PALETTE)]
        dash = ' stroke-dasharray="5 3"' if s.get("dash") else ""
        if p:
            d = " ".join(f"{X(x):.1f},{Y(y):.1f}" for x, y in p)
            out.append(f'<polyline fill="none" stroke="{color}" stroke-width="1.6"{dash} points="{d}"/>')
            if s.get("marker") or len(p) == 1:
                out.extend(f'<circle cx="{X(x):.1f}" cy="{Y(y):.1f}" r="2.5" fill="{color}"/>' for x, y in p)
        lx = ml + (i % 3) * (pw / 3)
        ly = height + 4 + 16 * (i // 3)
        out.append(f'<line x1="{lx:.1f}" y1="{ly - 4}" x2="{lx + 18:.1f}" y2="{ly - 4}" stroke="{color}" '
                   f'stroke-width="2"{dash}/><text x="{lx + 22:.1f}" y="{ly}">{ESC(str(s["label"]))}</text>')
    out.append("</svg>")
    return "".join(out)


# -- reading a run directory --------------------------------------------------------------------------------
@dataclass
class RunData:
    """Everything the report reads from one run directory (``None`` / empty where a file is missing)."""

    path: Path
    label: str
    config: dict | None = None
    train_lines: list[dict] = field(default_factory=list)
    valid_lines: list[dict] = field(default_factory=list)
    evals: dict[str, dict] = field(default_factory=dict)
    profile_path: Path | None = None
    profiles: dict | None = None  # {layer: {"grid": (rows, cols), "groups": [...], "values": [G, C], "counts": [G]}}
    regions: dict | None = None
    stats: dict | None = None
    filter_pngs: list[Path] = field(default_factory=list)
    optimal: list[dict] = field(default_factory=list)

    @property
    def topo_weight(self):
        try:
            return float(self.config["train"]["topo_weight"])
        except (TypeError, KeyError, ValueError):
            return None

    @property
    def layer_names(self) -> list[str]:
        if self.config and self.config.get("layers"):
            return [f"conv{i + 1}" for i in range(len(self.config["layers"]))]
        return list(self.profiles or {})

    def grid(self, layer: str) -> tuple[int, int] | None:
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
    """``profiles/<name>.npz`` -> ``{layer: {"grid", "groups", "values" [G, C] (GradNAP), "counts" [G]}}``."""
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
    lines = _read_jsonl(p / "metrics.jsonl")
    rd.train_lines = [l for l in lines if l.get("kind") == "train"]
    rd.valid_lines = [l for l in lines if l.get("kind") == "valid"]
    for split in ("test", "valid", "train"):
        d = _read_json(p / "eval" / f"{split}.json")
        if d is not None:
            rd.evals[split] = d
    pp = p / "profiles" / f"{profile}.npz"
    if pp.is_file():
        rd.profile_path = pp
        rd.profiles = _load_profiles(pp)
    rd.regions = _read_json(p / "maps" / "regions.json")
    rd.stats = _read_json(p / "maps" / "stats.json")
    fdir = p / "filters"
    if fdir.is_dir():
        rd.filter_pngs = sorted(fdir.glob("*.png"))
    rd.optimal = _scan_optimal(p / "optimal")
    return rd


def _scan_optimal(root: Path) -> list[dict]:
    """``optimal/<layer>/<group>/`` folders with their summary, PNGs and WAVs."""
    out = []
    if not root.is_dir():
        return out
    for layer_dir in sorted(d for d in root.iterdir() if d.is_dir()):
        for gdir in sorted(d for d in layer_dir.iterdir() if d.is_dir()):
            summary = _read_json(gdir / "summary.json") or {}
            out.append({"layer": layer_dir.name, "group": gdir.name, "dir": gdir, "summary": summary,
                        "pngs": {f.stem: f for f in sorted(gdir.glob("*.png"))},
                        "wavs": {f.stem: f for f in sorted(gdir.glob("*.wav"))}})
    return out


def _corpus_summary(data) -> dict | None:
    if data is None:
        return None
    from ..corpus import Corpus

    corpus = data if isinstance(data, Corpus) else Corpus.load(data)
    summary = corpus.summary()
    # Synthetic corpora name the voice of each speaker (a voice at one rate/pitch) in an extra field.
    summary["voices"] = sorted({str(u.extra.get("voice", u.speaker)) for u in corpus})
    for split, d in summary["splits"].items():
        d["voices"] = sorted({str(u.extra.get("voice", u.speaker)) for u in corpus.split(split)})
    return summary


# -- sections ----------------------------------------------------------------------------------------------
def _models(run: RunData, baseline: RunData | None) -> list[RunData]:
    return [run] + ([baseline] if baseline is not None else [])


def _lambda_label(rd: RunData) -> str:
    w = rd.topo_weight
    return "λ = ?" if w is None else f"λ = {w:g}"


def _layers_text(cfg: dict) -> str:
    from ..config import config_from_dict

    try:
        rc = config_from_dict(cfg)
    except ValueError:
        return "(config not readable)"
    parts = []
    for name, spec in zip(rc.model.layer_names, rc.model.layers):
        g = spec.get_grid()
        s = f" s{spec.stride}" if spec.stride != 1 else ""
        parts.append(f"{name}: {spec.channels}×k{spec.kernel}{s} [{g.rows}×{g.cols}]")
    return "; ".join(parts)


def _n_params(cfg: dict) -> int | None:
    from ..config import config_from_dict
    from ..text import N_CLASSES

    try:
        rc = config_from_dict(cfg)
    except ValueError:
        return None
    n, c_in = 0, rc.model.features.n_mels
    for spec in rc.model.layers:
        n += spec.channels * c_in * spec.kernel + spec.channels
        c_in = spec.channels
    return n + N_CLASSES * c_in + N_CLASSES


def _section_data(summary: dict | None, data_path: str | None) -> str:
    if summary is None:
        return ("<h3>Data</h3>" + _missing("No corpus was given, so the data summary is not shown.",
                                           "toposcope report RUN --data CORPUS_DIR"))
    rows = []
    for split in ("train", "valid", "test"):
        s = summary["splits"].get(split, {})
        voices = s.get("voices", s.get("speakers", []))
        rows.append(f'<tr><td class="l">{ESC(split)}</td><td>{s.get("utterances", 0)}</td>'
                    f'<td>{60 * s.get("hours", 0.0):.1f}</td><td>{len(s.get("speakers", []))}</td>'
                    f'<td class="l">{ESC(", ".join(voices))}</td></tr>')
    n_ph = len(summary.get("phone_counts", {}))
    voices = summary.get("voices", summary["speakers"])
    return (f'<h3>Data</h3><p>Corpus <code>{ESC(data_path or summary.get("root", ""))}</code>: '
            f'{summary["utterances"]} utterances, {summary["hours"]:.2f} h, {len(voices)} voices '
            f'({len(summary["speakers"])} speakers = voice × rate × pitch variants), {n_ph} phone labels.</p>'
            '<table><tr><th class="l">split</th><th>utterances</th><th>minutes</th><th>speakers</th>'
            '<th class="l">voices</th></tr>' + "".join(rows) + "</table>")


def _section_config(models: list[RunData]) -> str:
    rows = []
    for rd in models:
        cfg = rd.config or {}
        tr = cfg.get("train", {})
        lines = rd.train_lines + rd.valid_lines
        last = {"step": max((l.get("step", 0) for l in lines), default="n/a"),
                "epoch": max((l.get("epoch", 0) for l in lines), default="n/a")}
        n = _n_params(cfg)
        rows.append(
            f'<tr><td class="l">{ESC(rd.label)}</td><td class="l"><code>{ESC(str(rd.path))}</code></td>'
            f'<td class="l">{ESC(str(cfg.get("name", "?")))}</td><td>{ESC(_lambda_label(rd))}</td>'
            f'<td>{"n/a" if n is None else f"{n / 1e6:.2f} M"}</td>'
            f'<td>{ESC(str(last.get("step", "n/a")))}</td><td>{ESC(str(last.get("epoch", "n/a")))}</td>'
            f'<td>{ESC(str(tr.get("batch_size", "?")))}</td><td>{ESC(str(tr.get("lr", "?")))}</td>'
            f'<td class="l">{ESC(_layers_text(cfg))}</td></tr>')
    details = "".join(
        f"<details><summary>config.toml of {ESC(rd.label)}</summary><pre class=\"cfg\">"
        f"{ESC((rd.path / 'config.toml').read_text(encoding='utf-8'))}</pre></details>" for rd in models)
    return ('<h3>Models</h3><table><tr><th class="l">run</th><th class="l">path</th><th class="l">config</th>'
            '<th>topographic weight</th><th>parameters</th><th>steps</th><th>epochs</th><th>batch</th><th>lr</th>'
            '<th class="l">gridded layers (filters × kernel, stride, grid)</th></tr>' + "".join(rows) + "</table>"
            + details)


def _section_curves(models: list[RunData]) -> str:
    if not any(rd.train_lines for rd in models):
        return "<h3>Training curves</h3>" + _missing("No training lines in metrics.jsonl.", "toposcope train")
    charts = []
    ctc = [{"label": f"{rd.label} CTC", "x": [l["step"] for l in rd.train_lines],
            "y": [l.get("ctc", l.get("loss")) for l in rd.train_lines], "color": PALETTE[i], "dash": i > 0}
           for i, rd in enumerate(models) if rd.train_lines]
    charts.append(svg_line_chart(ctc, title="CTC loss (training)", xlabel="step", ylabel="CTC / character",
                                 log_y=all(min(s["y"]) > 0 for s in ctc)))
    topo = [{"label": f"{rd.label} λ·L_topo", "x": [l["step"] for l in rd.train_lines],
             "y": [l.get("topo", 0.0) for l in rd.train_lines], "color": PALETTE[i], "dash": i > 0}
            for i, rd in enumerate(models) if rd.train_lines and any(l.get("topo", 0) for l in rd.train_lines)]
    if topo:
        charts.append(svg_line_chart(topo, title="topographic term (training)", xlabel="step", ylabel="λ · Σ L"))
    cer = [{"label": f"{rd.label} valid CER", "x": [l["step"] for l in rd.valid_lines],
            "y": [100 * l["cer"] for l in rd.valid_lines], "color": PALETTE[i], "dash": i > 0, "marker": True}
           for i, rd in enumerate(models) if rd.valid_lines]
    if cer:
        charts.append(svg_line_chart(cer, title="validation CER", xlabel="step", ylabel="CER %"))
    sim = []
    layers = models[0].layer_names
    for i, rd in enumerate(models):
        for j, layer in enumerate(layers):
            pts = [(l["step"], l["similarity"][layer]) for l in rd.train_lines if layer in l.get("similarity", {})]
            if pts:
                sim.append({"label": f"{layer} {'' if i == 0 else '(' + rd.label + ')'}".strip(),
                            "x": [p[0] for p in pts], "y": [p[1] for p in pts],
                            "color": PALETTE[j % len(PALETTE)], "dash": i > 0})
    if sim:
        title = "topographic similarity S̄ per layer"
        if len(models) > 1:
            title += f" (dashed: {models[1].label})"
        charts.append(svg_line_chart(sim, title=title, xlabel="step", ylabel="S̄", width=560))
    return '<h3>Training curves</h3><div class="cols">' + "".join(c for c in charts if c) + "</div>"


def _section_results(models: list[RunData]) -> str:
    split = next((s for s in ("test", "valid") if any(s in rd.evals for rd in models)), None)
    if split is None:
        return "<h3>Recognition accuracy</h3>" + _missing("No evaluation results (eval/test.json).",
                                                          "toposcope evaluate RUN --data CORPUS_DIR")
    base = models[1].evals.get(split) if len(models) > 1 else None
    rows = []
    for rd in models:
        e = rd.evals.get(split)
        if e is None:
            rows.append(f'<tr><td class="l">{ESC(rd.label)}</td><td colspan="5" class="l">not evaluated on '
                        f'{ESC(split)}</td></tr>')
            continue
        dc = dw = ""
        if base is not None and rd is not models[1]:
            dc = f"{100 * (e['cer'] - base['cer']):+.1f}"
            dw = f"{100 * (e['wer'] - base['wer']):+.1f}"
        rows.append(f'<tr><td class="l">{ESC(rd.label)}</td><td>{ESC(_lambda_label(rd))}</td>'
                    f'<td>{_pct(e["cer"])}</td><td>{_pct(e["wer"])}</td><td>{dc}</td><td>{dw}</td>'
                    f'<td>{int(e.get("n_utterances", 0))}</td></tr>')
    out = [f"<h3>Recognition accuracy ({ESC(split)} split, greedy CTC decoding)</h3>",
           '<table><tr><th class="l">run</th><th>weight</th><th>CER</th><th>WER</th><th>ΔCER vs baseline (points)</th>'
           '<th>ΔWER vs baseline (points)</th><th>utterances</th></tr>', "".join(rows), "</table>"]
    speakers = sorted({s for rd in models for s in rd.evals.get(split, {}).get("per_speaker", {})})
    if speakers:
        head = "".join(f"<th>CER {ESC(rd.label)}</th><th>WER {ESC(rd.label)}</th>" for rd in models)
        body = []
        for spk in speakers:
            cells = []
            for rd in models:
                v = rd.evals.get(split, {}).get("per_speaker", {}).get(spk)
                cells.append(f"<td>{_pct(v['cer'])}</td><td>{_pct(v['wer'])}</td>" if v else "<td>–</td><td>–</td>")
            n = next((rd.evals[split]["per_speaker"][spk]["n"] for rd in models
                      if spk in rd.evals.get(split, {}).get("per_speaker", {})), 0)
            body.append(f'<tr><td class="l">{ESC(spk)}</td><td>{int(n)}</td>{"".join(cells)}</tr>')
        out.append('<details><summary>per voice</summary><table><tr><th class="l">voice</th><th>n</th>'
                   + head + "</tr>" + "".join(body) + "</table></details>")
    for rd in models:
        ex = rd.evals.get(split, {}).get("examples") or []
        if ex:
            items = "".join(f'<tr><td class="l"><code>{ESC(str(x.get("id", "")))}</code></td>'
                            f'<td class="l">{ESC(str(x.get("ref", "")))}</td>'
                            f'<td class="l">{ESC(str(x.get("hyp", "")))}</td></tr>' for x in ex)
            out.append(f"<details><summary>example transcripts, {ESC(rd.label)}</summary>"
                       '<table><tr><th class="l">utterance</th><th class="l">reference</th>'
                       f'<th class="l">recognised</th></tr>{items}</table></details>')
    return "".join(out)


def _maps_payload(models: list[RunData]) -> dict | None:
    """The arrays the maps section draws: per run, layer and group the on-grid GradNAP values, the
    smoothed map (:func:`toposcope.analysis.maps.smooth_map`) and the region (``maps/regions.json``, or
    :func:`toposcope.analysis.maps.find_region` when the run has profiles but no maps yet)."""
    from ..analysis.maps import find_region, smooth_map

    with_prof = [rd for rd in models if rd.profiles]
    if not with_prof:
        return None
    main = with_prof[0]
    layer_order = [l for l in main.layer_names if l in main.profiles] or list(main.profiles)
    payload = {"models": [], "layer_order": layer_order, "layers": {}, "groups": {}, "values": {}}
    for i, rd in enumerate(models):
        key = f"m{i}"
        payload["models"].append({"key": key, "label": f"{rd.label} ({_lambda_label(rd)})"})
        payload["layers"][key], payload["values"][key] = {}, {}
        for layer, lp in (rd.profiles or {}).items():
            rows, cols = lp["grid"]
            payload["layers"][key][layer] = {"rows": rows, "cols": cols}
            maps = lp["values"].reshape(len(lp["groups"]), rows, cols)
            sm = smooth_map(maps)
            regions = (rd.regions or {}).get(layer, {})
            vals = {}
            for g_i, g in enumerate(lp["groups"]):
                reg = regions.get(g)
                if reg is None:
                    reg = find_region(sm[g_i], smoothed=True).to_dict()
                vals[g] = {"v": _round_list(maps[g_i]), "s": _round_list(sm[g_i]),
                           "n": int(lp["counts"][g_i]), "region": reg}
            payload["values"][key][layer] = vals
            if layer in layer_order and layer not in payload["groups"]:
                payload["groups"][layer] = list(lp["groups"])
    for layer in layer_order:
        payload["groups"].setdefault(layer, [])
    # Default view: the first non-input layer (the seed's Figure 1B shows the second layer) and a vowel.
    payload["default_layer"] = layer_order[1] if len(layer_order) > 1 else layer_order[0]
    groups = payload["groups"].get(payload["default_layer"], [])
    payload["default_group"] = next((g for g in ("aa", "iy", "s", "t") if g in groups), groups[0] if groups else None)
    return payload


def _section_maps(models: list[RunData], payload: dict | None) -> str:
    head = '<section id="maps"><h2>Maps</h2>'
    if payload is None:
        return head + _missing("No profiles were found (profiles/gradnap-phone.npz), so there are no maps.",
                               "toposcope profile RUN --data CORPUS_DIR && toposcope maps RUN") + "</section>"
    missing = [rd.label for rd in models if not rd.profiles]
    note = (_missing(f"No profiles for {', '.join(missing)}: only the other run is shown.",
                     "toposcope profile RUN --data CORPUS_DIR") if missing else "")
    method = next((lp.get("method") for rd in models if rd.profiles for lp in rd.profiles.values()), "gradnap")
    return head + note + f"""
<p class="note">Each map shows one phone's {ESC(str(method))} values (the group's mean adjusted activation minus the
mean over all groups) for every filter of a layer at its grid position: red = more than average for this phone,
blue = less. <b>On grid</b> draws the raw values, <b>smoothed</b> the non-strided 3×3 average pooling,
<b>interpolated</b> the on-grid values bilinearly interpolated between filter centres (EEG style). The black/white
box is the most responsive 3×3 region (argmax of the smoothed map). Hover a map to read values.</p>
<div class="controls">
 <label>layer <select id="map-layer" aria-label="layer"></select></label>
 <label>phone <select id="map-phone" aria-label="phone"></select></label>
 <span>view
  <label><input type="radio" name="map-view" value="grid"> on grid</label>
  <label><input type="radio" name="map-view" value="smooth" checked> smoothed</label>
  <label><input type="radio" name="map-view" value="interp"> interpolated</label></span>
 <span>colour scale
  <label><input type="radio" name="map-scale" value="map" checked> per map</label>
  <label><input type="radio" name="map-scale" value="layer"> per layer</label></span>
</div>
<div id="map-panels" class="cols"></div>
<div id="hover"></div>
<h3>Overview: every phone of the chosen layer</h3>
<div id="map-overview" class="cols"></div>
</section>"""


def _section_optimal(run: RunData) -> str:
    head = '<section id="optimal"><h2>Optimal inputs</h2>'
    if not run.optimal:
        return head + _missing(f"No optimal inputs in {run.path / 'optimal'}.", "toposcope optimize RUN") + "</section>"
    parts = [head, f"""<p class="note">For the most responsive 3×3 region of a phone's map, an input log-mel
spectrogram was optimised to maximise the mean activation of each region filter alone (<b>single-filter</b>,
laid out like the region on the grid) and of all region filters together (<b>joint</b>). Audio: mel inversion +
Griffin-Lim. Run: <code>{ESC(str(run.path))}</code>.</p>"""]
    for item in run.optimal:
        parts.append(_optimal_card(item))
    parts.append("</section>")
    return "".join(parts)


def _optimal_card(item: dict) -> str:
    """One region: its figure (``region.png``: single-filter inputs laid out like the region, and the joint
    input) and a player per input, laid out the same way, with the activation reached against the data maximum."""
    s, pngs, wavs = item["summary"], item["pngs"], item["wavs"]
    layer, group = s.get("layer", item["layer"]), s.get("group", item["group"])
    title = f"layer {layer}, phone /{group}/"
    info = []
    if s.get("center"):
        info.append(f"region around ({', '.join(str(int(v)) for v in s['center'])})")
    if isinstance(s.get("input"), dict) and _finite(s["input"].get("seconds")):
        info.append(f"{1000 * float(s['input']['seconds']):.0f} ms inputs")
    if "all_exceed" in s:
        info.append("every input beats the largest activation on real data" if s["all_exceed"]
                    else "NOT every input beats the largest activation on real data")
    targets = [t for t in s.get("targets", []) if isinstance(t, dict)]
    singles = [t for t in targets if "position" in t and "filter" in t]
    cells = []
    if singles:
        r0 = min(int(t["position"][0]) for t in singles)
        c0 = min(int(t["position"][1]) for t in singles)
        for t in singles:
            name = str(t.get("name", f"filter_{t['filter']}"))
            r, c = int(t["position"][0]) - r0, int(t["position"][1]) - c0
            cap = f"#{int(t['filter'])}: {_num(t.get('activation'), 2)} / {_num(t.get('data_max'), 2)}"
            ok = "" if t.get("exceeds") else " (below data max)"
            audio = _audio(wavs[name], f"{title}, filter {t['filter']}") if name in wavs else ""
            cells.append(f'<figure style="grid-row:{r + 1};grid-column:{c + 1}"><figcaption>{ESC(cap + ok)}'
                         f"</figcaption>{audio}</figure>")
    joint = next((t for t in targets if t.get("name") == "joint"), None)
    jcell = ""
    if joint is not None or "joint" in wavs:
        cap = "joint" + (f": {_num(joint.get('activation'), 2)} / {_num(joint.get('data_max'), 2)}" if joint else "")
        jcell = (f'<div class="joint"><figure><figcaption>{ESC(cap)}</figcaption>'
                 f'{_audio(wavs["joint"], f"{title}, joint") if "joint" in wavs else ""}</figure></div>')
    players = (f'<div class="cols"><div><p class="note">single-filter inputs (activation reached / largest on real '
               f'data)</p><div class="optgrid" style="grid-template-columns:repeat(3, auto)">{"".join(cells)}</div>'
               f'</div><div><p class="note">joint input (mean over the region)</p>{jcell}</div></div>')
    figs = "".join(_img(p, f"{title}: optimal inputs ({k})") for k, p in pngs.items())
    if not figs:
        figs = _missing(f"no images in {item['dir']}")
    return (f'<div class="card" style="margin:10px 0"><h4>{ESC(title)}</h4>'
            f'<p class="note">{ESC("; ".join(info))}</p>{figs}{players}</div>')


# -- statistics (maps/stats.json) ---------------------------------------------------------------------------
def _stats_layers(stats: dict | None) -> dict:
    """``{layer: {...}}`` of a ``maps/stats.json`` (written by ``toposcope maps``, :mod:`toposcope.analysis.stats`)."""
    if not isinstance(stats, dict) or not isinstance(stats.get("layers"), dict):
        return {}
    return {k: v for k, v in stats["layers"].items() if isinstance(v, dict)}


def _similarity_of(entry: dict | None) -> dict | None:
    """``{"observed", "mean", "sd", "z", "p"}``: S̄ of the layer's weights against the permutation null."""
    v = (entry or {}).get("s_bar")
    return v if isinstance(v, dict) and "observed" in v else None


def _moran_of(entry: dict | None) -> dict:
    """``{group: {"morans_i", "z", "p", "regions", ...}}`` of one layer."""
    v = (entry or {}).get("groups")
    return {g: d for g, d in v.items() if isinstance(d, dict)} if isinstance(v, dict) else {}


def _clustered_of(entry: dict | None, key: str = "share_clustered"):
    v = (entry or {}).get(key)
    return float(v) if _finite(v) else None


def _section_topography(models: list[RunData]) -> str:
    out = ['<section id="topography"><h2>Topography</h2>',
           '<p class="note">S̄ is the mean over filters of the distance-weighted cosine similarity to the 3×3 '
           'grid neighbours (SPEC §4). The null distribution puts the same filters at randomly shuffled grid '
           'positions; z = (S̄ − null mean) / null sd, p one-sided.</p>']
    layers = models[0].layer_names
    have = [rd for rd in models if _stats_layers(rd.stats)]
    if not have:
        out.append(_missing("No maps/stats.json in the run directories, so S̄ against the null is not shown.",
                            "toposcope maps RUN"))
    else:
        head = "".join(f'<th colspan="4">{ESC(rd.label)} ({ESC(_lambda_label(rd))})</th>' for rd in models)
        sub = "<th>S̄</th><th>null mean ± sd</th><th>z</th><th>p</th>" * len(models)
        rows, bars = [], []
        for layer in layers:
            cells = []
            for rd in models:
                e = _stats_layers(rd.stats).get(layer)
                sim = _similarity_of(e) if e else None
                if sim is None:
                    cells.append('<td colspan="4">–</td>')
                    continue
                sig = ' class="good"' if _finite(sim.get("p")) and sim["p"] < 0.05 else ""
                cells.append(f"<td>{_num(sim.get('observed'))}</td><td>{_num(sim.get('mean'))} ± "
                             f"{_num(sim.get('sd'))}</td><td>{_num(sim.get('z'), 1)}</td><td{sig}>{_pval(sim.get('p'))}</td>")
            grid = models[0].grid(layer)
            gtxt = f"{grid[0]}×{grid[1]}" if grid else "?"
            rows.append(f'<tr><td class="l">{ESC(layer)}</td><td>{gtxt}</td>{"".join(cells)}</tr>')
        out.append('<table><tr><th class="l" rowspan="2">layer</th><th rowspan="2">grid</th>' + head + "</tr><tr>"
                   + sub + "</tr>" + "".join(rows) + "</table>")
        series = []
        for i, rd in enumerate(models):
            sl = _stats_layers(rd.stats)
            xs = [j + 1 for j, l in enumerate(layers) if l in sl and _similarity_of(sl[l])]
            obs = [_similarity_of(sl[l])["observed"] for l in layers if l in sl and _similarity_of(sl[l])]
            nul = [_similarity_of(sl[l]).get("mean") for l in layers if l in sl and _similarity_of(sl[l])]
            if xs:
                series.append({"label": f"{rd.label} S̄", "x": xs, "y": obs, "color": PALETTE[i], "marker": True})
                series.append({"label": f"{rd.label} null", "x": xs, "y": nul, "color": PALETTE[i], "dash": True,
                               "marker": True})
        chart = svg_line_chart(series, title="S̄ per layer against the shuffled-position null (dashed: null mean)",
                               xlabel="layer", ylabel="S̄", width=520,
                               xticks=[(j + 1, l) for j, l in enumerate(layers)])
        out.append(chart)
    # Figure 1A close-ups
    out.append("<h3>Filter close-ups (seed Figure 1A)</h3>")
    any_png = False
    for rd in models:
        if rd.filter_pngs:
            any_png = True
            out.append(f"<h4>{ESC(rd.label)} ({ESC(_lambda_label(rd))})</h4>")
            out.append("".join(f'<figure style="margin:6px 0">{_img(p, f"{rd.label}: {p.name}")}'
                               f'<figcaption class="note">{ESC(p.name)}</figcaption></figure>' for p in rd.filter_pngs))
    if not any_png:
        out.append(_missing("No filter close-ups (filters/*.png) in the run directories.", "toposcope filters RUN"))
    out.append("</section>")
    return "".join(out)


def _section_statistics(models: list[RunData]) -> str:
    stats = [rd.stats if isinstance(rd.stats, dict) else {} for rd in models]
    alpha = next((st.get("alpha") for st in stats if _finite(st.get("alpha"))), 0.05)
    perms = next((st.get("n_permutations") for st in stats if st.get("n_permutations")), None)
    adj = next((st.get("adjacency") for st in stats if st.get("adjacency")), "queen")
    out = ['<section id="statistics"><h2>Statistics</h2>',
           f'<p class="note">Moran\'s I measures whether a phone\'s GradNAP values are similar between grid '
           f'neighbours ({ESC(str(adj))} adjacency; 0 ≈ no spatial structure, &gt; 0 clustered). Its p-value compares '
           f'the map with {ESC(str(perms or "?"))} copies whose filter positions are shuffled. A phone counts as '
           f'clustered when p &lt; {alpha:g}; "FDR" applies the Benjamini-Hochberg correction over the phones of '
           f'a layer. Regions: connected cells above the map\'s mean + 1 sd.</p>']
    if not any(_stats_layers(st) for st in stats):
        out.append(_missing("No maps/stats.json in the run directories, so Moran's I is not shown.",
                            "toposcope maps RUN") + "</section>")
        return "".join(out)
    layers = models[0].layer_names
    head = "".join(f'<th colspan="5">{ESC(rd.label)} ({ESC(_lambda_label(rd))})</th>' for rd in models)
    sub = "<th>clustered</th><th>FDR</th><th>mean I</th><th>regions</th><th>largest (null)</th>" * len(models)
    rows = []
    for layer in layers:
        cells = []
        for st in stats:
            e = _stats_layers(st).get(layer)
            if e is None:
                cells.append('<td colspan="5">–</td>')
                continue
            n = len(_moran_of(e))
            cells.append(f"<td>{_pct(_clustered_of(e))} of {n}</td><td>{_pct(_clustered_of(e, 'share_clustered_fdr'))}</td>"
                         f"<td>{_num(e.get('mean_morans_i'))}</td><td>{_num(e.get('mean_regions'), 1)}</td>"
                         f"<td>{_num(e.get('mean_largest_region'), 1)} ({_num(e.get('mean_largest_region_null'), 1)})</td>")
        rows.append(f'<tr><td class="l">{ESC(layer)}</td>{"".join(cells)}</tr>')
    out.append('<h3>Share of clustered phones</h3><table><tr><th class="l" rowspan="2">layer</th>' + head
               + "</tr><tr>" + sub + "</tr>" + "".join(rows) + "</table>")
    out.append("<h3>Moran's I per phone</h3>")
    for k, layer in enumerate(layers):
        morans = [_moran_of(_stats_layers(st).get(layer)) for st in stats]
        groups: list[str] = []
        for m in morans:
            groups += [g for g in m if g not in groups]
        if not groups:
            continue
        head2 = "".join(f"<th>I ({ESC(rd.label)})</th><th>z</th><th>p</th>" for rd in models)
        body = []
        for g in groups:
            cells = []
            for m in morans:
                d = m.get(g)
                if d is None:
                    cells.append("<td>–</td><td>–</td><td>–</td>")
                    continue
                sig = ' class="good"' if _finite(d.get("p")) and d["p"] < alpha else ""
                cells.append(f"<td>{_num(d.get('morans_i'))}</td><td>{_num(d.get('z'), 1)}</td>"
                             f"<td{sig}>{_pval(d.get('p'))}</td>")
            body.append(f'<tr><td class="l">{ESC(g)}</td>{"".join(cells)}</tr>')
        out.append(f"<details{' open' if k == 0 else ''}><summary>{ESC(layer)}: Moran's I of every phone map</summary>"
                   f'<table><tr><th class="l">phone</th>{head2}</tr>{"".join(body)}</table></details>')
    out.append("</section>")
    return "".join(out)


# -- the page --------------------------------------------------------------------------------------------
def _asset(name: str) -> str:
    return (resources.files("toposcope") / "assets" / name).read_text(encoding="utf-8")


def render_report(run: RunData, baseline: RunData | None = None, *, corpus_summary: dict | None = None,
                  data_path: str | None = None, title: str | None = None) -> str:
    """The report page as a string (see :func:`build_report`)."""
    models = _models(run, baseline)
    payload = _maps_payload(models)
    now = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    title = title or f"toposcope report: {run.label}"
    from .. import __version__

    base_txt = (f" · baseline <code>{ESC(str(baseline.path))}</code>" if baseline is not None
                else " · no baseline run given (<code>--baseline RUN2</code>)")
    body = [
        f'<header class="top"><h1>{ESC(title)}</h1><p>run <code>{ESC(str(run.path))}</code>{base_txt}</p>'
        f'<p>generated {ESC(now)} by toposcope {ESC(__version__)}; self-contained, works offline.</p></header>',
        '<nav class="toc"><a href="#summary">Run summary</a><a href="#topography">Topography</a>'
        '<a href="#maps">Maps</a><a href="#optimal">Optimal inputs</a><a href="#statistics">Statistics</a></nav>',
        "<main>",
        '<section id="summary"><h2>Run summary</h2>',
        _section_data(corpus_summary, data_path), _section_config(models), _section_curves(models),
        _section_results(models), "</section>",
        _section_topography(models),
        _section_maps(models, payload),
        _section_optimal(run),
        _section_statistics(models),
        "</main>",
    ]
    data = {"maps": payload}
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>{ESC(title)}</title><style>{_asset('report.css')}</style></head><body>"
            + "".join(body)
            + f'<script type="application/json" id="toposcope-data">{script_json(data)}</script>'
            + f"<script>{_asset('report.js')}</script></body></html>\n")


def build_report(run, baseline=None, out=None, *, data=None, title: str | None = None,
                 profile: str = DEFAULT_PROFILE, labels: tuple[str, str] | None = None) -> Path:
    """Write the self-contained HTML report of run directory ``run`` (and ``baseline``) to ``out``
    (default ``RUN/report.html``); ``data`` (corpus dir or :class:`Corpus`) adds the data summary.
    Returns the path written."""
    if labels is None:
        rl = Path(run).resolve().name or "run"
        bl = Path(baseline).resolve().name if baseline is not None else "baseline"
        if bl == rl:
            bl = f"{bl} (baseline)"
    else:
        rl, bl = labels
    rd = load_run_data(run, rl, profile=profile)
    bd = load_run_data(baseline, bl, profile=profile) if baseline is not None else None
    summary = _corpus_summary(data)
    page = render_report(rd, bd, corpus_summary=summary, data_path=None if data is None else str(getattr(data, "root", data)),
                         title=title)
    out = Path(out) if out is not None else Path(run) / "report.html"
    from ..checkpoint import write_text_atomic

    write_text_atomic(out, page)
    out.chmod(0o644)  # a page to share, not a secret (the atomic writer creates files 0600)
    return out
