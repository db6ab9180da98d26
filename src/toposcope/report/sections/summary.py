"""Run summary: the data, the models, training curves and recognition accuracy."""

from __future__ import annotations

from ..charts import PALETTE, svg_line_chart
from ..context import ReportContext
from ..html import esc, missing, pct
from ..reader import RunData
from ...wordlm import describe_lm

__all__ = ["render"]


def render(ctx: ReportContext) -> str:
    return ('<section id="summary"><h2>Run summary</h2>' + data_table(ctx.corpus_summary, ctx.data_path)
            + models_table(ctx.models) + curves(ctx.models) + results(ctx.models) + "</section>")


def _layers_text(cfg: dict) -> str:
    from ...config import config_from_dict

    try:
        rc = config_from_dict(cfg)
    except ValueError:
        return "(config not readable)"
    parts = []
    for name, spec in zip(rc.model.layer_names, rc.model.layers):
        g = spec.get_grid()
        s = f" s{spec.stride}" if spec.stride != 1 else ""
        parts.append(f"{name}: {spec.channels}×k{spec.kernel}{s} [{g.rows}×{g.cols}]")
    f = rc.model.frontend
    if f.enabled:
        parts.insert(0, f"2-D front end: {f.channels}×k{f.kernel[0]}×{f.kernel[1]}, mel max-pool {f.pool}")
    ph = rc.model.phone_head
    if ph.enabled:  # trained with phone supervision: the maps do not test emergence (docs/method.md § Phone head)
        parts.append(f"phone head on {ph.layer} (training only, weight {ph.weight:g})")
    return "; ".join(parts)


def _n_params(cfg: dict) -> int | None:
    """Parameters of the recognizer (front end, gridded layers, output); a phone head, used in training only,
    is not counted."""
    from ...config import config_from_dict
    from ...text import N_CLASSES

    try:
        rc = config_from_dict(cfg)
    except ValueError:
        return None
    m = rc.model
    n, c_in = 0, m.frontend.out_channels(m.features.n_mels)
    if m.frontend.enabled:  # its Conv2d (one input channel)
        n += m.frontend.channels * (m.frontend.kernel[0] * m.frontend.kernel[1] + 1)
    for spec in m.layers:
        n += spec.channels * c_in * spec.kernel + spec.channels
        c_in = spec.channels
    return n + N_CLASSES * c_in + N_CLASSES


def data_table(summary: dict | None, data_path: str | None) -> str:
    if summary is None:
        return ("<h3>Data</h3>" + missing("No corpus was given, so the data summary is not shown.",
                                          "toposcope report RUN --data CORPUS_DIR"))
    rows = []
    for split in ("train", "valid", "test"):
        s = summary["splits"].get(split, {})
        voices = s.get("voices", s.get("speakers", []))
        rows.append(f'<tr><td class="l">{esc(split)}</td><td>{int(s.get("utterances", 0))}</td>'
                    f'<td>{60 * float(s.get("hours", 0.0)):.1f}</td><td>{len(s.get("speakers", []))}</td>'
                    f'<td class="l">{esc(", ".join(map(str, voices)))}</td></tr>')
    n_ph = len(summary.get("phone_counts", {}))
    voices = summary.get("voices", summary["speakers"])
    return (f'<h3>Data</h3><p>Corpus <code>{esc(str(data_path or summary.get("root", "")))}</code>: '
            f'{int(summary["utterances"])} utterances, {float(summary["hours"]):.2f} h, {len(voices)} voices '
            f'({len(summary["speakers"])} speakers = voice × rate × pitch variants), {n_ph} phone labels.</p>'
            '<table><tr><th class="l">split</th><th>utterances</th><th>minutes</th><th>speakers</th>'
            '<th class="l">voices</th></tr>' + "".join(rows) + "</table>")


