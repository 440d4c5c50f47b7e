"""The timeline page: one self-contained HTML document (inline CSS and script, no
CDN, no build step).

Request ids, flow names and error messages are user data: the script builds DOM
nodes and sets ``textContent``/attributes only, never ``innerHTML`` with data.
"""

from __future__ import annotations

_STYLE = """
:root { --ok:#2e7d32; --failed:#c62828; --timed_out:#ef6c00; --cancelled:#757575;
  --not_run:#bdbdbd; --running:#1565c0; --undo:#6a1b9a; --undo_failed:#880e4f; }
* { box-sizing: border-box; }
body { font: 14px/1.4 system-ui, sans-serif; margin: 0; color: #212121; background: #fafafa; }
header { padding: 10px 16px; background: #263238; color: #fff; display: flex; gap: 16px;
  align-items: center; flex-wrap: wrap; }
header h1 { font-size: 18px; margin: 0 16px 0 0; }
header label { font-size: 13px; }
header select, header input { margin-left: 4px; padding: 3px 6px; }
main { display: grid; grid-template-columns: minmax(640px, 1fr) minmax(480px, 1.3fr); gap: 12px;
  padding: 12px; }
section { background: #fff; border: 1px solid #e0e0e0; border-radius: 6px; padding: 8px;
  overflow: auto; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: 4px 6px; border-bottom: 1px solid #eee; white-space: nowrap; }
tr.saga-row { cursor: pointer; }
tr.saga-row:hover, tr.saga-row.selected { background: #e3f2fd; }
.badge { display: inline-block; padding: 0 6px; border-radius: 8px; color: #fff; font-size: 12px; }
.status-completed { background: var(--ok); } .status-failed { background: var(--failed); }
.status-compensation_failed { background: var(--undo_failed); }
.status-running { background: var(--running); }
.muted { color: #757575; }
#saga-errors li { color: var(--failed); margin: 2px 0; white-space: pre-wrap; }
.legend span { margin-right: 10px; font-size: 12px; }
.legend i { display: inline-block; width: 10px; height: 10px; margin-right: 3px; }
svg text { font-size: 11px; fill: #424242; }
"""

