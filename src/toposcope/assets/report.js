/* toposcope report: interactive topographic maps drawn from the embedded GradNAP arrays.
   Plain JS, no libraries, no network. The data sits in <script type="application/json" id="toposcope-data">. */
(function () {
  "use strict";
  var el = document.getElementById("toposcope-data");
  if (!el) { return; }
  var D = JSON.parse(el.textContent);
  var M = D.maps;
  if (!M || !M.models || !M.models.length) { return; }

  // RdBu_r (ColorBrewer), negative = blue, 0 = white, positive = red.
  var STOPS = [[5, 48, 97], [33, 102, 172], [67, 147, 195], [146, 197, 222], [209, 229, 240], [247, 247, 247],
               [253, 219, 199], [244, 165, 130], [214, 96, 77], [178, 24, 43], [103, 0, 31]];
  function rgb(t) {  // t in [-1, 1]
    if (!(t === t)) { return [200, 200, 200]; }  // NaN
    t = Math.max(-1, Math.min(1, t));
    var x = (t + 1) / 2 * (STOPS.length - 1), i = Math.min(STOPS.length - 2, Math.floor(x)), f = x - i;
    var a = STOPS[i], b = STOPS[i + 1];
    return [Math.round(a[0] + (b[0] - a[0]) * f), Math.round(a[1] + (b[1] - a[1]) * f), Math.round(a[2] + (b[2] - a[2]) * f)];
  }
  function fmt(v) {
    if (v === null || v === undefined || !(v === v)) { return "n/a"; }
    var a = Math.abs(v);
    return (a !== 0 && (a < 1e-3 || a >= 1e4)) ? v.toExponential(2) : v.toPrecision(3);
  }
  function absmax(arr) {
    var m = 0;
    for (var i = 0; i < arr.length; i++) { var a = Math.abs(arr[i]); if (a > m) { m = a; } }
    return m > 0 ? m : 1;
  }
  function byId(id) { return document.getElementById(id); }
  function clear(node) { while (node.firstChild) { node.removeChild(node.firstChild); } }
  function make(tag, cls, text) {
    var n = document.createElement(tag);
    if (cls) { n.className = cls; }
    if (text !== undefined) { n.textContent = text; }
    return n;
  }

  // Paint values (row-major rows x cols) onto a canvas; mode "grid"/"smooth" = one cell per filter,
  // "interp" = bilinear interpolation between cell centres (EEG-style).
  function paint(canvas, values, rows, cols, cell, mode, vmax) {
    var w = cols * cell, h = rows * cell;
    canvas.width = w; canvas.height = h;
    var ctx = canvas.getContext("2d");
    var img = ctx.createImageData(w, h), d = img.data;
    for (var py = 0; py < h; py++) {
      for (var px = 0; px < w; px++) {
        var v;
        if (mode === "interp") {
          var gx = Math.max(0, Math.min(cols - 1, (px + 0.5) / cell - 0.5));
          var gy = Math.max(0, Math.min(rows - 1, (py + 0.5) / cell - 0.5));
          var x0 = Math.floor(gx), y0 = Math.floor(gy), x1 = Math.min(cols - 1, x0 + 1), y1 = Math.min(rows - 1, y0 + 1);
          var fx = gx - x0, fy = gy - y0;
          v = (values[y0 * cols + x0] * (1 - fx) + values[y0 * cols + x1] * fx) * (1 - fy) +
              (values[y1 * cols + x0] * (1 - fx) + values[y1 * cols + x1] * fx) * fy;
        } else {
          v = values[Math.floor(py / cell) * cols + Math.floor(px / cell)];
        }
        var c = rgb(v / vmax), k = (py * w + px) * 4;
        d[k] = c[0]; d[k + 1] = c[1]; d[k + 2] = c[2]; d[k + 3] = 255;
      }
    }
    ctx.putImageData(img, 0, 0);
    return ctx;
  }
  function outline(ctx, region, cols, cell) {
    if (!region || !region.filters || !region.filters.length) { return; }
    var r0 = 1e9, r1 = -1, c0 = 1e9, c1 = -1;
    region.filters.forEach(function (i) {
      var r = Math.floor(i / cols), c = i % cols;
      r0 = Math.min(r0, r); r1 = Math.max(r1, r); c0 = Math.min(c0, c); c1 = Math.max(c1, c);
    });
    ctx.lineWidth = 3; ctx.strokeStyle = "#000";
    ctx.strokeRect(c0 * cell + 1.5, r0 * cell + 1.5, (c1 - c0 + 1) * cell - 3, (r1 - r0 + 1) * cell - 3);
    ctx.lineWidth = 1; ctx.strokeStyle = "#fff";
    ctx.strokeRect(c0 * cell + 3.5, r0 * cell + 3.5, (c1 - c0 + 1) * cell - 7, (r1 - r0 + 1) * cell - 7);
  }
  function colorbar(vmax) {
    var box = make("div", "cbar"), cv = document.createElement("canvas");
    cv.width = 120; cv.height = 10;
    var ctx = cv.getContext("2d");
    for (var x = 0; x < 120; x++) { var c = rgb(x / 119 * 2 - 1); ctx.fillStyle = "rgb(" + c.join(",") + ")"; ctx.fillRect(x, 0, 1, 10); }
    box.appendChild(make("span", null, fmt(-vmax)));
    box.appendChild(cv);
    box.appendChild(make("span", null, fmt(vmax)));
    return box;
  }

  var layerSel = byId("map-layer"), phoneSel = byId("map-phone"), panels = byId("map-panels"),
      hover = byId("hover"), overview = byId("map-overview");
  if (!layerSel || !phoneSel || !panels) { return; }

  function layerInfo(model, layer) { return (M.layers[model] || {})[layer]; }
  function entry(model, layer, group) {
    var L = (M.values[model] || {})[layer];
    return L ? L[group] : undefined;
  }
  function view() {
    var r = document.querySelector("input[name=map-view]:checked");
    return r ? r.value : "smooth";
  }
  function scaleMode() {
    var r = document.querySelector("input[name=map-scale]:checked");
    return r ? r.value : "map";
  }
  // Symmetric colour limit: the largest |value| of this map, or of every group's map of the layer
  // (then maps of one layer are comparable, as in the PNGs of `toposcope maps`).
  var layerMax = {};
  function vmaxFor(model, layer, mode, vals) {
    if (scaleMode() === "map") { return absmax(vals); }
    var key = model + "\u0000" + layer + "\u0000" + (mode === "smooth" ? "s" : "v");
    if (!(key in layerMax)) {
      var L = M.values[model][layer], m = 0;
      Object.keys(L).forEach(function (g) { m = Math.max(m, absmax(mode === "smooth" ? L[g].s : L[g].v)); });
      layerMax[key] = m > 0 ? m : 1;
    }
    return layerMax[key];
  }
  function cellFor(info, target) { return Math.max(3, Math.floor(target / Math.max(info.rows, info.cols))); }

  // -- selects ---------------------------------------------------------------------------------------
  M.layer_order.forEach(function (name) {
    var o = make("option", null, name); o.value = name; layerSel.appendChild(o);
  });
  function fillPhones() {
    var layer = layerSel.value, keep = phoneSel.value;
    clear(phoneSel);
    var groups = M.groups[layer] || [];
    groups.forEach(function (g) { var o = make("option", null, g); o.value = g; phoneSel.appendChild(o); });
    if (keep && groups.indexOf(keep) >= 0) { phoneSel.value = keep; }
  }

  // -- the main panel: the chosen phone, every model side by side -------------------------------------
  function drawMain() {
    var layer = layerSel.value, group = phoneSel.value, mode = view();
    clear(panels);
    M.models.forEach(function (m) {
      var fig = make("div", "mapfig card"), info = layerInfo(m.key, layer);
      fig.appendChild(make("h4", null, m.label));
      var e = info && entry(m.key, layer, group);
      if (!e) {
        fig.appendChild(make("p", "missing", "no profile for " + group + " in " + layer + " of this run"));
        panels.appendChild(fig);
        return;
      }
      var vals = mode === "smooth" ? e.s : e.v, vmax = vmaxFor(m.key, layer, mode, vals), cell = cellFor(info, 288);
      var cv = document.createElement("canvas");
      cv.setAttribute("data-model", m.key);
      cv.setAttribute("data-layer", layer);
      cv.setAttribute("data-phone", group);
      cv.setAttribute("data-view", mode);
      var ctx = paint(cv, vals, info.rows, info.cols, cell, mode, vmax);
      outline(ctx, e.region, info.cols, cell);
      cv.addEventListener("mousemove", function (ev) {
        var rect = cv.getBoundingClientRect();
        var c = Math.floor((ev.clientX - rect.left) / rect.width * info.cols);
        var r = Math.floor((ev.clientY - rect.top) / rect.height * info.rows);
        if (r < 0 || c < 0 || r >= info.rows || c >= info.cols) { return; }
        var i = r * info.cols + c;
        hover.textContent = m.label + " \u2014 " + layer + ", /" + group + "/, filter " + i + " at (" + r + ", " + c +
          "): GradNAP " + fmt(e.v[i]) + ", smoothed " + fmt(e.s[i]);
      });
      fig.appendChild(cv);
      var reg = e.region ? ("region centre (" + e.region.center[0] + ", " + e.region.center[1] + "), smoothed value " +
                            fmt(e.region.value)) : "no region";
      fig.appendChild(make("div", "cap", layer + " " + info.rows + "\u00d7" + info.cols + ", /" + group + "/ (" +
                           e.n + " frames)"));
      fig.appendChild(make("div", "rng", reg));
      fig.appendChild(colorbar(vmax));
      panels.appendChild(fig);
    });
  }

  // -- overview: small multiples of every phone for the chosen layer ---------------------------------
  function drawOverview() {
    if (!overview) { return; }
    var layer = layerSel.value, mode = view();
    clear(overview);
    M.models.forEach(function (m) {
      var info = layerInfo(m.key, layer);
      var block = make("div", "card");
      block.appendChild(make("h4", null, m.label + " \u2014 " + layer + " (" + (mode === "grid" ? "on grid" : mode === "smooth" ? "smoothed" : "interpolated") +
                             ", " + (scaleMode() === "map" ? "each map on its own scale" : "one scale per layer") + "; click a map to choose it)"));
      var wrap = make("div", "multiples");
      (M.groups[layer] || []).forEach(function (g) {
        var e = info && entry(m.key, layer, g);
        if (!e) { return; }
        var fig = make("figure", g === phoneSel.value ? "sel" : null), cv = document.createElement("canvas");
        var vals = mode === "smooth" ? e.s : e.v;
        paint(cv, vals, info.rows, info.cols, cellFor(info, 72), mode, vmaxFor(m.key, layer, mode, vals));
        fig.appendChild(cv);
        fig.appendChild(make("figcaption", null, g));
        fig.addEventListener("click", function () { phoneSel.value = g; update(); });
        wrap.appendChild(fig);
      });
      block.appendChild(wrap);
      overview.appendChild(block);
    });
  }

  function update() { drawMain(); drawOverview(); hover.textContent = ""; }
  layerSel.addEventListener("change", function () { fillPhones(); update(); });
  phoneSel.addEventListener("change", update);
  Array.prototype.forEach.call(document.querySelectorAll("input[name=map-view], input[name=map-scale]"), function (r) {
    r.addEventListener("change", update);
  });
  layerSel.value = M.default_layer || M.layer_order[0];
  fillPhones();
  if (M.default_group && (M.groups[layerSel.value] || []).indexOf(M.default_group) >= 0) { phoneSel.value = M.default_group; }
  update();
})();
