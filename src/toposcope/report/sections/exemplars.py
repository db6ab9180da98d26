"""What each region responds to: per region, side by side, the natural optimal input (single-filter grid and
joint), the mean spectrogram of its top-k real exemplars with the exemplars themselves (audio players, phone
labels) and the phone histogram of those exemplars, with the data maximum named precisely
(``docs/optimal-inputs.md``; files from ``toposcope exemplars`` and ``toposcope optimize``)."""

from __future__ import annotations

from pathlib import Path

from ..._util import read_json
from ..context import ReportContext
from ..html import audio, esc, finite, img, missing, num

__all__ = ["render", "scan_exemplars", "region_card", "phone_bars"]

#: Regions shown when no optimal inputs name the interesting ones.
MAX_REGIONS = 6


def scan_exemplars(run_path) -> dict:
    """``RUN/exemplars/``: ``{"summary": dict | None, "regions": {(layer, group): {"json", "dir", "data"}}}``
    (every ``<layer>/<group>.json`` that parses; a broken file is skipped, never fatal)."""
    root = Path(run_path) / "exemplars"
    out = {"summary": None, "regions": {}, "root": root}
    if not root.is_dir():
        return out
    try:
        out["summary"] = read_json(root / "summary.json", missing_ok=True)
    except ValueError:
        out["summary"] = None
    for layer_dir in sorted(d for d in root.iterdir() if d.is_dir()):
        for f in sorted(layer_dir.glob("*.json")):
            try:
                d = read_json(f)
            except ValueError:
                continue
            if isinstance(d, dict) and isinstance(d.get("targets"), list) and d["targets"]:
                out["regions"][(str(d.get("layer", layer_dir.name)), str(d.get("group", f.stem)))] = {
                    "json": f, "dir": layer_dir / f.stem, "data": d}
    return out


def phone_bars(hist: dict, top: int = 8) -> str:
    """The phone histogram of a region's exemplars as horizontal bars: share of the exemplar windows' time
    per phone, its share of all searched speech, and the ratio (enrichment)."""
    rows = []
    items = [(p, h) for p, h in hist.items() if isinstance(h, dict)][:top]
    if not items:
        return '<p class="note">no exemplars, so no phone histogram</p>'
    for p, h in items:
        share = float(h.get("share") or 0.0)
        base = h.get("base")
        enr = h.get("enrichment")
        w = max(1, round(160 * min(share, 1.0)))
        bw = round(160 * min(float(base), 1.0)) if finite(base) else 0
        rows.append(
            f'<tr><td>/{esc(str(p))}/</td><td><div style="position:relative;width:160px;height:12px;background:#eee">'
            f'<div style="width:{w}px;height:12px;background:#c0392b"></div>'
            f'<div title="share of all searched speech" style="position:absolute;top:0;left:{bw}px;width:2px;'
            f'height:12px;background:#222"></div></div></td><td>{100 * share:.0f} %</td>'
            f'<td>{esc(str(h.get("contains", "")))}</td><td>{esc(num(enr, 2)) if finite(enr) else "–"}×</td></tr>')
    return ('<table class="phones" style="font-size:12px"><tr><th>phone</th><th>share of exemplar time '
            '(| = share of all speech)</th><th></th><th>in # windows</th><th>enrichment</th></tr>'
            + "".join(rows) + "</table>")


def _data_max_text(t: dict, d: dict) -> str:
    w = t.get("data_max_window")
    f = t.get("data_max_frame") or {}
    win = d.get("window") or {}
    return (f"data maximum: best {1000 * float(win.get('seconds') or 0):.0f} ms window mean (the input's length) "
            f"{num(w, 3)}; per-frame peak {num(f.get('value'), 3)}; over {d.get('n_utterances_searched', '?')} "
            f"utterances of the {esc(str(d.get('split', '?')))} split")


