// Metrics tab: per result and metric a value histogram and a timeline (Plotly), from the JSON API.
// Timeline points are coloured by status; threshold lines and alert activations are drawn; a click
// on a point opens that window's drill-down.
"use strict";

const CONFIG = {displayModeBar: false, responsive: true};
const Q_FLOOR = 1e-12;

function baseLayout(extra) {
  return Object.assign({
    height: 190, margin: {l: 42, r: 12, t: 8, b: 30}, showlegend: false,
    paper_bgcolor: "#fff", plot_bgcolor: "#fff", font: {size: 11},
    xaxis: {gridcolor: "#eef0f3"}, yaxis: {gridcolor: "#eef0f3", zeroline: false},
  }, extra);
}

function hline(y, color, yref) {
  return {type: "line", xref: "paper", x0: 0, x1: 1, yref: yref || "y", y0: y, y1: y,
          line: {color: color, width: 1.5, dash: "dash"}};
}

function vline(x, color) {
  return {type: "line", yref: "paper", y0: 0, y1: 1, xref: "x", x0: x, x1: x,
          line: {color: color, width: 1, dash: "dot"}};
}

function activationsOf(view, app, series) {
  const id = view.endpoint.endpoint_id;
  return view.activations.filter(a => a.entity === `${id}.${app}.result.${series}` || a.entity === `${id}.${app}`
                                      || a.entity === id);
}

function drawResult(el, view, app, s) {
  const colors = view.status_colors;
  const xs = s.points.map(p => p.t), ys = s.points.map(p => p.v);
  const pointColors = s.points.map(p => colors[p.c] || colors.none);
  const shapes = (s.thresholds || []).map(t => hline(t.value, colors[t.class]));
  const acts = activationsOf(view, app, s.name);
  for (const a of acts) shapes.push(vline(a.window_end, "#7c3aed"));
  const traces = [{
    x: xs, y: ys, customdata: xs, type: "scatter", mode: "lines+markers", name: s.name,
    line: {color: "#9ca3af", width: 1}, marker: {color: pointColors, size: 8, line: {color: "#fff", width: 1}},
    hovertemplate: "%{x}<br>%{y:.4f}<extra></extra>",
  }];
  const layout = baseLayout({shapes: shapes});
  const bounded = ys.every(v => v === null || (v >= 0 && v <= 1));
  if (bounded && (s.thresholds || []).length) layout.yaxis.range = [0, 1.02];
  // the smallest Benjamini-Hochberg adjusted p-value of each window, on a log axis against the test's
  // levels; below 1e-12 drawn at 1e-12 (the hover gives the value)
  const qs = s.points.map(p => (p.q === undefined || p.q === null ? null : p.q));
  if ((s.levels || []).length && qs.some(q => q !== null)) {
    traces.push({x: xs, y: qs.map(q => (q === null ? null : Math.max(q, Q_FLOOR))), customdata: xs, text: qs,
                 yaxis: "y2", type: "scatter", mode: "markers", name: "smallest adjusted p",
                 marker: {symbol: "diamond-open", color: "#374151", size: 7},
                 hovertemplate: "%{x}<br>smallest BH-adjusted p %{text:.2e}<extra></extra>"});
    layout.yaxis2 = {type: "log", overlaying: "y", side: "right", showgrid: false, title: {text: "adj. p"},
                     range: [Math.log10(Q_FLOOR) - 0.5, 0.2], dtick: 3, exponentformat: "power"};
    layout.margin.r = 48;
    for (const l of s.levels) shapes.push(hline(l.fdr, colors[l.class], "y2"));
  }
  if (acts.length) {
    traces.push({x: acts.map(a => a.window_end), y: acts.map(() => 1), yaxis: "y3", type: "scatter", mode: "markers",
                 marker: {symbol: "triangle-down", color: "#7c3aed", size: 10}, name: "alert",
                 text: acts.map(a => `${a.alert_name}: ${a.event_kind}`), hovertemplate: "%{text}<extra></extra>"});
    layout.yaxis3 = {overlaying: "y", range: [0, 1.05], visible: false, fixedrange: true};
  }
  Plotly.newPlot(el, traces, layout, CONFIG);
  return el;
}

function drawMetric(el, s) {
  Plotly.newPlot(el, [{x: s.points.map(p => p.t), y: s.points.map(p => p.v), customdata: s.points.map(p => p.t),
                       type: "scatter", mode: "lines+markers", line: {color: "#1f77b4", width: 1.5},
                       marker: {size: 6}, hovertemplate: "%{x}<br>%{y:.4g}<extra></extra>"}],
                 baseLayout({}), CONFIG);
  return el;
}

function drawHistogram(el, s, colors) {
  const values = s.points.map(p => p.v).filter(v => v !== null);
  const shapes = (s.thresholds || []).map(t => ({type: "line", yref: "paper", y0: 0, y1: 1, xref: "x",
                                                  x0: t.value, x1: t.value, line: {color: colors[t.class], width: 1.5, dash: "dash"}}));
  const bounded = values.every(v => v >= 0 && v <= 1);
  Plotly.newPlot(el, [{x: values, type: "histogram", marker: {color: "#93c5fd", line: {color: "#1f77b4", width: 1}},
                       xbins: bounded ? {start: 0, end: 1.0001, size: 0.05} : undefined, nbinsx: bounded ? undefined : 20,
                       hovertemplate: "%{x}: %{y} windows<extra></extra>"}],
                 baseLayout({shapes: shapes, bargap: 0.05, yaxis: {title: {text: "windows"}, gridcolor: "#eef0f3"},
                             xaxis: {gridcolor: "#eef0f3", range: bounded && shapes.length ? [0, 1] : undefined}}), CONFIG);
}

function onClickOpenWindow(el, windowUrl) {
  el.on("plotly_click", ev => {
    const point = ev.points && ev.points[0];
    if (point && point.customdata) window.location.href = windowUrl + encodeURIComponent(point.customdata);
  });
}

async function main() {
  const root = document.getElementById("metrics");
  if (!root || typeof Plotly === "undefined") return;
  const response = await fetch(root.dataset.api, {headers: {accept: "application/json"}});
  if (!response.ok) {
    root.insertAdjacentHTML("afterbegin", `<p class="bad">The metrics could not be read (${response.status}).</p>`);
    return;
  }
  const view = await response.json();
  view.applications.forEach((app, ai) => {
    app.results.forEach((s, j) => {
      const id = `r-${ai}-${j}`;
      drawHistogram(document.getElementById(`${id}-hist`), s, view.status_colors);
      onClickOpenWindow(drawResult(document.getElementById(`${id}-line`), view, app.name, s), root.dataset.windowUrl);
    });
    app.metrics.forEach((s, j) => {
      const id = `m-${ai}-${j}`;
      drawHistogram(document.getElementById(`${id}-hist`), s, view.status_colors);
      onClickOpenWindow(drawMetric(document.getElementById(`${id}-line`), s), root.dataset.windowUrl);
    });
  });
  root.dataset.drawn = "true";
}

document.addEventListener("DOMContentLoaded", () => { main().catch(err => console.error(err)); });
