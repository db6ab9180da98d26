"""report/page.py: the ordered section list, the page around it, and adding a section."""

from __future__ import annotations

import re
import tomllib
from importlib import resources

from toposcope.report import SECTIONS, RunData, Section, render_report
from toposcope.report.context import ReportContext

TINY = tomllib.loads((resources.files("toposcope") / "configs" / "tiny.toml").read_text(encoding="utf-8"))
STATS = {"alpha": 0.05, "layers": {"conv1": {"s_bar": {"observed": 0.8, "mean": 0.1, "p": 0.001},
                                             "label_null": {"observed": 0.1, "mean": 0.09, "sd": 0.01, "p": 0.2},
                                             "share_phone_specific": 0.0, "groups": {"aa": {"morans_i": 0.1}}}}}


def test_sections_in_order_with_a_nav_entry_each(tmp_path):
    (tmp_path / "config.toml").write_text("")
    rd = RunData(path=tmp_path, label="t<x>", config=TINY, stats=STATS)
    page = render_report(rd)
    ids = re.findall(r'<section id="([^"]+)">', page)
    assert ids == [s.id for s in SECTIONS]
    assert ids[:2] == ["summary", "statistics"]
    nav = re.search(r'<nav class="toc">(.*?)</nav>', page).group(1)
    assert re.findall(r'href="#([^"]+)"', nav) == ids
    assert "t<x>" not in page and "t&lt;x&gt;" in page
    # no profiles: the data script carries no maps
    assert '"maps":null' in page


def test_a_new_section_is_one_entry(tmp_path):
    (tmp_path / "config.toml").write_text("")
    rd = RunData(path=tmp_path, label="t", config=TINY)
    seen = []

    def render(ctx: ReportContext) -> str:
        seen.append((ctx.run.label, ctx.baseline, [m.label for m in ctx.models]))
        return '<section id="extra"><h2>Extra</h2></section>'

    page = render_report(rd, sections=[*SECTIONS, Section("extra", "Extra <b>", render)])
    assert '<section id="extra">' in page and '<a href="#extra">Extra &lt;b&gt;</a>' in page
    assert seen == [("t", None, ["t"])]
