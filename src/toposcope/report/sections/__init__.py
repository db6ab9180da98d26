"""Report sections, one module per section. Each has ``render(ctx) -> str``: the HTML of one
``<section id="...">`` from a :class:`toposcope.report.context.ReportContext` (the topographic run and the
baseline). A section whose files are missing says so and names the command that makes them; nothing is
filled in. To add one: write the module and add one line to ``SECTIONS`` in ``toposcope/report/page.py``.
"""
