"""Inline SVG charts of the report (no plotting library: the page stays small and works offline)."""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from .html import esc, finite

__all__ = ["PALETTE", "svg_line_chart", "nice_ticks"]

#: Categorical colours (Tableau 10) for layers / series.
PALETTE = ("#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7",
           "#9c755f", "#bab0ac")


_CHAR_PX = 7.0  # width of a tick label's character at the report's 11 px chart font (an upper bound for digits)


def nice_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    """About ``n`` round tick positions (steps 1, 2, 2.5, 5 × 10^k) covering ``[lo, hi]``."""
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
    Labels are escaped; non-finite points are dropped; ``""`` when no series has a point."""
    pts = []
    for s in series:
        xy = [(float(x), float(y)) for x, y in zip(s["x"], s["y"])
              if finite(x) and finite(y) and (not log_y or float(y) > 0)]
        if len(xy) > max_points:  # even thinning keeps the shape and the file small
            idx = np.linspace(0, len(xy) - 1, max_points).round().astype(int)
            xy = [xy[i] for i in idx]
        pts.append(xy)
    if not any(pts):
        return ""
    ml, mr, mt, mb = 62, 12, 24, 38
    pw, ph = width - ml - mr, height - mt - mb
    # legend: up to 3 entries a row, fewer when the longest label (~7 px a character) would run into the next
    per_row = max(1, min(3, int(pw // (30 + 7 * max((len(str(x["label"])) for x in series), default=0)))))
    legend_rows = math.ceil(len(series) / per_row)
    height_total = height + 16 * legend_rows
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
           f'viewBox="0 0 {width} {height_total}" role="img" aria-label="{esc(title)}">',
           f'<text class="title" x="{ml}" y="15">{esc(title)}</text>',
           f'<rect x="{ml}" y="{mt}" width="{pw}" height="{ph}" fill="none" stroke="#bbb"/>']
    for t, lab in (xticks if xticks is not None else [(t, _tick_label(t)) for t in nice_ticks(x0, x1)]):
        if x0 <= t <= x1:
            half = _CHAR_PX * len(str(lab)) / 2  # keep the label inside the chart: shift it, not cut it
            tx = min(max(X(t), half + 1), width - 1 - half)
            out.append(f'<line x1="{X(t):.1f}" y1="{mt + ph}" x2="{X(t):.1f}" y2="{mt + ph + 4}" stroke="#888"/>'
                       f'<text x="{tx:.1f}" y="{mt + ph + 15}" text-anchor="middle">{esc(str(lab))}</text>')
    if log_y:  # 1-2-5 ticks, placed in log space
        yt = [math.log10(m * 10.0 ** e) for e in range(math.floor(y0) - 1, math.ceil(y1) + 1) for m in (1, 2, 5)]
        if sum(y0 <= t <= y1 for t in yt) < 2:
            yt = nice_ticks(y0, y1)
    else:
        yt = nice_ticks(y0, y1)
    for t in yt:
        if y0 <= t <= y1:
            yy = mt + (1 - (t - y0) / (y1 - y0)) * ph
            lab = _tick_label(float(f"{10 ** t:.3g}")) if log_y else _tick_label(t)
            out.append(f'<line x1="{ml}" y1="{yy:.1f}" x2="{ml + pw}" y2="{yy:.1f}" stroke="#eee"/>'
                       f'<text x="{ml - 4}" y="{yy + 4:.1f}" text-anchor="end">{lab}</text>')
    out.append(f'<text x="{ml + pw / 2}" y="{mt + ph + 31}" text-anchor="middle">{esc(xlabel)}</text>')
    if ylabel:
        out.append(f'<text transform="translate(13 {mt + ph / 2}) rotate(-90)" text-anchor="middle">'
                   f'{esc(ylabel)}</text>')
    for i, (s, p) in enumerate(zip(series, pts)):
        color = esc(str(s.get("color") or PALETTE[i % len(PALETTE)]))
        dash = ' stroke-dasharray="5 3"' if s.get("dash") else ""
        if p:
            d = " ".join(f"{X(x):.1f},{Y(y):.1f}" for x, y in p)
            out.append(f'<polyline fill="none" stroke="{color}" stroke-width="1.6"{dash} points="{d}"/>')
            if s.get("marker") or len(p) == 1:
                out.extend(f'<circle cx="{X(x):.1f}" cy="{Y(y):.1f}" r="2.5" fill="{color}"/>' for x, y in p)
        lx = ml + (i % per_row) * (pw / per_row)
        ly = height + 4 + 16 * (i // per_row)
        out.append(f'<line x1="{lx:.1f}" y1="{ly - 4}" x2="{lx + 18:.1f}" y2="{ly - 4}" stroke="{color}" '
                   f'stroke-width="2"{dash}/><text x="{lx + 22:.1f}" y="{ly}">{esc(str(s["label"]))}</text>')
    out.append("</svg>")
    return "".join(out)