def models_table(models: list[RunData]) -> str:
    rows = []
    for rd in models:
        cfg = rd.config or {}
        tr = cfg.get("train", {})
        lines = rd.train_lines + rd.valid_lines
        step = max((l.get("step", 0) for l in lines), default="n/a")
        epoch = max((l.get("epoch", 0) for l in lines), default="n/a")
        n = _n_params(cfg)
        rows.append(
            f'<tr><td class="l">{esc(rd.label)}</td><td class="l"><code>{esc(str(rd.path))}</code></td>'
            f'<td class="l">{esc(str(cfg.get("name", "?")))}</td><td>{esc(rd.lambda_label)}</td>'
            f'<td>{"n/a" if n is None else f"{n / 1e6:.2f} M"}</td>'
            f'<td>{esc(str(step))}</td><td>{esc(str(epoch))}</td>'
            f'<td>{esc(str(tr.get("batch_size", "?")))}</td><td>{esc(str(tr.get("lr", "?")))}</td>'
            f'<td class="l">{esc(_layers_text(cfg))}</td></tr>')
    details = "".join(
        f"<details><summary>config.toml of {esc(rd.label)}</summary><pre class=\"cfg\">"
        f"{esc((rd.path / 'config.toml').read_text(encoding='utf-8'))}</pre></details>" for rd in models)
    return ('<h3>Models</h3><table><tr><th class="l">run</th><th class="l">path</th><th class="l">config</th>'
            '<th>topographic weight</th><th>parameters</th><th>steps</th><th>epochs</th><th>batch</th><th>lr</th>'
            '<th class="l">gridded layers (filters × kernel, stride, grid)</th></tr>' + "".join(rows) + "</table>"
            + details)


def curves(models: list[RunData]) -> str:
    if not any(rd.train_lines for rd in models):
        return "<h3>Training curves</h3>" + missing("No training lines in metrics.jsonl.", "toposcope train")
    charts = []
    ctc = [{"label": f"{rd.label} CTC", "x": [l.get("step") for l in rd.train_lines],
            "y": [l.get("ctc", l.get("loss")) for l in rd.train_lines], "color": PALETTE[i], "dash": i > 0}
           for i, rd in enumerate(models) if rd.train_lines]
    charts.append(svg_line_chart(ctc, title="CTC loss (training)", xlabel="step", ylabel="CTC / character",
                                 log_y=all(min((y for y in s["y"] if y is not None), default=0) > 0 for s in ctc)))
    topo = [{"label": f"{rd.label} λ·L_topo", "x": [l.get("step") for l in rd.train_lines],
             "y": [l.get("topo", 0.0) for l in rd.train_lines], "color": PALETTE[i], "dash": i > 0}
            for i, rd in enumerate(models) if rd.train_lines and any(l.get("topo", 0) for l in rd.train_lines)]
    if topo:
        charts.append(svg_line_chart(topo, title="topographic term (training)", xlabel="step", ylabel="λ · Σ L"))
    phone = [{"label": f"{rd.label} phone CE", "x": [l.get("step") for l in rd.train_lines if "phone" in l],
              "y": [l["phone"] for l in rd.train_lines if "phone" in l], "color": PALETTE[i], "dash": i > 0}
             for i, rd in enumerate(models) if any("phone" in l for l in rd.train_lines)]
    if phone:  # only runs with a [phone_head] log it
        charts.append(svg_line_chart(phone, title="phone head cross-entropy (training)", xlabel="step",
                                     ylabel="CE / labelled frame"))
    cer = [{"label": f"{rd.label} valid CER", "x": [l.get("step") for l in rd.valid_lines],
            "y": [100 * l["cer"] if l.get("cer") is not None else None for l in rd.valid_lines],
            "color": PALETTE[i], "dash": i > 0, "marker": True}
           for i, rd in enumerate(models) if rd.valid_lines]
    if cer:
        charts.append(svg_line_chart(cer, title="validation CER", xlabel="step", ylabel="CER %"))
    sim = []
    layers = models[0].layer_names
    for i, rd in enumerate(models):
        for j, layer in enumerate(layers):
            pts = [(l.get("step"), l["similarity"][layer]) for l in rd.train_lines
                   if isinstance(l.get("similarity"), dict) and layer in l["similarity"]]
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


