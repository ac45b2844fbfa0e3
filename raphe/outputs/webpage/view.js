// raphe's live view: one server-sent event per snapshot (see streamer/web.py), drawn with uPlot.
"use strict";

const LOST_AFTER_MS = 3000;  // no event for this long: the service (or the network) is gone
const PLOT = { width: 300, height: 170 };
const pinned = new Set(JSON.parse(localStorage.getItem("raphe-pinned") || "[]"));
const plots = new Map();  // cell id -> {card, posterior, shape, isi}
let source = null;
let lastEventAt = 0;
let ended = false;

function $(id) { return document.getElementById(id); }
function fmt(n) { return n === null || n === undefined ? "-" : Number(n).toLocaleString("en"); }

function setStatus(kind, text) {
  const el = $("status");
  el.className = "status " + kind;
  el.textContent = text;
}

function connect() {
  if (source) source.close();
  const cells = [...pinned].join(",");
  source = new EventSource("/events" + (cells ? "?cells=" + encodeURIComponent(cells) : ""));
  source.onmessage = (event) => {
    lastEventAt = Date.now();
    render(JSON.parse(event.data));
  };
  source.onerror = () => {
    if (ended) { source.close(); return; }
    setStatus("lost", "stream lost (no connection to raphe)");
  };
}

setInterval(() => {
  if (!ended && lastEventAt && Date.now() - lastEventAt > LOST_AFTER_MS) {
    setStatus("lost", `stream lost (nothing for ${Math.round((Date.now() - lastEventAt) / 1000)} s)`);
  }
}, 1000);

function render(snapshot) {
  const h = snapshot.header;
  ended = h.ended;
  $("title").textContent = h.title;
  if (h.ended) setStatus("ended", "service stopped");
  else if (h.lost) setStatus("lost", `stream lost (no data for ${h.idle_s.toFixed(0)} s)`);
  else if (h.idle_s === null) setStatus("waiting", "waiting for data");
  else setStatus("live", "live");
  const c = h.counters;
  $("messages").textContent = fmt(c.messages);
  $("lost-messages").textContent = fmt(c.lost_messages);
  $("lost-samples").textContent = fmt(c.lost_samples);
  const malformed = Object.entries(c.malformed);
  $("malformed").textContent = malformed.length ? malformed.map(([k, n]) => `${k} ${n}`).join(", ") : "0";
  $("acquisitions").textContent = fmt(c.acquisitions);
  $("spikes").textContent = fmt(h.spikes);
  $("outputs-dropped").textContent = fmt(Object.values(c.outputs_dropped).reduce((a, b) => a + b, 0));
  $("seconds").textContent = h.seconds.toFixed(1) + " s";
  $("stages").textContent = "per drain, p50 / p99 µs: " + Object.entries(h.stages)
    .map(([name, s]) => `${name} ${fmt(s.p50_us)} / ${fmt(s.p99_us)}`).join(" · ");
  $("model").textContent = `model ${h.model} (${h.classes.join("/")}) · deciding: ${h.evidence} ` +
    `at ${h.threshold} · w/f: where the shapes and the firing point`;
  renderRows(snapshot.cells);
  renderDetails(h, snapshot.cells, snapshot.details);
}

function renderRows(cells) {
  const body = $("cells").tBodies[0];
  const rows = cells.map((cell) => {
    const tr = document.createElement("tr");
    tr.dataset.cell = cell.cell;
    if (pinned.has(cell.cell)) tr.className = "pinned";
    const kind = cell.decided ? "decided" : cell.decision === "not classifiable" ? "not-classifiable" : "undecided";
    const values = [cell.cell, cell.name, fmt(cell.spikes), cell.rate_hz.toFixed(1), cell.decision, cell.top,
      cell.leanings, fmt(cell.spikes_to_decision), cell.seconds_to_decision === null ? "-" :
        cell.seconds_to_decision.toFixed(1), fmt(cell.novel), fmt(cell.drops)];
    values.forEach((v, i) => {
      const td = document.createElement("td");
      td.textContent = v;
      if (i === 4) td.className = "decision " + kind;
      tr.appendChild(td);
    });
    const why = cell.reasons.length ? cell.reasons : cell.hints;
    if (why.length) tr.title = why.join("; ");
    tr.onclick = () => togglePin(cell.cell);
    return tr;
  });
  body.replaceChildren(...rows);
}

function togglePin(cell) {
  if (pinned.has(cell)) pinned.delete(cell); else pinned.add(cell);
  localStorage.setItem("raphe-pinned", JSON.stringify([...pinned]));
  connect();  // the server sends the details of the pinned cells
}

