"""The statistics section (report/sections/statistics.py): phone-specific tests first, topo beside baseline,
findings generated from the numbers, old stats.json files without the new keys, everything escaped."""

from __future__ import annotations

import copy
import html
import re
import tomllib
from importlib import resources

from toposcope.report import RunData
from toposcope.report.context import ReportContext
from toposcope.report.sections import statistics

TINY = tomllib.loads((resources.files("toposcope") / "configs" / "tiny.toml").read_text(encoding="utf-8"))


def _block(observed, mean, sd, p, n=999):
    return {"observed": observed, "mean": mean, "sd": sd, "z": (observed - mean) / sd, "p": p, "n_permutations": n}


def _layer(i_obs, i_null, p_label, share_ps, share_cl, fs, sb, groups, mantel=(0.2, 0.01), sep=(3.1, 2.5, 0.02)):
    return {
        "s_bar": _block(sb, 0.10, 0.01, 0.001, 1000),
        "functional_similarity": _block(fs, 0.05, 0.02, 0.001),
        "label_null": _block(i_obs, i_null, 0.01, p_label),
        "share_phone_specific": share_ps,
        "share_clustered": share_cl, "share_clustered_fdr": share_cl / 2, "mean_morans_i": i_obs,
        "mean_regions": 1.5, "mean_largest_region": 4.0, "mean_largest_region_null": 2.0,
        "phonetic": {"mantel_r": mantel[0], "p": mantel[1]},
        "separation": {"observed": sep[0], "mean": sep[1], "p": sep[2]},
        "groups": {g: {"morans_i": 0.1 * k, "z": 1.0, "p": 0.04, "p_label": 0.003 * (k + 1),
                       "q_label": 0.004 * (k + 1)} for k, g in enumerate(groups)},
    }


GROUPS = ["aa", "iy", "s", "<script>alert(1)</script>"]


def stats_new(topo: bool) -> dict:
    """A maps/stats.json with every key of issue 10's contract (numbers chosen so each can be found)."""
    if topo:
        layers = {"conv1": _layer(0.111, 0.100, 0.300, 0.25, 0.95, 0.41, 0.81, GROUPS),
                  "conv2": _layer(0.130, 0.101, 0.004, 0.75, 0.98, 0.52, 0.83, GROUPS),
                  "conv3": _layer(0.090, 0.085, 0.200, 0.00, 0.60, 0.33, 0.77, GROUPS, mantel=(0.05, 0.4))}
    else:
        layers = {l: _layer(0.020, 0.019, 0.45, 0.0, 0.05, 0.06, 0.11, GROUPS, mantel=(0.01, 0.6),
                            sep=(2.4, 2.5, 0.7)) for l in ("conv1", "conv2", "conv3")}
    return {"alpha": 0.05, "n_permutations": 999, "label_permutations": 999, "adjacency": "queen", "layers": layers}


def stats_old(topo: bool) -> dict:
    """The same without the keys added by issue 10 (a run written before them)."""
    st = stats_new(topo)
    for e in st["layers"].values():
        for k in ("functional_similarity", "label_null", "share_phone_specific", "phonetic", "separation"):
            e.pop(k)
        for g in e["groups"].values():
            g.pop("p_label"), g.pop("q_label")
    st.pop("label_permutations")
    return st


def run(tmp_path, name, weight, stats) -> RunData:
    cfg = copy.deepcopy(TINY)
    cfg["train"]["topo_weight"] = weight
    d = tmp_path / name
    d.mkdir(parents=True, exist_ok=True)
    return RunData(path=d, label=name, config=cfg, stats=stats)


def ctx(tmp_path, make=stats_new, baseline=True, label='topo <img src=x onerror=alert(1)> & "x"') -> ReportContext:
    t = run(tmp_path, label, 0.01, make(True))
    b = run(tmp_path, "baseline", 0.0, make(False)) if baseline else None
    return ReportContext(run=t, baseline=b)


def _cells(page: str, layer: str) -> list[str]:
    """Cells of the first table row of ``layer`` after the heading ``h3``."""
    row = re.search(rf'<tr><td class="l">{layer}</td>(.*?)</tr>', page).group(1)
    return re.findall(r"<td[^>]*>(.*?)</td>", row)


def test_leads_with_the_label_null_topo_beside_baseline(tmp_path):
    page = statistics.render(ctx(tmp_path))
    assert 'class="missing"' not in page  # every key of the contract is there: nothing is reported missing
    h3 = re.findall(r"<h3>(.*?)</h3>", page)
    assert h3[1].startswith("Phone-specific organization (label null)"), h3
    assert h3.index("Map smoothness (not phoneme grouping)") > h3.index(h3[1])
    # the first table: per layer share_phone_specific, observed I, label-null mean ± sd, z, p; topo then baseline
    lab = page[page.index("Phone-specific organization (label null)"):]
    cells = _cells(lab, "conv2")
    assert cells[:5] == ["75.0 % of 4", "0.130", "0.101 ± 0.010", "2.9", "0.004"], cells
    assert cells[5:10] == ["0.0 % of 4", "0.020", "0.019 ± 0.010", "0.1", "0.450"], cells
    # S̄_func and weight S̄ with their position nulls
    sim = page[page.index("Layer smoothness"):]
    assert _cells(sim, "conv1")[:6] == ["0.410", "0.050", "0.001", "0.810", "0.100", "0.001"]
    # phonetic: Mantel r and p, separation vs label null
    ph = page[page.index("Phonetic organization (label null)</h3>"):]
    assert _cells(ph, "conv3")[:5] == ["0.050", "0.400", "3.10", "2.50", "0.020"]
    # map smoothness is named as such, with the reason
    assert "In a smooth layer every map is smooth, whatever the grouping" in page
    sm = page[page.index("Map smoothness (not phoneme grouping)"):]
    assert _cells(sm, "conv2")[0] == "98.0 % of 4"
    # per phone: p_label and q_label beside the position p
    assert page.count("Moran's I of every phone map") == 3
    assert "<td>0.009</td><td class=\"good\">0.012</td>" in page  # the third phone: p_label 0.009, q_label 0.012


