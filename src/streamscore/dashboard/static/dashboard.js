// streamscore dashboard: draws /api/events (server-sent events) into the page; no libraries, no CDN.
// Every value from the stream goes into the page as text (textContent), never as HTML.
"use strict";

const COLORS = ["#2f6fd6", "#d65a2f", "#2a9d4b", "#8c4fd6", "#c9a100", "#0f9fb0", "#c2367a"];
const SVG = "http://www.w3.org/2000/svg";
const fmtInt = (n) => Number(n).toLocaleString("en-US");
const fmtMs = (n) => `${Number(n).toLocaleString("en-US", { maximumFractionDigits: 0 })} ms`;
const fmtAcc = (a) => (a === null || a === undefined ? "n/a" : Number(a).toFixed(4));

function el(tag, text, attrs) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  return node;
}

function svgEl(tag, attrs) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  return node;
}

function setText(id, text) {
  document.getElementById(id).textContent = text;
}

function fillRows(tableId, rows) {
  const body = document.querySelector(`#${tableId} tbody`);
  body.replaceChildren(...rows);
}

// the drawing's units are the element's pixels, so text and strokes are never stretched
function chartWidth(svg, height) {
  const width = Math.max(300, Math.round(svg.getBoundingClientRect().width) || 800);
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  return width;
}

function colorOf(version, versions) {
  return COLORS[versions.indexOf(version) % COLORS.length];
}

function drawAccuracy(series) {
  const svg = document.getElementById("accuracy-chart");
  const versions = Object.keys(series).map(Number).sort((a, b) => a - b);
  const points = versions.flatMap((v) => series[v]);
  svg.replaceChildren();
  const legend = document.getElementById("accuracy-legend");
  legend.replaceChildren(...versions.map((v) => {
    const item = el("span", `v${v}`);
    item.style.setProperty("--swatch", colorOf(v, versions));
    return item;
  }));
  if (!points.length) return;
  const W = chartWidth(svg, 220), H = 220, left = 40, bottom = 18;
  const t0 = Math.min(...points.map((p) => p[0])), t1 = Math.max(...points.map((p) => p[0]));
  const lowest = Math.min(...points.map((p) => p[1]));
  const y0 = Math.max(0, Math.floor(lowest * 10) / 10 - 0.05);
  const x = (t) => left + (t1 > t0 ? ((t - t0) / (t1 - t0)) * (W - left - 6) : (W - left) / 2);
  const y = (a) => 6 + (1 - (a - y0) / (1 - y0)) * (H - bottom - 12);
  for (const tick of [y0, (y0 + 1) / 2, 1]) {
    svg.append(svgEl("line", { x1: left, x2: W, y1: y(tick), y2: y(tick), class: "axis" }));
    const label = svgEl("text", { x: 2, y: y(tick) + 4 });
    label.textContent = tick.toFixed(2);
    svg.append(label);
  }
  const span = svgEl("text", { x: W - 4, y: H - 4, "text-anchor": "end" });
  span.textContent = `${t1 - t0} s of stream time`;
  svg.append(span);
  for (const v of versions) {
    const path = series[v].map((p) => `${x(p[0]).toFixed(1)},${y(p[1]).toFixed(1)}`).join(" ");
    svg.append(svgEl("polyline", { points: path, fill: "none", stroke: colorOf(v, versions), "stroke-width": 2,
                                   "vector-effect": "non-scaling-stroke", "data-version": v }));
  }
}

function drawThroughput(series) {
  const svg = document.getElementById("throughput-chart");
  svg.replaceChildren();
  if (!series.length) return;
  const W = chartWidth(svg, 140), H = 140, left = 40, bottom = 6;
  const top = Math.max(1, ...series.map((p) => p[1]));
  const barW = (W - left) / series.length;
  svg.append(svgEl("line", { x1: left, x2: W, y1: H - bottom, y2: H - bottom, class: "axis" }));
  const label = svgEl("text", { x: 2, y: 12 });
  label.textContent = fmtInt(top);
  svg.append(label);
  series.forEach(([, count], i) => {
    const h = (count / top) * (H - bottom - 8);
    svg.append(svgEl("rect", { x: left + i * barW, y: H - bottom - h, width: Math.max(1, barW - 1), height: h,
                               fill: "#2f6fd6" }));
  });
}

