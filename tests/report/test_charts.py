"""report/charts.py: tick positions and the SVG line chart's geometry."""

from __future__ import annotations

import re

import pytest

from toposcope.report.charts import PALETTE, nice_ticks, svg_line_chart


def test_nice_ticks_are_round_and_cover_the_range():
    assert nice_ticks(0, 1) == [0, 0.2, 0.4, 0.6, 0.8, 1.0]
    assert nice_ticks(3, 97) == [20, 40, 60, 80]  # step 20 for a span of 94 in 5 ticks
    assert nice_ticks(-0.013, 0.011) == [-0.01, -0.005, 0, 0.005, 0.01]
    assert nice_ticks(5, 5) == [5, 6, 7, 8, 9, 10]  # an empty range is widened
    assert nice_ticks(float("nan"), 1) == []


def test_points_are_placed_linearly_and_colours_follow_the_palette():
    svg = svg_line_chart([{"label": "a", "x": [0, 1, 2], "y": [0.0, 0.5, 1.0]},
                          {"label": "b", "x": [0, 2], "y": [1.0, 0.0], "dash": True}],
                         title="t", xlabel="x", width=430, height=250)
    lines = re.findall(r'<polyline fill="none" stroke="([^"]+)"[^>]*points="([^"]+)"', svg)
    assert [c for c, _ in lines] == [PALETTE[0], PALETTE[1]]
    (x0, y0), (x1, y1), (x2, y2) = (tuple(map(float, p.split(","))) for p in lines[0][1].split())
    assert x1 - x0 == x2 - x1 and y0 - y1 == y1 - y2 and y0 > y2  # equal steps; larger y drawn higher
    assert 'stroke-dasharray="5 3"' in svg.split("<polyline")[2]


def test_log_axis_drops_non_positive_values():
    svg = svg_line_chart([{"label": "a", "x": [0, 1, 2, 3], "y": [10.0, 1.0, 0.0, -1.0]}], title="t", xlabel="x",
                         log_y=True)
    assert len(re.search(r'points="([^"]+)"', svg).group(1).split()) == 2


def test_legend_rows_hold_fewer_entries_when_labels_are_long():
    def legend_x(labels, width=430):
        svg = svg_line_chart([{"label": l, "x": [0, 1], "y": [0, 1]} for l in labels], title="t", xlabel="x",
                             width=width)
        return [float(x) for x in re.findall(r'<text x="([\d.]+)" y="[\d.]+">(?:' + "|".join(labels) + ")<", svg)]

    # plot width 430 - 62 - 12 = 356 px: three short labels share a row (a third of it each) ...
    assert legend_x(["a", "b", "c"]) == pytest.approx([62 + 22, 62 + 22 + 356 / 3, 62 + 22 + 2 * 356 / 3], abs=0.05)
    # ... labels of 18 characters (~30 + 7 * 18 = 156 px each) go two to a row, so none runs into the next
    xs = legend_x(["topo valid CER xxx", "baseline valid CER", "third valid CER xx"])
    assert xs == pytest.approx([62 + 22, 62 + 22 + 178, 62 + 22], abs=0.05)


def test_x_tick_labels_stay_inside_the_chart():
    """The last tick sits on the right edge of the plot, 12 px from the chart's edge: its label "1500" (about
    28 px at 11 px) is shifted left to fit, not cut; ticks away from the edges stay centred on their line."""
    svg = svg_line_chart([{"label": "a", "x": [0, 1500], "y": [0, 1]}], title="t", xlabel="step", width=430)
    ticks = {lab: (float(lx), float(tx)) for lx, tx, lab in re.findall(
        r'<line x1="([\d.]+)" y1="[\d.]+" x2="[\d.]+" y2="[\d.]+" stroke="#888"/><text x="([\d.]+)" y="[\d.]+" '
        r'text-anchor="middle">([^<]+)<', svg)}
    assert set(ticks) == {"0", "500", "1000", "1500"}
    line, text = ticks["1500"]
    assert line == pytest.approx(430 - 12) and text == pytest.approx(430 - 1 - 7 * 4 / 2)
    assert ticks["500"][0] == ticks["500"][1] and ticks["0"][0] == ticks["0"][1]
