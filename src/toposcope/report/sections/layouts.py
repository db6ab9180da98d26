"""Learned vs post-hoc: the trained grid beside the baseline with a post-hoc layout and with its identity
layout, same statistics, held-out split (``docs/layouts.md``, ``docs/method.md`` § Post-hoc layouts).

Columns (each a ``maps/stats.json``-shaped dict): the topographic run's own grid (``RUN/maps``), the
baseline as trained (identity layout, ``BASE/maps``), and the baseline under each post-hoc layout
(``BASE/maps-<method>``, :attr:`RunData.layout_stats`). Rows per layer: functional ``S̄_func`` and
weight ``S̄`` against shuffled positions (layer smoothness), mean Moran's I (map smoothness) and the
label null (phone-specific organization). A column judged on the split its layout was fitted on is
marked so in its header: such maps are smooth by construction.
"""

from __future__ import annotations

from ..context import ReportContext
from ..html import esc, finite, missing, num, pct, pval
from ..reader import stat_block, stat_value, stats_layers

__all__ = ["render", "columns"]

_HOW = ("toposcope layout BASE --data CORPUS --method som; toposcope profile BASE --data CORPUS --split test; "
        "toposcope maps BASE --layout som")


def columns(ctx: ReportContext) -> list[tuple[str, dict]]:
    """``[(header, stats dict)]``: trained grid, baseline identity, baseline under each post-hoc layout
    (only those with a ``stats.json``)."""
    cols = []
    if isinstance(ctx.run.stats, dict):
        cols.append((f"{ctx.run.label} ({ctx.run.lambda_label}): trained grid", ctx.run.stats))
    b = ctx.baseline
    if b is not None:
        if isinstance(b.stats, dict):
            cols.append((f"{b.label} ({b.lambda_label}): identity layout", b.stats))
        for method, st in sorted(b.layout_stats.items()):
            lay = st.get("layout") if isinstance(st.get("layout"), dict) else {}
            fit = ", ".join(lay.get("fit_split") or []) or "?"
            tag = " — JUDGED ON THE FITTING SPLIT" if lay.get("judged_on_fitting_split") else ""
            cols.append((f"{b.label} ({b.lambda_label}): post-hoc {method} layout (fitted on {fit}){tag}", st))
    return cols


def _cells(entry: dict | None, alpha: float) -> str:
    if entry is None:
        return '<td colspan="4">–</td>'
    out = []
    for key in ("functional_similarity", "s_bar"):
        blk = stat_block(entry, key)
        if blk is None:
            out.append("<td>–</td>")
            continue
        p = blk.get("p")
        sig = ' class="good"' if finite(p) and float(p) < alpha else ""
        out.append(f"<td{sig}>{num(blk.get('observed'))} (p {pval(p)})</td>")
    out.append(f"<td>{num(stat_value(entry, 'mean_morans_i'))}</td>")
    ln = stat_block(entry, "label_null")
    share = stat_value(entry, "share_phone_specific")
    if ln is None:
        out.append("<td>–</td>")
    else:
        p = ln.get("p")
        sig = ' class="good"' if finite(p) and float(p) < alpha else ""
        out.append(f"<td{sig}>p {pval(p)}" + (f"; {pct(share)} phones" if share is not None else "") + "</td>")
    return "".join(out)


def render(ctx: ReportContext) -> str:
    out = ['<section id="layouts"><h2>Learned vs post-hoc topography</h2>',
           '<p class="note">Can a grid found after training (a post-hoc layout of the λ = 0 baseline: its units '
           'placed on the grid by a self-organizing map or an embedding of their GradNAPs on the training split) '
           'match a grid learned with the regularizer? Each column gives the same statistics on the same held-out '
           'profile: S̄_func (neighbours\' activation correlation) and weight S̄ against shuffled positions, the '
           'mean Moran\'s I of the phone maps (map smoothness), and the label null (are phones organised beyond '
           'smoothness: p, and the share of phones significant after FDR). The identity layout is the baseline '
           'as trained. A layout judged on the split it was fitted to would be smooth by construction; such a '
           'column says so in its header.</p>']
    cols = columns(ctx)
    if ctx.baseline is None:
        out.append(missing("No baseline run given, so no post-hoc layout to compare.", "toposcope report RUN --baseline BASE"))
        return "".join(out) + "</section>"
    if not ctx.baseline.layout_stats:
        out.append(missing("The baseline has no judged post-hoc layout (no BASE/maps-<method>/stats.json).", _HOW))
    if not cols:
        return "".join(out) + "</section>"
    alpha = next((float(st["alpha"]) for _, st in cols if finite(st.get("alpha"))), 0.05)
    splits = sorted({str(st.get("profile_split") or (st.get("layout") or {}).get("profile_split") or "?")
                     for _, st in cols})
    out.append(f'<p class="note">judged on split(s): {esc(", ".join(splits))}; α = {alpha:g}; green: p &lt; α.</p>')
    layers = list(dict.fromkeys(l for _, st in cols for l in stats_layers(st)))
    head = "".join(f'<th colspan="4">{esc(h)}</th>' for h, _ in cols)
    sub = "<th>S̄_func</th><th>weight S̄</th><th>Moran's I</th><th>label null</th>" * len(cols)
    rows = []
    for layer in layers:
        rows.append(f'<tr><td class="l">{esc(layer)}</td>'
                    + "".join(_cells(stats_layers(st).get(layer), alpha) for _, st in cols) + "</tr>")
    out.append('<div class="scroll"><table><tr><th class="l" rowspan="2">layer</th>' + head + "</tr><tr>" + sub
               + "</tr>" + "".join(rows) + "</table></div>")
    return "".join(out) + "</section>"
