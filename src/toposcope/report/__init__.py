"""``toposcope report``: one self-contained HTML page from one run directory (and optionally a baseline).

Modules:

- :mod:`toposcope.report.reader`: the run-directory reader (public API): :class:`RunData`, :func:`load_run_data`.
- :mod:`toposcope.report.charts`: inline SVG charts.
- :mod:`toposcope.report.html`: escaping, numbers, embedded images and audio.
- :mod:`toposcope.report.sections`: one module per section, each ``render(ctx) -> str``.
- :mod:`toposcope.report.page`: the ordered section list, :func:`render_report`, :func:`build_report`.

A section whose files are missing says so and names the command that makes them; nothing is filled in.
Every label, path and transcript is escaped; JSON inside ``<script>`` cannot close the element.
"""

from __future__ import annotations

from .charts import svg_line_chart
from .context import ReportContext
from .html import script_json
from .page import SECTIONS, Section, build_report, render_report
from .reader import DEFAULT_PROFILE, RunData, load_run_data

__all__ = ["RunData", "load_run_data", "build_report", "render_report", "script_json", "svg_line_chart",
           "ReportContext", "Section", "SECTIONS", "DEFAULT_PROFILE"]
