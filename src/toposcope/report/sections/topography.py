"""Topography: weight S̄ per layer against the shuffled-position null, and the filter close-ups (seed Figure 1A)."""

from __future__ import annotations

from ..charts import PALETTE, svg_line_chart
from ..context import ReportContext
from ..html import esc, finite, img, missing, num, pval
from ..reader import similarity_of

__all__ = ["render"]


def render(ctx: ReportContext) -> str:
    models = ctx.models
    out = ['<section id="topography"><h2>Topography</h2>',
           '<p class="note">S̄ is the mean over filters of the distance-weighted cosine similarity of a filter\'s '
           'weights to those of its grid neighbours (docs/method.md, Regularizer). The null distribution puts the '
           'same filters at randomly shuffled grid positions; z = (S̄ − null mean) / null sd, p one-sided.</p>']
    layers = ctx.layers
    if not any(rd.stats_layers for rd in models):
        out.append(missing("No maps/stats.json in the run directories, so S̄ against the null is not shown.",
                           "toposcope maps RUN"))
    else:
        head = "".join(f'<th colspan="4">{esc(rd.label)} ({esc(rd.lambda_label)})</th>' for rd in models)
        sub = "<th>S̄</th><th>null mean ± sd</th><th>z</th><th>p</th>" * len(models)
        rows = []
        for layer in layers:
            cells = []
            for rd in models:
                sim = similarity_of(rd.stats_layers.get(layer))
                if sim is None:
                    cells.append('<td colspan="4">–</td>')
                    continue
                sig = ' class="good"' if finite(sim.get("p")) and sim["p"] < 0.05 else ""
                cells.append(f"<td>{num(sim.get('observed'))}</td><td>{num(sim.get('mean'))} ± "
                             f"{num(sim.get('sd'))}</td><td>{num(sim.get('z'), 1)}</td><td{sig}>{pval(sim.get('p'))}</td>")
            grid = models[0].grid(layer)
            gtxt = f"{grid[0]}×{grid[1]}" if grid else "?"
            rows.append(f'<tr><td class="l">{esc(layer)}</td><td>{gtxt}</td>{"".join(cells)}</tr>')
        out.append('<table><tr><th class="l" rowspan="2">layer</th><th rowspan="2">grid</th>' + head + "</tr><tr>"
                   + sub + "</tr>" + "".join(rows) + "</table>")
        series = []
        for i, rd in enumerate(models):
            sl = rd.stats_layers
            have = [(j + 1, similarity_of(sl.get(l))) for j, l in enumerate(layers) if similarity_of(sl.get(l))]
            if have:
                xs = [x for x, _ in have]
                series.append({"label": f"{rd.label} S̄", "x": xs, "y": [s.get("observed") for _, s in have],
                               "color": PALETTE[i], "marker": True})
                series.append({"label": f"{rd.label} null", "x": xs, "y": [s.get("mean") for _, s in have],
                               "color": PALETTE[i], "dash": True, "marker": True})
        out.append(svg_line_chart(series, title="S̄ per layer against the shuffled-position null (dashed: null mean)",
                                  xlabel="layer", ylabel="S̄", width=520,
                                  xticks=[(j + 1, l) for j, l in enumerate(layers)]))
    out.append("<h3>Filter close-ups (seed Figure 1A)</h3>")
    any_png = False
    for rd in models:
        if rd.filter_pngs:
            any_png = True
            out.append(f"<h4>{esc(rd.label)} ({esc(rd.lambda_label)})</h4>")
            out.append("".join(f'<figure style="margin:6px 0">{img(p, f"{rd.label}: {p.name}")}'
                               f'<figcaption class="note">{esc(p.name)}</figcaption></figure>' for p in rd.filter_pngs))
    if not any_png:
        out.append(missing("No filter close-ups (filters/*.png) in the run directories.", "toposcope filters RUN"))
    out.append("</section>")
    return "".join(out)