def test_findings_are_generated_from_the_numbers_with_the_control_beside(tmp_path):
    c = ctx(tmp_path, label="topo")
    text = statistics.findings(c.models, c.layers, 0.05)
    first = text[0]
    assert "topo (λ = 0.01): 1 of 3 layers: conv2 (I 0.130 vs 0.101, p 0.004)" in first
    assert "baseline (λ = 0): 0 of 3 layers" in first
    assert any("topo (λ = 0.01): mean 33.3 % over 3 layers (highest 75.0 % in conv2)" in s
               and "baseline (λ = 0): mean 0.0 %" in s for s in text), text
    assert any("not whether phones are grouped" in s and "topo (λ = 0.01) 84.3 %" in s for s in text), text
    # Other numbers, other sentences: no layer passes once conv2's p is above alpha.
    c.run.stats["layers"]["conv2"]["label_null"]["p"] = 0.2
    again = statistics.findings(c.models, c.layers, 0.05)
    assert "topo (λ = 0.01): 0 of 3 layers" in again[0] and "conv2 (I" not in again[0]
    # And the page shows them.
    page = statistics.render(c)
    assert html.escape(again[0]) in page


def test_a_phone_head_is_named_first_as_a_training_target(tmp_path):
    c = ctx(tmp_path, label="topo")
    assert not any("phone head" in s for s in statistics.findings(c.models, c.layers))  # none in tiny
    for rd in c.models:
        rd.config["phone_head"] = {"layer": "conv2", "weight": 0.5}
    text = statistics.findings(c.models, c.layers)
    assert text[0].startswith("Trained with a phone head (topo (λ = 0.01): conv2; baseline (λ = 0): conv2)")
    assert "a training target, not a finding" in text[0] and "still isolates the regularizer" in text[0]
    assert "1 of 3 layers: conv2" in text[1]  # the label-null sentence follows, unchanged
    c.baseline.config.pop("phone_head")  # a baseline without the head is no control for it
    text = statistics.findings(c.models, c.layers)
    assert "(topo (λ = 0.01): conv2)" in text[0] and "Compare only with a λ = 0 run that has the same head" in text[0]


def test_old_stats_without_the_new_keys_render_and_say_so(tmp_path):
    page = statistics.render(ctx(tmp_path, make=stats_old))
    assert "has no label-null test" in page and "toposcope maps RUN" in page
    assert "has no functional similarity" in page and "has no phonetic-organization test" in page
    lab = page[page.index("Phone-specific organization (label null)"):]
    assert _cells(lab, "conv2") == ["–", "–"]  # one colspan cell per run
    # what is there is still shown: weight S̄ and the map smoothness
    sim = page[page.index("Layer smoothness"):]
    assert _cells(sim, "conv2")[3] == "0.830"
    assert "98.0 % of 4" in page
    # no finding about phone specificity is stated without its numbers
    text = statistics.findings(ctx(tmp_path, make=stats_old).models, ["conv1", "conv2", "conv3"])
    assert not any("label null" in s or "phone-specific" in s for s in text)
    assert any("map smoothness" in s for s in text)


def test_no_stats_at_all_and_no_baseline(tmp_path):
    page = statistics.render(ReportContext(run=run(tmp_path, "t", 0.01, None)))
    assert "No maps/stats.json" in page and page.endswith("</section>")
    page = statistics.render(ctx(tmp_path, baseline=False))
    assert "No baseline run was given" in page


def test_everything_is_escaped(tmp_path):
    page = statistics.render(ctx(tmp_path))
    assert "<script>" not in page and "<img" not in page
    assert html.escape("<script>alert(1)</script>") in page
    assert html.escape('topo <img src=x onerror=alert(1)> & "x"') in page


def test_bn_folded_similarity_when_present(tmp_path):
    c = ctx(tmp_path)
    c.run.stats["layers"]["conv1"]["s_bar_bn_folded"] = _block(0.44, 0.12, 0.01, 0.002)
    page = statistics.render(c)
    sim = page[page.index("Layer smoothness"):]
    assert _cells(sim, "conv1")[6] == "0.440 (null 0.120, p 0.002)"
    assert _cells(sim, "conv2")[6] == "n/a"


def test_keys_set_to_none_with_notes_as_maps_writes_them(tmp_path):
    """``toposcope maps`` writes the new keys as ``None`` and says why in ``notes`` when it cannot compute them."""
    def with_none(topo):
        st = stats_old(topo)
        for e in st["layers"].values():
            e.update(label_null=None, share_phone_specific=None, phonetic=None, separation=None,
                     functional_similarity=None)
            for g in e["groups"].values():
                g.update(p_label=None, q_label=None)
        st.update(label_permutations=0, neighborhood=5, boundary="wrap",
                  notes=["label null not computed: the profile has no per-segment sums <old>"])
        return st
    c = ctx(tmp_path, make=with_none, label="topo")
    page = statistics.render(c)
    assert "Notes from maps/stats.json" in page
    assert "topo: label null not computed: the profile has no per-segment sums &lt;old&gt;" in page
    assert "has no label-null test (see the notes above)" in page
    assert "5×5 neighbourhood, wrap boundary" in page
    lab = page[page.index("Phone-specific organization (label null)</h3>"):]
    assert _cells(lab, "conv1") == ["–", "–"]
    assert not any("label null" in s for s in statistics.findings(c.models, c.layers))