function chart(title, series, scales, target, hooks = {}) {
  series.slice(1).forEach((s) => { s.points = { show: false }; });
  return new uPlot({ ...PLOT, title, series, scales, hooks, legend: { live: false }, cursor: { show: false } },
    [[]], target);
}

// The classes' textbook firing ranges, shaded behind the interval histogram.
function shadeRanges(ranges) {
  const colours = ["rgba(31,119,180,0.15)", "rgba(255,127,14,0.15)", "rgba(148,103,189,0.15)"];
  return { drawClear: [(u) => {
    Object.values(ranges).forEach(([low, high], i) => {
      const x0 = u.valToPos(low, "x", true), x1 = u.valToPos(high, "x", true);
      u.ctx.fillStyle = colours[i % colours.length];
      u.ctx.fillRect(x0, u.bbox.top, x1 - x0, u.bbox.height);
    });
  }] };
}

function makeCard(id, header) {
  const card = document.createElement("div");
  card.className = "card";
  card.dataset.cell = id;
  card.innerHTML = "<h2></h2><div class='reasons'></div><div class='plots'></div>";
  const plotsEl = card.querySelector(".plots");
  const first = header.classes[0];
  const entry = {
    card,
    posterior: chart(`P(${first}) over recorded s`, [{},
      { label: "joint", stroke: "#1f77b4", width: 2 },
      { label: "waveform", stroke: "#ff7f0e", dash: [6, 3] },
      { label: "firing", stroke: "#2ca02c", dash: [2, 3] },
      { label: "threshold", stroke: "#999", width: 1 },
      { label: "1 - threshold", stroke: "#999", width: 1, show: true }], { x: { time: false }, y: { range: [0, 1] } },
    plotsEl),
    shape: chart("mean window (ms) vs class averages", [{}, { label: "this cell", stroke: "#000", width: 2 },
      { label: "rejected as novel", stroke: "#999", dash: [2, 3] },
      ...header.classes.map((c, i) => ({ label: `${c} average`, stroke: ["#1f77b4", "#ff7f0e", "#9467bd"][i % 3],
        dash: [5, 3] }))], { x: { time: false } }, plotsEl),
    isi: chart("intervals (s, log) vs textbook ranges", [{}, { label: "intervals", stroke: "#333",
      fill: "rgba(0,0,0,0.15)", paths: uPlot.paths.stepped({ align: 1 }) },
      ...Object.keys(header.isi_ranges_s).map((c, i) => ({ label: `${c} range`,
        stroke: ["rgba(31,119,180,0.5)", "rgba(255,127,14,0.5)", "rgba(148,103,189,0.5)"][i % 3] }))],
    { x: { time: false, distr: 3 } }, plotsEl, shadeRanges(header.isi_ranges_s)),
  };
  return entry;
}

function renderDetails(header, cells, details) {
  const container = $("details");
  const byId = new Map(cells.map((c) => [c.cell, c]));
  for (const [id, entry] of plots) {
    if (!(id in details)) {
      entry.posterior.destroy(); entry.shape.destroy(); entry.isi.destroy();
      entry.card.remove();
      plots.delete(id);
    }
  }
  for (const [id, d] of Object.entries(details)) {
    let entry = plots.get(id);
    if (!entry) {
      entry = makeCard(id, header);
      plots.set(id, entry);
      container.appendChild(entry.card);
    }
    const row = byId.get(id);
    entry.card.querySelector("h2").textContent = row ?
      `${id} (${row.name}): ${row.decision} · ${row.top} · ${row.spikes} spikes, ${row.novel} novel` : id;
    entry.card.querySelector(".reasons").textContent = !row ? "" : row.reasons.length ?
      "not classifiable: " + row.reasons.join("; ") : row.hints.join("; ");
    const t = d.history.recorded_s;
    const th = header.threshold;
    entry.posterior.setData([t, d.history.joint, d.history.waveform, d.history.firing,
      t.map(() => th), t.map(() => 1 - th)]);
    if (d.mean_window || d.novel_mean_window) {
      const none = header.window_ms.map(() => null);
      entry.shape.setData([header.window_ms, d.mean_window || none, d.novel_mean_window || none,
        ...header.classes.map((c) => d.class_means[c] || none)]);
    }
    const edges = header.isi_edges_s;
    const none = edges.slice(0, -1).map(() => null);  // the range series only name the shading
    entry.isi.setData([edges.slice(0, -1), d.isi_counts, ...Object.keys(header.isi_ranges_s).map(() => none)]);
  }
}

connect();
