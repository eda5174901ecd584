import LoadKitTransport
import LoadKitProtocols

extension HTMLReport {
    /// The page's inline style and script. The script draws every `figure.chart` from the JSON in
    /// `#loadkit-data` as inline SVG (built as markup, so no namespace URI or other URL appears
    /// in the page), with axes, units, a legend and values on hover; it makes no request.
    enum Assets {
        static let css = #"""
:root{--fg:#1d2939;--muted:#667085;--soft:#98a2b3;--line:#e4e7ec;--bg:#f5f6f8;--card:#fff;--pass:#067647;--pass-bg:#dcfae6;--fail:#b42318;--fail-bg:#fee4e2;--accent:#2563eb}
*{box-sizing:border-box}
html{scroll-behavior:smooth}
body{margin:0;font:14px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;color:var(--fg);background:var(--bg);-webkit-font-smoothing:antialiased}
.wrap{max-width:1240px;margin:0 auto;padding-left:28px;padding-right:28px}
header.top{background:var(--card);border-bottom:1px solid var(--line);padding:22px 0 16px}
.brand{font-size:11.5px;letter-spacing:.09em;text-transform:uppercase;color:var(--muted);font-weight:600}
.title{display:flex;align-items:center;gap:14px;flex-wrap:wrap}
h1{font-size:26px;line-height:1.25;margin:2px 0;font-weight:650;letter-spacing:-.015em}
.verdict{font-weight:700;font-size:12.5px;letter-spacing:.07em;padding:4px 11px;border-radius:999px}
.verdict.pass{color:var(--pass);background:var(--pass-bg)}
.verdict.fail{color:var(--fail);background:var(--fail-bg)}
.verdict.none{color:var(--muted);background:#eef0f3}
.facts{margin:4px 0 0;color:var(--muted)}
.interrupted{margin:6px 0 0;color:#b54708;font-weight:500}
nav{position:sticky;top:0;z-index:5;background:rgba(245,246,248,.94);border-bottom:1px solid var(--line)}
nav .wrap{display:flex;gap:20px;flex-wrap:wrap;padding-top:10px;padding-bottom:10px}
nav a{color:var(--muted);text-decoration:none;font-weight:500;font-size:13.5px}
nav a:hover{color:var(--fg)}
main section{margin:30px 0}
h2{font-size:18px;margin:0 0 6px;font-weight:650;letter-spacing:-.01em}
h3{font-size:13px;margin:20px 0 8px;font-weight:600;color:#344054;text-transform:uppercase;letter-spacing:.05em}
h3 .unit{color:var(--soft);text-transform:none;letter-spacing:0;font-weight:500;margin-left:4px}
.lead{color:var(--muted);margin:0 0 12px}
.empty{color:var(--muted);background:var(--card);border:1px dashed var(--line);border-radius:10px;padding:14px 16px}
.note{color:#475467;margin:12px 0 0}
code{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:12.5px;background:#eef0f3;border-radius:4px;padding:1px 4px}
.kpis{display:grid;grid-template-columns:repeat(auto-fit,minmax(210px,1fr));gap:12px;margin-top:22px}
.kpi{background:var(--card);border:1px solid var(--line);border-radius:12px;padding:14px 16px}
.kpi-label{color:var(--muted);font-size:11.5px;text-transform:uppercase;letter-spacing:.06em;font-weight:600;overflow:hidden;text-overflow:ellipsis;white-space:nowrap}
.kpi-value{font-size:25px;font-weight:650;font-variant-numeric:tabular-nums;margin-top:2px;letter-spacing:-.01em}
.kpi-note{color:var(--muted);font-size:12.5px}
table{border-collapse:separate;border-spacing:0;width:100%;background:var(--card);border:1px solid var(--line);border-radius:12px;overflow:hidden}
th,td{padding:8px 14px;text-align:left;border-bottom:1px solid var(--line);vertical-align:top}
thead th{font-size:11.5px;text-transform:uppercase;letter-spacing:.06em;color:var(--muted);font-weight:600;background:#fafbfc}
tbody tr:last-child td,tbody tr:last-child th{border-bottom:none}
.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
.note.num,td.note{color:var(--muted)}
.metric{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:12.8px}
.stat{color:var(--muted);font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:12.8px}
.tag{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:12.3px;color:#475467;padding-left:18px;position:relative}
.tag:before{content:"";position:absolute;left:5px;top:-2px;width:8px;height:10px;border-left:1px solid var(--soft);border-bottom:1px solid var(--soft)}
tr.sub td{background:#fcfcfd}
td.mark{width:28px;font-weight:700;text-align:center}
tr.pass .mark{color:var(--pass)}
tr.fail .mark{color:var(--fail)}
tr.fail td{background:#fffbfa}
tr.skip .mark,tr.skip td{color:var(--muted)}
.source{font-size:11.5px;font-weight:600;padding:2px 8px;border-radius:999px;background:#eef0f3;color:#475467;white-space:nowrap}
.source.server{background:#fef0c7;color:#93370d}
.source.load-generator{background:#e0eaff;color:#2d3282}
.source.script{background:#f4ebff;color:#6941c6}
ul.examples{margin:0;padding-left:16px;color:#475467;font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:12px;word-break:break-word}
table.env th{width:30%;font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:12.5px;font-weight:500;color:#344054;background:none}
table.env td{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:12.5px;word-break:break-all}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(520px,1fr));gap:14px}
.grid.three{grid-template-columns:repeat(auto-fit,minmax(340px,1fr))}
figure.chart{margin:0;background:var(--card);border:1px solid var(--line);border-radius:12px;padding:12px 14px 10px;min-width:0}
figcaption{display:flex;gap:8px;align-items:baseline;flex-wrap:wrap;margin-bottom:4px}
.chart-title{font-weight:600;font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:13px}
.chart-sub{color:var(--muted);font-size:12.5px}
.plot{position:relative;height:230px}
.plot.none{display:flex;align-items:center;justify-content:center;color:var(--pass);font-weight:500;background:#fafbfc;border-radius:8px}
.plot svg{display:block;width:100%;height:100%;overflow:visible}
.plot text{font-size:11px;fill:#667085;font-variant-numeric:tabular-nums}
.plot .unit{fill:#98a2b3}
.plot .gl{stroke:#eef0f3;stroke-width:1}
.plot .ax{stroke:#d0d5dd;stroke-width:1}
.plot path.series{fill:none;stroke-width:1.7;stroke-linejoin:round;stroke-linecap:round}
.plot rect.bar{fill:#93b4f5}
.plot rect.bar:hover{fill:#2563eb}
.plot .marker{stroke-width:1.2;stroke-dasharray:4 3}
.plot .cursor{stroke:#98a2b3;stroke-width:1}
.legend{display:flex;flex-wrap:wrap;gap:2px 16px;font-size:12.3px;color:#475467;margin-top:6px}
.legend span{white-space:nowrap}
.legend i{display:inline-block;width:12px;height:3px;border-radius:2px;margin-right:6px;vertical-align:middle}
.tip{position:absolute;pointer-events:none;background:#101828;color:#fff;font-size:12px;line-height:1.45;padding:7px 9px;border-radius:8px;white-space:nowrap;box-shadow:0 6px 16px rgba(16,24,40,.18);z-index:3;display:none}
.tip b{font-weight:600}
.tip i{display:inline-block;width:8px;height:8px;border-radius:2px;margin-right:6px}
footer{color:var(--soft);font-size:12.5px;padding-top:8px;padding-bottom:40px}
@media (max-width:700px){.grid,.grid.three{grid-template-columns:1fr}}
"""#

        static let script = #"""
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("loadkit-data").textContent);
  var palette = ["#2563eb", "#0d9488", "#d97706", "#7c3aed", "#e11d48", "#0891b2", "#65a30d", "#64748b"];
  var byId = {};
  data.charts.forEach(function (c) { byId[c.id] = c; });

  function esc(s) {
    return String(s).replace(/[&<>"']/g, function (ch) {
      return { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[ch];
    });
  }
  function trim(s) { return s.indexOf(".") < 0 ? s : s.replace(/\.?0+$/, ""); }
  function num(v) {
    var a = Math.abs(v);
    if (a >= 1e9) return trim((v / 1e9).toFixed(1)) + "G";
    if (a >= 1e6) return trim((v / 1e6).toFixed(1)) + "M";
    if (a >= 1e4) return trim((v / 1e3).toFixed(0)) + "k";
    if (a >= 1e3) return trim((v / 1e3).toFixed(1)) + "k";
    if (a >= 100) return v.toFixed(0);
    if (a >= 10) return trim(v.toFixed(1));
    if (a >= 1) return trim(v.toFixed(2));
    return trim(v.toFixed(3));
  }
  function value(v, unit) {
    if (v === null || v === undefined) return "–";
    var a = Math.abs(v), s = a >= 1000 ? Math.round(v).toLocaleString("en-US") : num(v);
    return unit === "%" ? s + " %" : (unit === "/s" ? s + "/s" : s + " " + unit);
  }
  function clock(t) {
    t = Math.max(0, Math.round(t));
    var m = Math.floor(t / 60), s = t % 60;
    return m + ":" + (s < 10 ? "0" : "") + s;
  }
  function niceStep(span, count) {
    var raw = span / Math.max(1, count), mag = Math.pow(10, Math.floor(Math.log10(raw))), r = raw / mag;
    return (r <= 1 ? 1 : r <= 2 ? 2 : r <= 2.5 ? 2.5 : r <= 5 ? 5 : 10) * mag;
  }
  // Nice ticks from lo; with `cover` the last one is at or above hi (a y axis's top).
  function ticks(lo, hi, count, cover) {
    var step = niceStep(hi - lo, count), out = [], end = cover ? Math.ceil(hi / step - 1e-9) * step : hi;
    for (var v = Math.ceil(lo / step) * step; v <= end + step * 1e-9; v += step) out.push(+v.toPrecision(12));
    return out;
  }
  function timeTicks(lo, hi) {
    var span = hi - lo, steps = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200], step = steps[steps.length - 1];
    for (var i = 0; i < steps.length; i++) if (span / steps[i] <= 8) { step = steps[i]; break; }
    var out = [];
    for (var v = Math.ceil(lo / step) * step; v <= hi + 1e-9; v += step) out.push(v);
    return out;
  }
  function logTicks(lo, hi) {
    var out = [];
    for (var e = Math.floor(Math.log10(lo)); e <= Math.ceil(Math.log10(hi)); e++) {
      [1, 2, 5].forEach(function (m) { var v = m * Math.pow(10, e); if (v >= lo * 0.999 && v <= hi * 1.001) out.push(v); });
    }
    return out.length >= 2 ? out : [lo, hi];
  }
  function frame(plot) {
    var W = Math.max(300, Math.round(plot.clientWidth || 560)), H = Math.max(160, Math.round(plot.clientHeight || 230));
    return { W: W, H: H, l: 54, r: 16, t: 18, b: 26 };
  }
  function svgOpen(f) { return '<svg viewBox="0 0 ' + f.W + " " + f.H + '" preserveAspectRatio="none" role="img">'; }
  // Grid lines and labels at the ticks `yt`, the unit above them, and the x axis line.
  function yAxis(f, yt, sy, unit) {
    var h = "", bottom = f.H - f.b;
    yt.forEach(function (v) {
      var y = sy(v).toFixed(1);
      h += '<line class="gl" x1="' + f.l + '" x2="' + (f.W - f.r) + '" y1="' + y + '" y2="' + y + '"></line>';
      h += '<text x="' + (f.l - 8) + '" y="' + y + '" dy="0.32em" text-anchor="end">' + num(v) + "</text>";
    });
    h += '<text class="unit" x="2" y="8">' + esc(unit) + "</text>";
    return h + '<line class="ax" x1="' + f.l + '" x2="' + (f.W - f.r) + '" y1="' + bottom + '" y2="' + bottom + '"></line>';
  }
  function tip(plot) {
    var t = plot.querySelector(".tip");
    if (!t) { t = document.createElement("div"); t.className = "tip"; plot.appendChild(t); }
    return t;
  }
  function placeTip(t, plot, x, y) {
    t.style.display = "block";
    var w = t.offsetWidth, left = x + 14 + w > plot.clientWidth ? x - 14 - w : x + 14;
    t.style.left = Math.max(0, left) + "px";
    t.style.top = Math.max(0, Math.min(y - 10, plot.clientHeight - t.offsetHeight)) + "px";
  }

  function drawLine(fig, c) {
    var plot = fig.querySelector(".plot"), f = frame(plot);
    var x0 = 0, x1 = c.xMax > 1 ? c.xMax : 1, y1 = 0;
    c.series.forEach(function (s, i) {
      s.color = s.color || palette[i % palette.length];
      s.points.forEach(function (p) {
        if (p[1] === null) return;
        if (p[0] > x1) x1 = p[0];
        if (p[1] > y1) y1 = p[1];
      });
    });
    var yt = ticks(0, y1 > 0 ? y1 : 1, 4, true), yTop = yt[yt.length - 1] > 0 ? yt[yt.length - 1] : 1;
    var pw = f.W - f.l - f.r, ph = f.H - f.t - f.b;
    function sx(x) { return f.l + (x - x0) / (x1 - x0) * pw; }
    function sy(y) { return f.t + ph - y / yTop * ph; }
    var h = svgOpen(f) + yAxis(f, yt, sy, c.unit);
    var long = x1 > 120;
    timeTicks(x0, x1).forEach(function (v) {
      var x = sx(v).toFixed(1);
      h += '<line class="ax" x1="' + x + '" x2="' + x + '" y1="' + (f.t + ph) + '" y2="' + (f.t + ph + 4) + '"></line>';
      h += '<text x="' + x + '" y="' + (f.H - 6) + '" text-anchor="middle">' + (long ? clock(v) : v + " s") + "</text>";
    });
    var xs = {};
    c.series.forEach(function (s, i) {
      var d = "", n = 0, open = false, prev = null;
      s.lookup = {};
      s.points.forEach(function (p, k) {
        xs[p[0]] = true;
        s.lookup[p[0]] = p[1];
        if (p[1] === null) { open = false; return; }
        var pt = sx(p[0]).toFixed(1) + " " + sy(p[1]).toFixed(1);
        var next = s.points[k + 1];
        if (!open && (!next || next[1] === null)) d += "M" + pt + "L" + pt;   // an isolated point: a dot
        else d += (open ? "L" : "M") + pt;
        open = true; n++;
      });
      h += '<path class="series" data-series="' + esc(s.name) + '" data-points="' + n + '" stroke="' + s.color + '" d="' + d + '"></path>';
    });
    h += '<line class="cursor" x1="0" x2="0" y1="' + f.t + '" y2="' + (f.t + ph) + '" visibility="hidden"></line>';
    h += '<rect class="hover" x="' + f.l + '" y="' + f.t + '" width="' + pw + '" height="' + ph + '" fill="transparent"></rect></svg>';
    plot.innerHTML = h;
    var single = c.series.length === 1 && c.series[0].name === c.title;
    fig.querySelector(".legend").innerHTML = single ? "" : c.series.map(function (s) {
      return '<span><i style="background:' + s.color + '"></i>' + esc(s.name) + "</span>";
    }).join("");
    var keys = Object.keys(xs).map(Number).sort(function (a, b) { return a - b; });
    var svg = plot.querySelector("svg"), cursor = plot.querySelector(".cursor"), t = tip(plot);
    svg.addEventListener("mousemove", function (ev) {
      var r = svg.getBoundingClientRect(), px = (ev.clientX - r.left) / r.width * f.W;
      var xv = x0 + (px - f.l) / pw * (x1 - x0), best = keys[0];
      keys.forEach(function (k) { if (Math.abs(k - xv) < Math.abs(best - xv)) best = k; });
      if (best === undefined) return;
      var cx = sx(best);
      cursor.setAttribute("x1", cx); cursor.setAttribute("x2", cx); cursor.setAttribute("visibility", "visible");
      t.innerHTML = "<b>" + (long ? clock(best) : best.toFixed(best % 1 ? 1 : 0) + " s") + "</b><br>" + c.series.map(function (s) {
        return '<i style="background:' + s.color + '"></i>' + esc(s.name) + ": " + value(s.lookup[best], c.unit);
      }).join("<br>");
      placeTip(t, plot, cx / f.W * r.width, ev.clientY - r.top);
    });
    svg.addEventListener("mouseleave", function () { cursor.setAttribute("visibility", "hidden"); t.style.display = "none"; });
  }

  function drawBars(fig, c) {
    var plot = fig.querySelector(".plot"), f = frame(plot);
    var lo = c.bins[0][0], hi = c.bins[c.bins.length - 1][1], top = 0, total = 0;
    if (!(hi > lo)) hi = lo + 1;
    c.bins.forEach(function (b) { if (b[2] > top) top = b[2]; total += b[2]; });
    var log = c.logX && lo > 0;
    var pw = f.W - f.l - f.r, ph = f.H - f.t - f.b;
    function sx(x) {
      return f.l + (log ? (Math.log(Math.max(x, lo)) - Math.log(lo)) / (Math.log(hi) - Math.log(lo)) : (x - lo) / (hi - lo)) * pw;
    }
    var yt = ticks(0, top > 0 ? top : 1, 4, true), yTop = yt[yt.length - 1] || 1;
    function sy(y) { return f.t + ph - y / yTop * ph; }
    var h = svgOpen(f) + yAxis(f, yt, sy, "samples");
    (log ? logTicks(lo, hi) : ticks(lo, hi, 6)).forEach(function (v) {
      var x = sx(v).toFixed(1);
      h += '<line class="ax" x1="' + x + '" x2="' + x + '" y1="' + (f.t + ph) + '" y2="' + (f.t + ph + 4) + '"></line>';
      h += '<text x="' + x + '" y="' + (f.H - 6) + '" text-anchor="middle">' + num(v) + "</text>";
    });
    h += '<text class="unit" x="' + (f.W - f.r) + '" y="' + (f.H - 6) + '" text-anchor="end" dx="0">' + esc(c.unit) + "</text>";
    c.bins.forEach(function (b, i) {
      var xa = sx(b[0]), xb = sx(b[1]), y = sy(b[2]);
      h += '<rect class="bar" data-bin="' + i + '" data-count="' + b[2] + '" x="' + (xa + 0.5).toFixed(1) + '" y="' + y.toFixed(1) +
        '" width="' + Math.max(1, xb - xa - 1).toFixed(1) + '" height="' + Math.max(0, f.t + ph - y).toFixed(1) + '"></rect>';
    });
    var colors = { p50: "#0d9488", p95: "#d97706", p99: "#e11d48" };
    var lastX = -1e9, lift = 0;
    c.markers.forEach(function (m) {
      if (!(m.x >= lo && m.x <= hi)) return;
      var xn = sx(m.x), x = xn.toFixed(1), col = colors[m.name] || "#475467";
      lift = xn - lastX < 26 ? lift + 11 : 0;   // labels of close markers are stacked, not overlapped
      lastX = xn;
      h += '<line class="marker" stroke="' + col + '" x1="' + x + '" x2="' + x + '" y1="' + (f.t - lift) + '" y2="' + (f.t + ph) + '"></line>';
      var nearEnd = xn > f.W - f.r - 28;
      h += '<text x="' + x + '" y="' + (f.t - 5 - lift) + '" dx="' + (nearEnd ? -3 : 3) + '" text-anchor="' + (nearEnd ? "end" : "start") +
        '" style="fill:' + col + '">' + esc(m.name) + "</text>";
    });
    h += "</svg>";
    plot.innerHTML = h;
    fig.querySelector(".legend").innerHTML = c.markers.map(function (m) {
      return '<span><i style="background:' + (colors[m.name] || "#475467") + '"></i>' + esc(m.name) + " " + value(m.x, c.unit) + "</span>";
    }).join("");
    var t = tip(plot), svg = plot.querySelector("svg");
    Array.prototype.forEach.call(plot.querySelectorAll("rect.bar"), function (rect) {
      rect.addEventListener("mousemove", function (ev) {
        var b = c.bins[+rect.getAttribute("data-bin")], r = svg.getBoundingClientRect();
        t.innerHTML = "<b>" + num(b[0]) + "–" + num(b[1]) + " " + esc(c.unit) + "</b><br>" + Math.round(b[2]).toLocaleString("en-US") +
          " samples (" + (total ? (100 * b[2] / total).toFixed(1) : "0") + " %)";
        placeTip(t, plot, ev.clientX - r.left, ev.clientY - r.top);
      });
      rect.addEventListener("mouseleave", function () { t.style.display = "none"; });
    });
  }

  function drawAll() {
    var drawn = 0;
    Array.prototype.forEach.call(document.querySelectorAll("figure.chart[data-chart]"), function (fig) {
      var c = byId[fig.getAttribute("data-chart")];
      if (!c) return;
      try {
        if (c.kind === "bars") drawBars(fig, c); else drawLine(fig, c);
        fig.setAttribute("data-drawn", "true");
        drawn++;
      } catch (err) {
        fig.setAttribute("data-error", String(err));
        fig.querySelector(".plot").textContent = "This chart could not be drawn: " + err;
      }
    });
    document.documentElement.setAttribute("data-charts-drawn", String(drawn));
  }
  var pending = null;
  window.addEventListener("resize", function () { clearTimeout(pending); pending = setTimeout(drawAll, 120); });
  drawAll();
})();
"""#
    }
}