def results(models: list[RunData]) -> str:
    split = next((s for s in ("test", "valid") if any(s in rd.evals for rd in models)), None)
    if split is None:
        return "<h3>Recognition accuracy</h3>" + missing("No evaluation results (eval/test.json).",
                                                         "toposcope evaluate RUN --data CORPUS_DIR")
    base = models[1].evals.get(split) if len(models) > 1 else None
    with_lm = any((rd.evals.get(split) or {}).get("lm") for rd in models)
    rows = []
    for rd in models:
        e = rd.evals.get(split)
        if e is None:
            rows.append(f'<tr><td class="l">{esc(rd.label)}</td><td colspan="{8 if with_lm else 6}" class="l">'
                        f'not evaluated on {esc(split)}</td></tr>')
            continue
        dc = dw = ""
        if base is not None and rd is not models[1]:
            dc = f"{100 * (e['cer'] - base['cer']):+.1f}"
            dw = f"{100 * (e['wer'] - base['wer']):+.1f}"
        lm = e.get("lm") or {}
        lm_cells = f'<td>{pct(lm.get("cer"))}</td><td>{pct(lm.get("wer"))}</td>' if with_lm else ""
        rows.append(f'<tr><td class="l">{esc(rd.label)}</td><td>{esc(rd.lambda_label)}</td>'
                    f'<td>{pct(e.get("cer"))}</td><td>{pct(e.get("wer"))}</td><td>{dc}</td><td>{dw}</td>{lm_cells}'
                    f'<td>{int(e.get("n_utterances", 0))}</td></tr>')
    lm_head = "<th>CER, beam search + LM</th><th>WER, beam search + LM</th>" if with_lm else ""
    out = [f"<h3>Recognition accuracy ({esc(split)} split, greedy CTC decoding"
           + (", and CTC beam search with a language model" if with_lm else "") + ")</h3>",
           '<table><tr><th class="l">run</th><th>weight</th><th>CER</th><th>WER</th><th>ΔCER vs baseline (points)</th>'
           f'<th>ΔWER vs baseline (points)</th>{lm_head}<th>utterances</th></tr>', "".join(rows), "</table>"]
    if with_lm:
        info = next((rd.evals[split]["lm"] for rd in models if (rd.evals.get(split) or {}).get("lm")), {})
        d, m = info.get("decoder") or {}, info.get("lm") or {}
        out.append('<p class="note">Greedy numbers are the acoustic model alone, the model every map on this page '
                   "is made of. The beam-search columns read the same outputs with a language model "
                   f"({esc(describe_lm(m))}; beam {esc(str(d.get('beam', '?')))}, "
                   f"LM weight {esc(str(d.get('alpha', '?')))}, character bonus {esc(str(d.get('beta', '?')))}) "
                   "fitted on text without the valid and test sentences or near duplicates of them "
                   "(<code>toposcope lm</code>, docs/decoding.md).</p>")
    speakers = sorted({s for rd in models for s in rd.evals.get(split, {}).get("per_speaker", {})})
    if speakers:
        head = "".join(f"<th>CER {esc(rd.label)}</th><th>WER {esc(rd.label)}</th>" for rd in models)
        if with_lm:
            head += "".join(f"<th>CER {esc(rd.label)}, beam + LM</th>" for rd in models)
        body = []
        for spk in speakers:
            cells = []
            for rd in models:
                v = rd.evals.get(split, {}).get("per_speaker", {}).get(spk)
                cells.append(f"<td>{pct(v['cer'])}</td><td>{pct(v['wer'])}</td>" if v else "<td>–</td><td>–</td>")
            if with_lm:
                for rd in models:
                    v = ((rd.evals.get(split) or {}).get("lm") or {}).get("per_speaker", {}).get(spk)
                    cells.append(f"<td>{pct(v['cer'])}</td>" if v else "<td>–</td>")
            n = next((rd.evals[split]["per_speaker"][spk]["n"] for rd in models
                      if spk in rd.evals.get(split, {}).get("per_speaker", {})), 0)
            body.append(f'<tr><td class="l">{esc(spk)}</td><td>{int(n)}</td>{"".join(cells)}</tr>')
        out.append('<details><summary>per voice</summary><table><tr><th class="l">voice</th><th>n</th>'
                   + head + "</tr>" + "".join(body) + "</table></details>")
    for rd in models:
        ex = rd.evals.get(split, {}).get("examples") or []
        if ex:
            items = "".join(f'<tr><td class="l"><code>{esc(str(x.get("id", "")))}</code></td>'
                            f'<td class="l">{esc(str(x.get("ref", "")))}</td>'
                            f'<td class="l">{esc(str(x.get("hyp", "")))}</td></tr>' for x in ex)
            out.append(f"<details><summary>example transcripts, {esc(rd.label)}</summary>"
                       '<table><tr><th class="l">utterance</th><th class="l">reference</th>'
                       f'<th class="l">recognised</th></tr>{items}</table></details>')
    return "".join(out)
