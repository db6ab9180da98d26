"""Maps: interactive per-phone maps of both runs, drawn client-side (``assets/report.js``) from the
embedded profile arrays (:func:`maps_payload`)."""

from __future__ import annotations

from ..context import ReportContext
from ..html import esc, missing, round_list
from ..reader import RunData

__all__ = ["render", "maps_payload"]


def maps_payload(models: list[RunData]) -> dict | None:
    """The arrays the maps section draws: per run, layer and group the on-grid profile values, the
    smoothed map (:func:`toposcope.analysis.maps.smooth_map`) and the region (``maps/regions.json``, or
    :func:`toposcope.analysis.maps.find_region` when the run has profiles but no maps yet).
    ``None`` when no run has profiles."""
    from ...analysis.maps import find_region, smooth_map

    with_prof = [rd for rd in models if rd.profiles]
    if not with_prof:
        return None
    main = with_prof[0]
    layer_order = [l for l in main.layer_names if l in main.profiles] or list(main.profiles)
    payload = {"models": [], "layer_order": layer_order, "layers": {}, "groups": {}, "values": {}}
    for i, rd in enumerate(models):
        key = f"m{i}"
        payload["models"].append({"key": key, "label": f"{rd.label} ({rd.lambda_label})"})
        payload["layers"][key], payload["values"][key] = {}, {}
        for layer, lp in (rd.profiles or {}).items():
            rows, cols = lp["grid"]
            payload["layers"][key][layer] = {"rows": rows, "cols": cols}
            maps = lp["values"].reshape(len(lp["groups"]), rows, cols)
            sm = smooth_map(maps)
            regions = (rd.regions or {}).get(layer, {})
            vals = {}
            for g_i, g in enumerate(lp["groups"]):
                reg = regions.get(g)
                if reg is None:
                    reg = find_region(sm[g_i], smoothed=True).to_dict()
                vals[g] = {"v": round_list(maps[g_i]), "s": round_list(sm[g_i]),
                           "n": int(lp["counts"][g_i]), "region": reg}
            payload["values"][key][layer] = vals
            if layer in layer_order and layer not in payload["groups"]:
                payload["groups"][layer] = list(lp["groups"])
    for layer in layer_order:
        payload["groups"].setdefault(layer, [])
    # Default view: the first non-input layer (the seed's Figure 1B shows the second layer) and a vowel.
    payload["default_layer"] = layer_order[1] if len(layer_order) > 1 else layer_order[0]
    groups = payload["groups"].get(payload["default_layer"], [])
    payload["default_group"] = next((g for g in ("aa", "iy", "s", "t") if g in groups), groups[0] if groups else None)
    return payload


def render(ctx: ReportContext) -> str:
    models, payload = ctx.models, ctx.maps_payload
    head = '<section id="maps"><h2>Maps</h2>'
    if payload is None:
        return head + missing("No profiles were found (profiles/gradnap-phone.npz), so there are no maps.",
                              "toposcope profile RUN --data CORPUS_DIR && toposcope maps RUN") + "</section>"
    absent = [rd.label for rd in models if not rd.profiles]
    note = (missing(f"No profiles for {', '.join(absent)}: only the other run is shown.",
                    "toposcope profile RUN --data CORPUS_DIR") if absent else "")
    method = next((lp.get("method") for rd in models if rd.profiles for lp in rd.profiles.values()), "gradnap")
    return head + note + f"""
<p class="note">Each map shows one phone's {esc(str(method))} values (the group's mean adjusted activation minus the
mean over all groups) for every filter of a layer at its grid position: red = more than average for this phone,
blue = less. <b>On grid</b> draws the raw values, <b>smoothed</b> the non-strided 3×3 average pooling,
<b>interpolated</b> the on-grid values bilinearly interpolated between filter centres (EEG style). The black/white
box is the most responsive 3×3 region (argmax of the smoothed map). Hover a map to read values. Whether these
patterns are specific to the phones, rather than smooth for any grouping, is tested in Statistics.</p>
<div class="controls">
 <label>layer <select id="map-layer" aria-label="layer"></select></label>
 <label>phone <select id="map-phone" aria-label="phone"></select></label>
 <span>view
  <label><input type="radio" name="map-view" value="grid"> on grid</label>
  <label><input type="radio" name="map-view" value="smooth" checked> smoothed</label>
  <label><input type="radio" name="map-view" value="interp"> interpolated</label></span>
 <span>colour scale
  <label><input type="radio" name="map-scale" value="map" checked> per map</label>
  <label><input type="radio" name="map-scale" value="layer"> per layer</label></span>
</div>
<div id="map-panels" class="cols"></div>
<div id="hover"></div>
<h3>Overview: every phone of the chosen layer</h3>
<div id="map-overview" class="cols"></div>
</section>"""