def region_card(d: dict, folder: Path, root: Path, optimal: dict | None) -> str:
    """One region: optimal inputs (figure) | exemplars (figure with their mean, players, phones) | histogram."""
    layer, group = str(d.get("layer")), str(d.get("group"))
    title = f"layer {layer}, phone /{group}/"
    joint = d["targets"][-1] if isinstance(d["targets"][-1], dict) else {}
    left = missing("no optimal inputs for this region", f"toposcope optimize RUN --layer {layer} --group {group}")
    if optimal is not None:
        s = optimal.get("summary") or {}
        pngs = optimal.get("pngs") or {}
        jt = next((t for t in s.get("targets", []) if isinstance(t, dict) and t.get("name") == "joint"), {})
        kind = s.get("parameterization", "unconstrained")
        nat = [t.get("naturalness") for t in s.get("targets", []) if isinstance(t, dict) and finite(t.get("naturalness"))]
        cap = (f"{kind} optimal inputs; joint activation {num(jt.get('activation'), 3)} vs best real window "
               f"{num(jt.get('data_max_window', jt.get('data_max')), 3)}"
               + (f"; naturalness ≥ {min(nat):.3f}" if nat else ""))
        figs = "".join(img(p, f"{title}: optimal inputs") for p in pngs.values())
        player = audio(optimal["wavs"]["joint"], f"{title}: joint optimal input") if "joint" in optimal.get("wavs", {}) else ""
        left = f'<p class="note">{esc(cap)}</p>{figs}{player}'
    fig = folder / "exemplars.png"
    mid = [img(fig, f"{title}: top exemplars and their mean spectrogram")] if fig.is_file() else []
    items = []
    for rank, x in enumerate(joint.get("exemplars", [])):
        if not isinstance(x, dict):
            continue
        phones = " ".join(str(p[2]) for p in x.get("phones", []) if isinstance(p, (list, tuple)) and len(p) == 3)
        label = f"#{rank + 1} {x.get('utt')} {num(x.get('start'), 2)}–{num(x.get('end'), 2)} s, value {num(x.get('value'), 3)}"
        wav = root / str(x.get("audio", "")) if x.get("audio") else None
        player = audio(wav, f"{title}: exemplar {rank + 1}") if wav is not None and wav.is_file() else ""
        items.append(f"<li>{esc(label)} <span class=\"note\">/{esc(phones)}/</span> {player}</li>")
    mid.append(f'<ol style="font-size:12px;padding-left:18px">{"".join(items)}</ol>' if items
               else '<p class="note">no real window activates this region</p>')
    right = phone_bars(d.get("phone_histogram") or joint.get("phone_histogram") or {})
    return (f'<div class="card" style="margin:10px 0"><h4>{esc(title)}</h4>'
            f'<p class="note">{_data_max_text(joint, d)}</p>'
            f'<div class="cols"><div style="max-width:520px"><p class="note"><b>optimal input</b> (single-filter grid, '
            f'joint)</p>{left}</div><div style="max-width:620px"><p class="note"><b>top {len(items)} real windows</b> '
            f'(joint objective), their mean spectrogram, audio and phones</p>{"".join(mid)}</div>'
            f'<div><p class="note"><b>phones of the exemplars</b></p>{right}</div></div></div>')


def render(ctx: ReportContext) -> str:
    run = ctx.run
    head = '<section id="exemplars"><h2>What the regions respond to</h2>'
    ex = scan_exemplars(run.path)
    if not ex["regions"]:
        return head + missing(f"No exemplars in {ex['root']}.", "toposcope exemplars RUN") + "</section>"
    optimal = {(str((o.get("summary") or {}).get("layer", o["layer"])), str((o.get("summary") or {}).get("group", o["group"]))): o
               for o in run.optimal}
    keys = [k for k in optimal if k in ex["regions"]]
    if not keys:
        keys = [k for k in ex["regions"] if (ex["regions"][k]["dir"] / "exemplars.png").is_file()][:MAX_REGIONS]
    s = ex["summary"] or {}
    parts = [head, f"""<p class="note">For each region: the optimal input (synthesised), the <b>exemplars</b> —
the {esc(str(s.get('k', 'k')))} real windows of speech with the largest mean activation of the region (same objective
and length as the optimal input; distinct, non-overlapping events) found in one pass over the
{esc(str(s.get('split', '?')))} split ({esc(str(s.get('n_utterances_searched', '?')))} utterances) — and which phones those
windows cover, against each phone's share of all speech (enrichment &gt; 1: the region fires on that phone more than on
a random window). The <b>data maximum</b> is named by kind: the best window mean of the input's own length and the
single-frame peak, with the number of utterances searched.</p>"""]
    for k in keys:
        r = ex["regions"][k]
        parts.append(region_card(r["data"], r["dir"], ex["root"], optimal.get(k)))
    if len(ex["regions"]) > len(keys):
        parts.append(f'<p class="note">{len(ex["regions"]) - len(keys)} more regions have exemplars in '
                     f'<code>{esc(str(ex["root"]))}</code> (one JSON per layer and phone).</p>')
    parts.append("</section>")
    return "".join(parts)