function confusionTable(v) {
  const table = el("table", null, { "data-version": v.model_version });
  table.append(el("caption", `v${v.model_version} · accuracy ${fmtAcc(v.accuracy)}`));
  const head = el("tr");
  head.append(el("th", ""));
  for (let p = 0; p < 10; p++) head.append(el("th", p));
  table.append(head);
  const rowMax = v.confusion_matrix.map((row) => Math.max(1, ...row));
  v.confusion_matrix.forEach((row, label) => {
    const tr = el("tr");
    tr.append(el("th", label));
    row.forEach((count, predicted) => {
      const td = el("td", count || "");
      const share = count / rowMax[label];
      const hue = label === predicted ? "47,111,214" : "214,90,47";
      if (count) td.style.background = `rgba(${hue},${(0.12 + 0.75 * share).toFixed(2)})`;
      if (share > 0.6) td.style.color = "#fff";
      tr.append(td);
    });
    table.append(tr);
  });
  return table;
}

function digit(m) {
  const figure = el("figure", null, { "data-image-id": m.image_id });
  if (m.has_pixels) {
    figure.append(el("img", null, { src: `/api/digits/${encodeURIComponent(m.image_id)}.png`,
                                    alt: `digit ${m.image_id}` }));
  } else {
    figure.append(el("div", "no pixels", { class: "nopixels" }));
  }
  figure.append(el("figcaption", `${m.label} → ${m.predicted} (${Number(m.probability).toFixed(2)}) v${m.model_version}`));
  figure.title = m.image_id;
  return figure;
}

let shownGallery = "";

function render(state) {
  const s = state.summary;
  setText("images", fmtInt(state.images));
  setText("predictions", fmtInt(state.predictions));
  setText("throughput", fmtInt(Math.round(s.throughput_per_s)));
  setText("latency-p50", fmtMs(s.latency_ms.p50));
  setText("latency-p99", fmtMs(s.latency_ms.p99));
  setText("dlq-total", fmtInt(state.dlq_total));
  if (state.last_scored_at) {
    setText("last-prediction", `newest prediction scored ${new Date(state.last_scored_at).toLocaleTimeString()}`);
  }
  fillRows("versions", state.versions.map((v) => {
    const tr = el("tr", null, { "data-version": v.model_version });
    tr.append(el("td", `v${v.model_version}`), el("td", fmtInt(v.predictions), { class: "predictions" }),
              el("td", fmtInt(v.labelled)), el("td", fmtInt(v.correct), { class: "correct" }),
              el("td", fmtAcc(v.accuracy), { class: "accuracy" }));
    return tr;
  }));
  fillRows("models", state.models.map((m) => {
    const tr = el("tr", null, { "data-version": m.model_version });
    const role = el("td", m.role + (m.problem ? ` (${m.problem})` : ""), { class: `role role-${m.role}` });
    if (m.problem) role.classList.add("problem");
    tr.append(el("td", m.model_name), el("td", `v${m.model_version}`), role, el("td", fmtInt(m.served_predictions)),
              el("td", m.test_accuracy === null ? "–" : Number(m.test_accuracy).toFixed(4)),
              el("td", m.sha256 ? m.sha256.slice(0, 8) : "–", { class: "digest", title: m.sha256 || "" }));
    return tr;
  }));
  const reasons = Object.entries(s.dlq);
  fillRows("dlq", reasons.length ? reasons.map(([reason, count]) => {
    const tr = el("tr", null, { "data-reason": reason });
    tr.append(el("td", reason), el("td", fmtInt(count)));
    return tr;
  }) : [el("tr")]);
  document.getElementById("confusion").replaceChildren(...state.versions.map(confusionTable));
  const gallery = JSON.stringify(state.misclassified);
  if (gallery !== shownGallery) {  // redrawn only when it changed: the images are not fetched again and again
    document.getElementById("misclassified").replaceChildren(...state.misclassified.map(digit));
    shownGallery = gallery;
  }
  drawAccuracy(state.accuracy_series);
  drawThroughput(state.throughput_series);
  document.body.dataset.generatedAt = state.generated_at;
}

function connect() {
  const badge = document.getElementById("connection");
  const source = new EventSource("/api/events");
  source.addEventListener("open", () => { badge.textContent = "live"; badge.className = "connection live"; });
  source.addEventListener("error", () => {
    badge.textContent = "reconnecting…";  // EventSource retries by itself
    badge.className = "connection down";
  });
  source.addEventListener("state", (event) => render(JSON.parse(event.data)));
}

connect();
