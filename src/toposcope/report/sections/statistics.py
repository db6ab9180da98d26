"""Statistics: the paper's question answered against the right nulls (docs/method.md, Statistics).

Order of the section, topographic run beside the baseline in every table:

1. *Phone-specific organization* (the seed's question): Moran's I of the phone maps against the **label null**
   (phone labels permuted among segments), per layer ``share_phone_specific`` and ``label_null``.
2. *Layer smoothness*: functional ``S̄_func`` and weight ``S̄`` (and BN-folded ``S̄``) against shuffled positions.
3. *Phonetic organization*: Mantel r against a phonetic-feature distance, and region separation, against the
   label null.
4. *Map smoothness*: Moran's I against shuffled positions, named as such (not phoneme grouping).
5. Moran's I of every phone map.

Every sentence that states a finding is made by :func:`findings` from the numbers, with the control beside
them; a key missing from ``maps/stats.json`` (runs written before it existed) shows as "–" and a note.
"""

from __future__ import annotations

from ..context import ReportContext
from ..html import esc, finite, missing, num, pct, pval
from ..reader import RunData, moran_of, stat_block, stat_value

__all__ = ["render", "findings", "settings"]

#: A test-result block of a layer entry: ``{observed, mean, sd, z, p, n_permutations}``.
TEST_KEYS = ("label_null", "functional_similarity", "s_bar", "s_bar_bn_folded")


def settings(models: list[RunData]) -> dict:
    """``alpha``, ``n_permutations`` (position null), ``label_permutations`` and ``adjacency`` of the first
    ``maps/stats.json`` that states them."""
    stats = [rd.stats if isinstance(rd.stats, dict) else {} for rd in models]
    alpha = next((float(st["alpha"]) for st in stats if finite(st.get("alpha"))), 0.05)
    perms = next((st.get("n_permutations") for st in stats if finite(st.get("n_permutations"))), None)
    lperms = next((st.get("label_permutations") for st in stats if finite(st.get("label_permutations"))
                   and st["label_permutations"] > 0), None)
    if lperms is None:
        lperms = next((b.get("n_permutations") for rd in models for e in rd.stats_layers.values()
                       if (b := stat_block(e, "label_null")) and finite(b.get("n_permutations"))), None)
    adj = next((str(st["adjacency"]) for st in stats if st.get("adjacency")), "queen")
    nb = next((f"{int(st['neighborhood'])}×{int(st['neighborhood'])} neighbourhood, {st.get('boundary', 'clip')} "
               "boundary" for st in stats if finite(st.get("neighborhood"))), None)
    return {"alpha": alpha, "n_permutations": perms, "label_permutations": lperms, "adjacency": adj,
            "neighbourhood": nb}


def _test(entry: dict | None, key: str) -> dict | None:
    """A test block, also when an old file stores a bare number (then only ``observed``)."""
    v = (entry or {}).get(key)
    if finite(v):
        return {"observed": float(v)}
    return stat_block(entry, key)


def _sig(p, alpha: float) -> str:
    return ' class="good"' if finite(p) and float(p) < alpha else ""


def _model_head(models: list[RunData], span: int) -> str:
    return "".join(f'<th colspan="{span}">{esc(rd.label)} ({esc(rd.lambda_label)})</th>' for rd in models)


def _table(models: list[RunData], layers: list[str], sub: list[str], cells, empty: int | None = None) -> str:
    """Layer rows × (model × ``sub`` columns); ``cells(entry) -> list[str]`` of ``<td>``s (``None``: absent)."""
    span = len(sub)
    rows = []
    for layer in layers:
        tds = []
        for rd in models:
            e = rd.stats_layers.get(layer)
            got = cells(e) if e is not None else None
            tds.append("".join(got) if got else f'<td colspan="{span}">–</td>')
        rows.append(f'<tr><td class="l">{esc(layer)}</td>{"".join(tds)}</tr>')
    head = ('<table><tr><th class="l" rowspan="2">layer</th>' + _model_head(models, span) + "</tr><tr>"
            + "".join(f"<th>{s}</th>" for s in sub) * len(models) + "</tr>")
    return head + "".join(rows) + "</table>"