_SCRIPT = """
"use strict";
const SVG = "http://www.w3.org/2000/svg";
const COLOURS = { ok: "var(--ok)", failed: "var(--failed)", timed_out: "var(--timed_out)",
  cancelled: "var(--cancelled)", not_run: "var(--not_run)", running: "var(--running)" };
const UNDO = { ok: "var(--undo)", failed: "var(--undo_failed)", running: "var(--running)" };
const $ = (id) => document.getElementById(id);
let selected = null;

function node(tag, attrs, text) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, String(v));
  if (text !== undefined && text !== null) el.textContent = String(text);
  return el;
}
function svg(tag, attrs, text) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, String(v));
  if (text !== undefined && text !== null) el.textContent = String(text);
  return el;
}
function auth() {
  const token = sessionStorage.getItem("timeline-token");
  return token ? { headers: { Authorization: "Bearer " + token } } : {};
}
function ms(value) { return value === null || value === undefined ? "–" : value + " ms"; }
function badge(status) { return node("span", { class: "badge status-" + status }, status); }

async function loadList() {
  const params = new URLSearchParams();
  const filters = [["flow", "flow-filter"], ["status", "status-filter"], ["q", "q-filter"]];
  for (const [key, id] of filters) {
    if ($(id).value) params.set(key, $(id).value);
  }
  const response = await fetch("timeline/api/sagas?" + params.toString(), auth());
  if (!response.ok) return;
  const body = await response.json();
  $("token-label").hidden = !body.tokens;
  const flows = $("flow-filter");
  const chosen = flows.value;
  const known = new Set(Array.from(flows.options, (o) => o.value));
  for (const flow of body.flows) {
    if (!known.has(flow)) flows.appendChild(node("option", { value: flow }, flow));
  }
  flows.value = chosen;
  const rows = body.sagas.map((saga) => {
    const row = node("tr", { class: "saga-row", "data-request-id": saga.request_id });
    if (saga.request_id === selected) row.classList.add("selected");
    row.appendChild(node("td", { class: "request-id" }, saga.request_id));
    row.appendChild(node("td", {}, saga.flow === null ? "–" : saga.flow));
    const status = node("td");
    status.appendChild(badge(saga.status));
    row.appendChild(status);
    row.appendChild(node("td", {}, saga.complete === null ? "–" : saga.complete ? "yes" : "no"));
    row.appendChild(node("td", {}, ms(saga.duration_ms)));
    row.appendChild(node("td", { class: "muted" },
      new Date(saga.started_at_ms).toLocaleTimeString()));
    row.addEventListener("click", () => {
      location.hash = "#saga=" + encodeURIComponent(saga.request_id);
    });
    return row;
  });
  $("saga-rows").replaceChildren(...rows);
  $("saga-count").textContent = body.sagas.length + " shown, " + body.held + " held";
}

function known(value) { return value !== null && value !== undefined; }

function calls(detail) {
  const rows = [];
  for (const step of detail.steps || []) {
    // Results before schema version 3 have no call_timeline (nor step times).
    const timed = Array.isArray(step.call_timeline) ? step.call_timeline : [];
    if (timed.length === 0) {
      rows.push({ step, call: { call: step.step, started_ms: step.started_ms,
        finished_ms: step.finished_ms, attempts: step.attempts || 0, outcome: step.status,
        error_code: null, compensation: null }, summary: true });
    }
    for (const call of timed) rows.push({ step, call, summary: false });
    const hidden = (step.calls || 0) - timed.length;
    if (timed.length > 0 && hidden > 0) rows.push({ step, more: hidden });
  }
  return rows;
}

function drawAxis(detail) {
  const rows = calls(detail);
  const label = 190, width = Math.max(600, $("axis-box").clientWidth - 16), right = 70;
  const rowH = 24, top = 24, height = top + rows.length * rowH + 8;
  let span = Math.max(1, detail.duration_ms || 0);
  for (const { call } of rows) {
    if (!call) continue;
    span = Math.max(span, call.finished_ms || 0, (call.compensation || {}).finished_ms || 0);
  }
  const x = (t) => label + ((width - label - right) * t) / span;
  const root = svg("svg", { id: "timeline-axis", width, height, role: "img",
    "aria-label": "calls on a time axis" });
  for (let i = 0; i <= 4; i++) {
    const t = Math.round((span * i) / 4);
    root.appendChild(svg("line", { x1: x(t), x2: x(t), y1: top - 6, y2: height, stroke: "#eee" }));
    root.appendChild(svg("text", { x: x(t) - 8, y: 12 }, t + " ms"));
  }
  rows.forEach((row, i) => {
    const y = top + i * rowH;
    if (row.more) {
      root.appendChild(svg("text", { x: 4, y: y + 15, class: "more-calls" },
        "… " + row.more + " more calls of " + row.step.step + " not timed"));
      return;
    }
    const c = row.call;
    const g = svg("g", { class: "call-row", "data-call": c.call });
    g.appendChild(svg("text", { x: 4, y: y + 15 }, c.call));
    // A call that never began (held back, or withdrawn before it was sent) gets no bar.
    if (known(c.started_ms)) {
      const end = known(c.finished_ms) ? c.finished_ms : span;
      const bar = svg("rect", { class: "call-bar outcome-" + c.outcome,
        x: x(c.started_ms), y: y + 4, width: Math.max(3, x(end) - x(c.started_ms)),
        height: rowH - 8, rx: 2,
        fill: COLOURS[c.outcome] || "var(--ok)", "data-call": c.call, "data-outcome": c.outcome });
      bar.appendChild(svg("title", {}, c.call + ": " + c.outcome + ", " + c.attempts +
        " attempt(s), " + ms(c.started_ms) + " → " + ms(c.finished_ms) +
        (c.error_code ? ", " + c.error_code : "")));
      g.appendChild(bar);
      if (c.attempts > 1) {
        const where = { x: x(end) + 3, y: y + 15, class: "attempts" };
        g.appendChild(svg("text", where, "×" + c.attempts));
      }
    }
    const u = c.compensation;
    if (u && known(u.started_ms)) {
      const end = known(u.finished_ms) ? u.finished_ms : span;
      const bar = svg("rect", { class: "undo-bar outcome-" + u.outcome,
        x: x(u.started_ms), y: y + 7, width: Math.max(3, x(end) - x(u.started_ms)),
        height: rowH - 14, rx: 2,
        fill: UNDO[u.outcome] || "var(--undo)", "data-call": c.call, "data-outcome": u.outcome });
      bar.appendChild(svg("title", {}, "undo of " + c.call + ": " + u.outcome + ", " +
        u.attempts + " attempt(s), " + ms(u.started_ms) + " → " + ms(u.finished_ms) +
        (u.error_code ? ", " + u.error_code : "")));
      g.appendChild(bar);
    }
    root.appendChild(g);
  });
  return root;
}

async function loadDetail(requestId) {
  selected = requestId;
  const box = $("saga-detail");
  if (requestId === null) {
    box.replaceChildren(node("p", { class: "muted" }, "Pick a saga."));
    return;
  }
  const response = await fetch("timeline/api/sagas/" + encodeURIComponent(requestId), auth());
  if (!response.ok) {
    const text = "The timeline holds no saga " + requestId + ".";
    box.replaceChildren(node("p", { class: "muted" }, text));
    return;
  }
  const d = await response.json();
  const head = node("h2", { id: "detail-title" });
  head.appendChild(document.createTextNode(d.request_id + " "));
  head.appendChild(badge(d.status));
  const facts = node("p", { class: "muted" }, "flow " + (d.flow || "–") +
    (d.flow_version ? " v" + d.flow_version : "") + " · " + ms(d.duration_ms) +
    " · complete: " + (d.complete === null ? "–" : d.complete) + " · started " +
    new Date(d.started_at_ms).toISOString());
  const legend = node("p", { class: "legend" });
  for (const [name, colour] of [["ok", "ok"], ["failed", "failed"], ["timed out", "timed_out"],
    ["cancelled", "cancelled"], ["running", "running"], ["compensation", "undo"],
    ["compensation failed", "undo_failed"]]) {
    const item = node("span");
    item.appendChild(node("i", { style: "background: var(--" + colour + ")" }));
    item.appendChild(document.createTextNode(name));
    legend.appendChild(item);
  }
  const axis = node("div", { id: "axis-box" });
  const errors = node("ul", { id: "saga-errors" });
  for (const e of d.errors || []) {
    const text = e.code + (e.call ? " [" + e.call + "]" : "") +
      (e.adapter_code ? " (" + e.adapter_code + ")" : "") + ": " + e.message;
    errors.appendChild(node("li", { class: "saga-error" }, text));
  }
  const parts = [head, facts, legend, axis];
  if (d.status === "running") {
    parts.push(node("p", {}, d.event_count + " event(s) recorded so far:"));
    const list = node("ul", { id: "live-events" });
    for (const e of d.events) {
      list.appendChild(node("li", {}, ms(e.at_ms) + " " + e.kind + " " + (e.call || "") +
        (e.attempt ? " #" + e.attempt : "") + (e.status ? " " + e.status : "") +
        (e.code ? " " + e.code : "")));
    }
    parts.push(list);
  }
  parts.push(node("h3", {}, "Errors (" + errors.children.length + ")"), errors);
  box.replaceChildren(...parts);
  if ((d.steps || []).length > 0) axis.appendChild(drawAxis(d));
  for (const row of document.querySelectorAll("tr.saga-row")) {
    row.classList.toggle("selected", row.getAttribute("data-request-id") === requestId);
  }
}

function fromHash() {
  const match = /^#saga=(.*)$/.exec(location.hash);
  loadDetail(match ? decodeURIComponent(match[1]) : null);
}
for (const id of ["flow-filter", "status-filter"]) $(id).addEventListener("change", loadList);
$("q-filter").addEventListener("input", loadList);
$("token-input").value = sessionStorage.getItem("timeline-token") || "";
$("token-input").addEventListener("change", () => {
  sessionStorage.setItem("timeline-token", $("token-input").value.trim());
  loadList().then(fromHash);
});
window.addEventListener("hashchange", fromHash);
loadList().then(fromHash);
setInterval(loadList, 3000);
"""

PAGE_HTML = f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Execution timeline · orchestrator</title>
<style>{_STYLE}</style>
</head>
<body>
<header>
  <h1>Execution timeline</h1>
  <label>flow <select id="flow-filter"><option value="">all</option></select></label>
  <label>status <select id="status-filter">
    <option value="">all</option><option value="running">running</option>
    <option value="completed">completed</option><option value="partial">partial</option>
    <option value="failed">failed</option>
    <option value="compensation_failed">compensation_failed</option>
  </select></label>
  <label>request id <input id="q-filter" type="search" placeholder="part of an id"></label>
  <label id="token-label" hidden>token
    <input id="token-input" type="password" autocomplete="off"
      title="flows that ask for a token show only with one that may call them"></label>
  <span id="saga-count"></span>
</header>
<main>
  <section>
    <table id="saga-list">
      <thead><tr><th>request id</th><th>flow</th><th>status</th><th>complete</th>
        <th>duration</th><th>started</th></tr></thead>
      <tbody id="saga-rows"></tbody>
    </table>
  </section>
  <section id="saga-detail"><p class="muted">Pick a saga.</p></section>
</main>
<script>{_SCRIPT}</script>
</body>
</html>
"""
