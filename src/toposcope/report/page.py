"""The report page: the ordered list of sections, :func:`render_report` and :func:`build_report`.

The page embeds its images (PNG data URIs), audio (WAV data URIs), CSS and JS (``toposcope/assets/report.*``),
so it works offline in any browser. JSON inside ``<script>`` goes through :func:`script_json`.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Callable

from .context import ReportContext
from .html import esc, script_json
from .reader import DEFAULT_PROFILE, RunData, corpus_summary, load_run_data
from .sections import exemplars, layouts, maps, optimal, statistics, summary, topography

__all__ = ["Section", "SECTIONS", "render_report", "build_report"]


@dataclass(frozen=True)
class Section:
    """One section of the page: its HTML id, its title in the table of contents, and ``render(ctx) -> str``."""

    id: str
    title: str
    render: Callable[[ReportContext], str]


#: The sections in page order. To add one: a module in ``report/sections/`` and one line here.
SECTIONS: list[Section] = [
    Section("summary", "Run summary", summary.render),
    Section("statistics", "Statistics", statistics.render),
    Section("topography", "Topography", topography.render),
    Section("layouts", "Learned vs post-hoc", layouts.render),
    Section("maps", "Maps", maps.render),
    Section("optimal", "Optimal inputs", optimal.render),
    Section("exemplars", "Exemplars", exemplars.render),
]


def _asset(name: str) -> str:
    return (resources.files("toposcope") / "assets" / name).read_text(encoding="utf-8")


def render_report(run: RunData, baseline: RunData | None = None, *, corpus_summary: dict | None = None,
                  data_path: str | None = None, title: str | None = None,
                  sections: list[Section] | None = None) -> str:
    """The report page as a string (see :func:`build_report`); ``sections`` defaults to :data:`SECTIONS`."""
    from .. import __version__

    title = title or f"toposcope report: {run.label}"
    ctx = ReportContext(run=run, baseline=baseline, corpus_summary=corpus_summary, data_path=data_path, title=title)
    secs = SECTIONS if sections is None else sections
    now = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    base_txt = (f" · baseline <code>{esc(str(baseline.path))}</code>" if baseline is not None
                else " · no baseline run given (<code>--baseline RUN2</code>)")
    body = [
        f'<header class="top"><h1>{esc(title)}</h1><p>run <code>{esc(str(run.path))}</code>{base_txt}</p>'
        f'<p>generated {esc(now)} by toposcope {esc(__version__)}; self-contained, works offline.</p></header>',
        '<nav class="toc">' + "".join(f'<a href="#{esc(s.id)}">{esc(s.title)}</a>' for s in secs) + "</nav>",
        "<main>", *(s.render(ctx) for s in secs), "</main>",
    ]
    data = {"maps": ctx.maps_payload}
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>{esc(title)}</title><style>{_asset('report.css')}</style></head><body>"
            + "".join(body)
            + f'<script type="application/json" id="toposcope-data">{script_json(data)}</script>'
            + f"<script>{_asset('report.js')}</script></body></html>\n")


def build_report(run, baseline=None, out=None, *, data=None, title: str | None = None,
                 profile: str = DEFAULT_PROFILE, labels: tuple[str, str] | None = None) -> Path:
    """Write the self-contained HTML report of run directory ``run`` (and ``baseline``) to ``out``
    (default ``RUN/report.html``, written under the run lock); ``data`` (corpus dir or :class:`Corpus`)
    adds the data summary. Returns the path written."""
    from .._util import write_text_atomic
    from ..runlock import run_lock

    if labels is None:
        rl = Path(run).resolve().name or "run"
        bl = Path(baseline).resolve().name if baseline is not None else "baseline"
        if bl == rl:
            bl = f"{bl} (baseline)"
    else:
        rl, bl = labels
    rd = load_run_data(run, rl, profile=profile)
    bd = load_run_data(baseline, bl, profile=profile) if baseline is not None else None
    page = render_report(rd, bd, corpus_summary=corpus_summary(data),
                         data_path=None if data is None else str(getattr(data, "root", data)), title=title)
    out = Path(out) if out is not None else Path(run) / "report.html"
    if out.resolve().parent == Path(run).resolve():
        with run_lock(run, "report"):
            write_text_atomic(out, page)
    else:
        write_text_atomic(out, page)
    out.chmod(0o644)  # a page to share, not a secret (the atomic writer creates files 0600)
    return out