def _missing_key(models: list[RunData], layers: list[str], key: str, what: str) -> str:
    """A note naming the runs whose stats.json has no ``key`` (written before it existed)."""
    def has(e) -> bool:
        v = (e or {}).get(key)
        return (isinstance(v, dict) and bool(v)) or finite(v)

    lacking = [rd.label for rd in models if rd.stats_layers and not any(has(rd.stats_layers.get(l)) for l in layers)]
    if not lacking:
        return ""
    noted = any(isinstance(rd.stats, dict) and rd.stats.get("notes") for rd in models if rd.label in lacking)
    why = ("see the notes above" if noted else
           "it was written before this test existed, or the profiles lack what the test needs")
    return missing(f"maps/stats.json of {', '.join(lacking)} has no {what} ({why}).",
                   "toposcope profile RUN --data CORPUS_DIR && toposcope maps RUN")


def _notes(models: list[RunData]) -> str:
    """The ``notes`` of each ``maps/stats.json`` (what could not be computed, and why)."""
    items = [f"<li>{esc(rd.label)}: {esc(str(n))}</li>" for rd in models if isinstance(rd.stats, dict)
             and isinstance(rd.stats.get("notes"), list) for n in rd.stats["notes"]]
    return f'<div class="notes"><b>Notes from maps/stats.json</b><ul>{"".join(items)}</ul></div>' if items else ""


def _mean(xs) -> float | None:
    v = [float(x) for x in xs if finite(x)]
    return sum(v) / len(v) if v else None


def _phone_head_layer(rd: RunData) -> str:
    """The layer of the run's ``[phone_head]`` ("" when it has none or its config is unreadable)."""
    head = rd.config.get("phone_head") if isinstance(rd.config, dict) else None
    return str(head.get("layer") or "") if isinstance(head, dict) else ""


