"""Optimal inputs of the topographic run: per region the spectrogram figure and a player per input."""

from __future__ import annotations

from ..context import ReportContext
from ..html import audio, esc, finite, img, missing, num

__all__ = ["render", "card"]


def render(ctx: ReportContext) -> str:
    run = ctx.run
    head = '<section id="optimal"><h2>Optimal inputs</h2>'
    if not run.optimal:
        return head + missing(f"No optimal inputs in {run.path / 'optimal'}.", "toposcope optimize RUN") + "</section>"
    parts = [head, f"""<p class="note">For the most responsive 3×3 region of a phone's map, an input log-mel
spectrogram was optimised to maximise the mean activation of each region filter alone (<b>single-filter</b>,
laid out like the region on the grid) and of all region filters together (<b>joint</b>), as described in
docs/method.md (Optimal inputs). Audio: mel inversion + Griffin-Lim. Run: <code>{esc(str(run.path))}</code>.</p>"""]
    parts.extend(card(item) for item in run.optimal)
    parts.append("</section>")
    return "".join(parts)


def card(item: dict) -> str:
    """One region: its figure (``region.png``: single-filter inputs laid out like the region, and the joint
    input) and a player per input, laid out the same way, with the activation reached against the data maximum."""
    s, pngs, wavs = item["summary"], item["pngs"], item["wavs"]
    layer, group = s.get("layer", item["layer"]), s.get("group", item["group"])
    title = f"layer {layer}, phone /{group}/"
    info = []
    if s.get("center"):
        info.append(f"region around ({', '.join(str(int(v)) for v in s['center'])})")
    if isinstance(s.get("input"), dict) and finite(s["input"].get("seconds")):
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
            cap = f"#{int(t['filter'])}: {num(t.get('activation'), 2)} / {num(t.get('data_max'), 2)}"
            ok = "" if t.get("exceeds") else " (below data max)"
            player = audio(wavs[name], f"{title}, filter {t['filter']}") if name in wavs else ""
            cells.append(f'<figure style="grid-row:{r + 1};grid-column:{c + 1}"><figcaption>{esc(cap + ok)}'
                         f"</figcaption>{player}</figure>")
    joint = next((t for t in targets if t.get("name") == "joint"), None)
    jcell = ""
    if joint is not None or "joint" in wavs:
        cap = "joint" + (f": {num(joint.get('activation'), 2)} / {num(joint.get('data_max'), 2)}" if joint else "")
        jcell = (f'<div class="joint"><figure><figcaption>{esc(cap)}</figcaption>'
                 f'{audio(wavs["joint"], f"{title}, joint") if "joint" in wavs else ""}</figure></div>')
    players = (f'<div class="cols"><div><p class="note">single-filter inputs (activation reached / largest on real '
               f'data)</p><div class="optgrid" style="grid-template-columns:repeat(3, auto)">{"".join(cells)}</div>'
               f'</div><div><p class="note">joint input (mean over the region)</p>{jcell}</div></div>')
    figs = "".join(img(p, f"{title}: optimal inputs ({k})") for k, p in pngs.items())
    if not figs:
        figs = missing(f"no images in {item['dir']}")
    return (f'<div class="card" style="margin:10px 0"><h4>{esc(title)}</h4>'
            f'<p class="note">{esc("; ".join(info))}</p>{figs}{players}</div>')