def findings(models: list[RunData], layers: list[str], alpha: float = 0.05) -> list[str]:
    """Plain-text sentences stating what the numbers show, each with its control beside it (the other run,
    or the null). Generated from ``maps/stats.json``; empty where the numbers are not there."""
    out: list[str] = []
    names = [f"{rd.label} ({rd.lambda_label})" for rd in models]
    # 0. a phone head makes phone selectivity a training target (docs/method.md § Phone head): say so first
    heads = [(name, _phone_head_layer(rd)) for rd, name in zip(models, names)]
    heads = [(name, layer) for name, layer in heads if layer]
    if heads:
        same = len(heads) == len(models) > 1 and len({l for _, l in heads}) == 1
        out.append("Trained with a phone head (" + "; ".join(f"{n}: {l}" for n, l in heads) + "): frame-level phone "
                   "classification from that layer was part of the training loss, so phone selectivity at and below "
                   "it is a training target, not a finding. "
                   + ("Both runs have the same head, so the comparison between them still isolates the regularizer."
                      if same else "Compare only with a λ = 0 run that has the same head."))
    # 1. label null: layers whose mean Moran's I exceeds the label null, and the share of phone-specific maps
    parts = []
    for rd, name in zip(models, names):
        tests = {l: _test(rd.stats_layers.get(l), "label_null") for l in layers}
        tests = {l: t for l, t in tests.items() if t and finite(t.get("p"))}
        if not tests:
            continue
        sig = [l for l, t in tests.items() if float(t["p"]) < alpha]
        detail = ", ".join(f"{l} (I {num(tests[l].get('observed'))} vs {num(tests[l].get('mean'))}, "
                           f"p {pval(tests[l]['p'])})" for l in sig)
        parts.append(f"{name}: {len(sig)} of {len(tests)} layers" + (f": {detail}" if sig else ""))
    if parts:
        out.append("Layers whose mean Moran's I over phones exceeds the label null (p < "
                   f"{alpha:g}): " + "; ".join(parts) + ".")
    parts = []
    for rd, name in zip(models, names):
        shares = {l: stat_value(rd.stats_layers.get(l), "share_phone_specific") for l in layers}
        shares = {l: v for l, v in shares.items() if v is not None}
        if shares:
            best = max(shares, key=shares.get)
            parts.append(f"{name}: mean {pct(_mean(shares.values()))} over {len(shares)} layers "
                         f"(highest {pct(shares[best])} in {best})")
    if parts:
        out.append(f"Phone maps more phone-specific than under permuted labels (BH q < {alpha:g}): "
                   + "; ".join(parts) + f". With meaningless labels about {pct(alpha)} or fewer are expected.")
    # 2. functional similarity against its position null
    parts = []
    for rd, name in zip(models, names):
        t = {l: _test(rd.stats_layers.get(l), "functional_similarity") for l in layers}
        t = {l: v for l, v in t.items() if v and finite(v.get("observed"))}
        if t:
            sig = sum(1 for v in t.values() if finite(v.get("p")) and float(v["p"]) < alpha)
            parts.append(f"{name}: mean S̄_func {num(_mean(v['observed'] for v in t.values()))} vs position-null "
                         f"mean {num(_mean(v.get('mean') for v in t.values()))}, above the null (p < {alpha:g}) "
                         f"in {sig} of {len(t)} layers")
    if parts:
        out.append("Neighbouring filters respond alike (functional S̄): " + "; ".join(parts) + ".")
    # 3. phonetic organization
    parts = []
    for rd, name in zip(models, names):
        ph = {l: (rd.stats_layers.get(l) or {}).get("phonetic") for l in layers}
        ph = {l: v for l, v in ph.items() if isinstance(v, dict) and finite(v.get("p"))}
        if ph:
            sig = [l for l, v in ph.items() if float(v["p"]) < alpha]
            parts.append(f"{name}: {len(sig)} of {len(ph)} layers"
                         + (" (" + ", ".join(f"{l} r {num(ph[l].get('mantel_r'))}, p {pval(ph[l]['p'])}"
                                             for l in sig) + ")" if sig else ""))
    if parts:
        out.append(f"Phonetically similar phones mapped alike (Mantel test against the label null, p < {alpha:g}): "
                   + "; ".join(parts) + ".")
    # 4. map smoothness, with what it does not show
    parts = []
    for rd, name in zip(models, names):
        v = [stat_value(rd.stats_layers.get(l), "share_clustered") for l in layers]
        if any(x is not None for x in v):
            parts.append(f"{name} {pct(_mean(v))}")
    if parts:
        out.append("Phone maps smoother than under shuffled positions (map smoothness, mean over layers): "
                   + ", ".join(parts) + ". This measures how smooth the layer is, not whether phones are grouped.")
    return out


def render(ctx: ReportContext) -> str:
    models, layers = ctx.models, ctx.layers
    st = settings(models)
    alpha, adj = st["alpha"], st["adjacency"]
    lp = st["label_permutations"] or "?"
    out = ['<section id="statistics"><h2>Statistics</h2>',
           '<p class="note">Each question is tested against the null that keeps everything except the effect '
           'asked about (docs/method.md, Statistics). <b>Phone-specific organization</b> (the seed\'s question): '
           f'are a phone\'s map values spatially clustered more than when the phone labels are permuted among the '
           f'segments ({esc(str(lp))} permutations, within speaker, silence fixed)? Moran\'s I ({esc(adj)} '
           'adjacency) measures clustering; the label null keeps the layer and its smoothness and only breaks the '
           'link between the phones and the maps.</p>']
    if not any(rd.stats_layers for rd in models):
        out.append(missing("No maps/stats.json in the run directories, so the statistics are not shown.",
                           "toposcope maps RUN") + "</section>")
        return "".join(out)
    if ctx.baseline is None:
        out.append(missing("No baseline run was given, so there is no λ = 0 control beside these numbers.",
                           "toposcope report RUN --baseline RUN2"))

    out.append(_notes(models))
    sentences = findings(models, layers, alpha)
    if sentences:
        out.append('<h3>What the numbers show</h3><ul class="findings">'
                   + "".join(f"<li>{esc(s)}</li>" for s in sentences) + "</ul>")

    # 1. phone-specific organization against the label null
    def label_cells(e):
        t = _test(e, "label_null")
        share = stat_value(e, "share_phone_specific")
        if t is None and share is None:
            return None
        n = len(moran_of(e))
        return [f"<td>{pct(share)} of {n}</td>", f"<td>{num((t or {}).get('observed'))}</td>",
                f"<td>{num((t or {}).get('mean'))} ± {num((t or {}).get('sd'))}</td>",
                f"<td>{num((t or {}).get('z'), 1)}</td>",
                f"<td{_sig((t or {}).get('p'), alpha)}>{pval((t or {}).get('p'))}</td>"]
    out.append("<h3>Phone-specific organization (label null)</h3>"
               f'<p class="note">"phone-specific": share of phones whose map is more clustered than under permuted '
               f"labels (Benjamini-Hochberg q &lt; {alpha:g} over the phones of a layer). Mean I: Moran's I averaged "
               "over the phones, against its mean ± sd under the label null; z and p one-sided.</p>")
    out.append(_missing_key(models, layers, "label_null", "label-null test"))
    out.append(_table(models, layers, ["phone-specific", "mean I", "label null", "z", "p"], label_cells))

    # 2. layer smoothness: functional and weight S̄ against shuffled positions
    def sim_cells(e):
        f, w, b = (_test(e, k) for k in ("functional_similarity", "s_bar", "s_bar_bn_folded"))
        if f is None and w is None and b is None:
            return None
        cells = []
        for t in (f, w):
            t = t or {}
            cells += [f"<td>{num(t.get('observed'))}</td>", f"<td>{num(t.get('mean'))}</td>",
                      f"<td{_sig(t.get('p'), alpha)}>{pval(t.get('p'))}</td>"]
        cells.append(f"<td>{num((b or {}).get('observed'))}"
                     + (f" (null {num(b['mean'])}, p {pval(b.get('p'))})" if b and finite(b.get("mean")) else "")
                     + "</td>")
        return cells
    out.append("<h3>Layer smoothness: functional and weight S̄ (position null)</h3>"
               '<p class="note">S̄_func applies the regularizer\'s neighbour weights to the correlation of '
               'neighbouring filters\' activations over the profiled frames (what the maps show); weight S̄ to '
               'the cosine similarity of their weights. Both against the same filters at shuffled grid positions'
               + (f' ({esc(st["neighbourhood"])}, as in training). ' if st["neighbourhood"] else '. ') +
               'BN-folded S̄: weight S̄ after folding each BatchNorm channel\'s scale into its filter (only for '
               'configs with BatchNorm), since a per-channel scale between weights and activations can make '
               'similar weights respond unlike.</p>')
    out.append(_missing_key(models, layers, "functional_similarity", "functional similarity (S̄_func)"))
    out.append(_table(models, layers, ["S̄_func", "null", "p", "weight S̄", "null", "p", "BN-folded S̄"], sim_cells))

    # 3. phonetic organization
    def phon_cells(e):
        ph, sep = e.get("phonetic"), e.get("separation")
        ph = ph if isinstance(ph, dict) else None
        sep = sep if isinstance(sep, dict) else None
        if ph is None and sep is None:
            return None
        ph, sep = ph or {}, sep or {}
        return [f"<td>{num(ph.get('mantel_r'))}</td>", f"<td{_sig(ph.get('p'), alpha)}>{pval(ph.get('p'))}</td>",
                f"<td>{num(sep.get('observed'), 2)}</td>", f"<td>{num(sep.get('mean'), 2)}</td>",
                f"<td{_sig(sep.get('p'), alpha)}>{pval(sep.get('p'))}</td>"]
    out.append("<h3>Phonetic organization (label null)</h3>"
               '<p class="note">Mantel r: correlation between the phones\' map dissimilarities (1 − Pearson r of '
               'two maps) and their distance in articulatory features (manner, place, voicing; vowel height, '
               'backness, rounding); separation: mean grid distance between different phones\' most responsive '
               'regions. Both against the label null. Phones that sound alike drive similar filters in any '
               'network, grid or not, so a significant Mantel r alone does not show a topographic map: compare '
               'the topographic run with the baseline.</p>')
    out.append(_missing_key(models, layers, "phonetic", "phonetic-organization test"))
    out.append(_table(models, layers, ["Mantel r", "p", "separation", "label null", "p"], phon_cells))

    # 4. map smoothness (position null)
    def smooth_cells(e):
        if not moran_of(e) and stat_value(e, "share_clustered") is None:
            return None
        n = len(moran_of(e))
        return [f"<td>{pct(stat_value(e, 'share_clustered'))} of {n}</td>",
                f"<td>{pct(stat_value(e, 'share_clustered_fdr'))}</td>",
                f"<td>{num(e.get('mean_morans_i'))}</td>", f"<td>{num(e.get('mean_regions'), 1)}</td>",
                f"<td>{num(e.get('mean_largest_region'), 1)} ({num(e.get('mean_largest_region_null'), 1)})</td>"]
    perms = st["n_permutations"] or "?"
    out.append("<h3>Map smoothness (not phoneme grouping)</h3>"
               f'<p class="note">Share of phone maps whose Moran\'s I exceeds that of {esc(str(perms))} copies with '
               f"shuffled filter positions (p &lt; {alpha:g}; FDR: Benjamini-Hochberg over the phones of a layer). "
               "In a smooth layer every map is smooth, whatever the grouping, so this measures the smoothness of "
               "the layer, not whether phonemes are grouped: the label null above answers that. Regions: "
               "connected cells above the map's mean + 1 sd (largest, and in brackets under shuffled "
               "positions).</p>")
    out.append(_table(models, layers, ["smooth maps", "FDR", "mean I", "regions", "largest (null)"], smooth_cells))

    # 5. Moran's I per phone
    out.append("<h3>Moran's I per phone</h3>")
    for k, layer in enumerate(layers):
        morans = [moran_of(rd.stats_layers.get(layer)) for rd in models]
        groups: list[str] = []
        for m in morans:
            groups += [g for g in m if g not in groups]
        if not groups:
            continue
        head2 = "".join(f"<th>I ({esc(rd.label)})</th><th>p position</th><th>p label</th><th>q label</th>"
                        for rd in models)
        body = []
        for g in groups:
            cells = []
            for m in morans:
                d = m.get(g)
                if d is None:
                    cells.append("<td>–</td>" * 4)
                    continue
                cells.append(f"<td>{num(d.get('morans_i'))}</td><td>{pval(d.get('p'))}</td>"
                             f"<td>{pval(d.get('p_label'))}</td>"
                             f"<td{_sig(d.get('q_label'), alpha)}>{pval(d.get('q_label'))}</td>")
            body.append(f'<tr><td class="l">{esc(g)}</td>{"".join(cells)}</tr>')
        out.append(f"<details{' open' if k == 0 else ''}><summary>{esc(layer)}: Moran's I of every phone map"
                   f'</summary><table><tr><th class="l">phone</th>{head2}</tr>{"".join(body)}</table></details>')
    out.append("</section>")
    return "".join(out)
