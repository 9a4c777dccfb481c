// The nas dashboard page: polls the read-only JSON API of `nas dashboard` (or reads the answers a static
// `nas report` file inlined in window.NAS_STATIC) and draws every chart with plotly.js.
"use strict";

const STATIC = window.NAS_STATIC || null;
// ?poll=MS sets the poll period: a value that is not a positive number keeps the default (0 or NaN would poll
// back-to-back), and a tiny one is raised to a floor the server can keep up with.
const POLL_MS = (p => Number.isFinite(p) && p > 0 ? Math.max(p, 200) : 2000)(Number(new URLSearchParams(location.search).get("poll") || NaN));
// A static report is a snapshot: its durations are measured to the time it was written, not the reader's clock.
const SNAPSHOT = window.NAS_SNAPSHOT ?? null;
function now() { return SNAPSHOT ?? Date.now() / 1000; }
const PAGE = 200;  // trial-table rows shown per "show more"
const data = {};   // search key -> {rows, summary, history, revision}
let searches = [];
let timer = null;
let view = {};     // what the current route shows: {kind, key, ...} plus its controls' state
// Thousands of points draw in a blink with WebGL, in seconds as SVG: large traces use it where it exists.
const WEBGL = (() => { try { return !!document.createElement("canvas").getContext("webgl"); } catch (e) { return false; } })();
function scatterType(n) { return WEBGL && n > 2000 ? "scattergl" : "scatter"; }

// ------------------------------------------------------------------ helpers
function esc(s) {
  return String(s ?? "").replace(/[&<>"']/g, c => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}[c]));
}
// A number as nas.report.fmt writes it: integers with thousands separators, else 4 significant digits; from 1e15 on,
// or below 1e-4, in scientific notation like Python's "{:.4g}" (7.312e+300, 1.235e-07), not hundreds of digits.
function fmt(v) {
  if (v === null || v === undefined) return "";
  if (typeof v !== "number") return v === "-inf" ? "−inf" : String(v);
  if (!Number.isFinite(v)) return Number.isNaN(v) ? "NaN" : v > 0 ? "inf" : "−inf";  // as the page shows them
  const [mantissa, exponent] = v.toExponential(3).split("e");  // 4 significant digits, rounded
  if (v !== 0 && (Math.abs(v) >= 1e15 || Number(exponent) < -4)) {
    const e = Number(exponent);
    return `${mantissa.replace(/\.?0+$/, "")}e${e < 0 ? "-" : "+"}${String(Math.abs(e)).padStart(2, "0")}`;
  }
  if (Number.isInteger(v) && Math.abs(v) >= 1000) return v.toLocaleString("en-US");
  if (Math.abs(v) >= 1000) return v.toLocaleString("en-US", {maximumFractionDigits: 1});
  return Number(v.toPrecision(4)).toString();
}
function duration(s) {
  if (s === null || s === undefined) return "–";
  if (s < 90) return `${s.toFixed(0)} s`;
  if (s < 5400) return `${(s / 60).toFixed(0)} min`;
  return `${(s / 3600).toFixed(1)} h`;
}
// A Unix time in the reader's local time with its zone named; a simulated-clock trial's time is simulated seconds.
function when(t) { return t === null || t === undefined ? "–" : new Date(t * 1000).toLocaleString(undefined, {timeZoneName: "short"}); }
function trialTime(t, worker) { return String(worker).startsWith("sim-") ? `${fmt(t)} s (simulated clock)` : when(t); }
function metricOf(name) { const i = name.lastIndexOf(":"); return i > 0 && /^(min|max)$/.test(name.slice(i + 1)) ? name.slice(0, i) : name; }
function el(id) { return document.getElementById(id); }
// A metric as shown: its number, or "NaN" / "inf" / "-inf" for the values strict JSON cannot hold (null in `metrics`).
function metricText(r, k) { const v = r.metrics[k]; return v === null || v === undefined ? (r.nonfinite || {})[k] : v; }
// An architecture for a hover box: escaped, broken every 80 characters (a 40-layer one is thousands of pixels wide).
function wrapArch(a) { return (String(a ?? "").match(/.{1,80}/gs) || [""]).map(esc).join("<br>"); }

async function api(path) {
  if (STATIC) {
    if (path in STATIC) return STATIC[path];
    throw new Error("this static report does not include that view (run `nas dashboard` on the workdir for it)");
  }
  const r = await fetch(path, {cache: "no-store"});
  const body = await r.json();
  if (!r.ok) throw new Error(body.error || r.statusText);
  return body;
}
function searchPath(key, since) { return STATIC ? `/api/search/${key}` : `/api/search/${key}?since=${since}`; }
function frontPath(key, names) {
  const q = STATIC ? names.join(",") : names.map(encodeURIComponent).join(",");
  return `/api/search/${key}/front?objectives=${q}`;
}

async function loadSearch(key) {
  let d = data[key] || (data[key] = {rows: [], revision: -1});
  let res = await api(searchPath(key, d.rows.length));
  // Rows of another journal (a search replaced by a fresh one, which may already hold more trials than the
  // page has; or objectives corrected) are dropped: the server names the journal its rows describe.
  const replaced = d.journal !== undefined && res.summary.journal_id !== d.journal;
  if (replaced || (res.summary.trials !== undefined && res.summary.trials < d.rows.length)) {
    d = data[key] = {rows: [], revision: -1};
    res = await api(searchPath(key, 0));
  }
  d.journal = res.summary.journal_id;
  d.changed = res.summary.revision !== d.revision;
  // Only the rows that continue the page's list: two loads in flight at once (a slow poll overlapping the next, or
  // a page change) asked from the same offset, and appending both answers duplicated rows and skipped later ones.
  const fresh = res.trials.filter(t => t.number >= d.rows.length);
  if (fresh.length && fresh[0].number === d.rows.length) d.rows = d.rows.concat(fresh);
  d.summary = res.summary;
  d.history = res.history;
  d.revision = res.summary.revision;
  return d;
}

function poll(fn) {
  clearInterval(timer);
  let busy = false;  // a tick still running (an importance fit, a large front) is not overlapped by the next
  const tick = async () => {
    if (busy) return;
    busy = true;
    try { await fn(); el("mode").textContent = STATIC ? el("mode").textContent : `live · ${new Date().toLocaleTimeString()}`; }
    catch (e) { showError(e); }
    finally { busy = false; }
  };
  tick();
  if (!STATIC) timer = setInterval(tick, POLL_MS);
}
function showError(e) {
  const box = el("page-error");
  if (box) box.textContent = String(e.message || e);
  else el("main").innerHTML = `<p class="error">${esc(e.message || e)}</p>`;
}

// ------------------------------------------------------------------ routing
async function route() {
  clearInterval(timer);
  const parts = (location.hash.slice(1) || "/").split("/").filter(Boolean);
  if (!searches.length) searches = await api("/api/searches");
  renderNav(parts[1]);
  if (parts[0] === "s" && parts[2] === "trial") return showTrial(parts[1], Number(parts[3]));
  if (parts[0] === "s") return showSearch(parts[1]);
  if (parts[0] === "compare") return showCompare();
  if (searches.length === 1) { location.hash = `#/s/${searches[0].key}`; return; }
  return showOverview();
}
function renderNav(active) {
  el("searches").innerHTML = searches.map(s =>
    `<a href="#/s/${s.key}" class="${s.key === active ? "active" : ""}">${esc(s.name)}</a>`).join("");
  el("compare-link").style.display = searches.length > 1 ? "" : "none";
  if (STATIC) el("mode").textContent = SNAPSHOT === null ? "static report" : `static report · snapshot of ${when(SNAPSHOT)}`;
}

// ------------------------------------------------------------------ overview
function showOverview() {
  view = {kind: "overview"};
  el("main").innerHTML = `<h2 id="overview-count">${searches.length} searches</h2><p id="page-error" class="error"></p>
    <table id="overview"><thead><tr><th class="status">search</th><th class="status">state</th><th>evaluations</th>
    <th class="arch">best</th><th>front</th></tr></thead><tbody></tbody></table>`;
  poll(async () => {
    const before = searches.length;
    searches = await api("/api/searches");  // lists searches started below the folders given since, too
    if (searches.length !== before) { renderNav(); el("overview-count").textContent = `${searches.length} searches`; }
    el("overview").tBodies[0].innerHTML = searches.map(s => s.error ? `<tr><td class="status">${esc(s.name)}</td>
        <td class="arch error" colspan="4">${esc(s.error)}</td></tr>` :
      `<tr onclick="location.hash='#/s/${s.key}'"><td class="status">${esc(s.name)}</td><td class="status">${esc(stateText(s))}</td>
       <td>${s.used ?? 0} / ${s.budget ?? "?"}</td>
       <td class="arch">${Object.entries(s.best || {}).map(([n, b]) => `${esc(n)} ${b ? fmt(b.value) : "–"}`).join(", ")}</td>
       <td>${s.pareto_size ?? ""}</td></tr>`).join("");
  });
}

// ------------------------------------------------------------------ one search
function axisOptions(s) {
  const objs = s.objectives.map(o => ({value: o.name, label: `${o.name} (${o.direction})`}));
  const names = new Set(s.objectives.map(o => o.name));
  const others = s.metrics.filter(m => !names.has(m)).flatMap(m =>
    [{value: `${m}:min`, label: `${m} (min)`}, {value: `${m}:max`, label: `${m} (max)`}]);
  return STATIC ? objs : objs.concat(others);  // a static report holds the fronts of objective pairs only
}

function showSearch(key) {
  view = {kind: "search", key, sort: {col: "number", dir: 1}, limit: PAGE, filter: "", status: "all", axes: null};
  el("main").innerHTML = `
    <p id="page-error" class="error"></p>
    <div class="cards">
      <div class="card" id="progress-card"><h3>progress</h3>
        <div class="big"><span id="progress-used">–</span> <span class="muted">evaluations</span></div>
        <div class="bar"><div id="progress-bar" style="width:0"></div></div><div id="progress-detail" class="muted"></div></div>
      <div class="card"><h3>best</h3><div id="best"></div></div>
      <div class="card"><h3>search</h3><div id="about"></div></div>
    </div>
    <div class="controls">front on <select id="x-axis"></select> × <select id="y-axis"></select>
      <span class="muted" id="front-note"></span></div>
    <div class="grid2">
      <div class="plot" id="front-plot"></div>
      <div class="plot" id="hv-plot"></div>
      <div class="plot" id="best-plot"></div>
      <div><div class="controls">which decisions matter for <select id="imp-metric"></select>
        <span class="muted" id="imp-note"></span></div><div class="plot" id="importance-plot"></div></div>
    </div>
    <div class="controls">decisions against <select id="par-metric"></select> <span class="muted" id="par-note"></span></div>
    <div class="plot" id="parallel-plot"></div>
    <div class="controls">trials <input id="filter" placeholder="filter: text in architecture, error, worker">
      <select id="status-filter"><option value="all">all</option><option value="ok">ok</option>
      <option value="feasible">feasible</option><option value="front">on the front</option>
      <option value="failed">failed</option><option value="infeasible">infeasible</option></select>
      <span id="table-count" class="muted"></span></div>
    <table id="trials"><thead></thead><tbody></tbody></table>
    <p><button id="more">show ${PAGE} more</button></p>`;
  el("filter").oninput = e => { view.filter = e.target.value.toLowerCase(); view.limit = PAGE; drawTable(); };
  el("status-filter").onchange = e => { view.status = e.target.value; view.limit = PAGE; drawTable(); };
  el("more").onclick = () => { view.limit += PAGE; drawTable(); };
  poll(async () => {
    const d = await loadSearch(key);
    if (view.key !== key || view.kind !== "search") return;
    drawSummary(d);
    if (d.summary.error || d.summary.state === "starting") return;  // no header yet: nothing to draw
    if (!view.axes) setupAxes(d.summary);
    const first = !view.drawn;
    view.drawn = true;
    if (d.changed || first || view.frontStale) await drawFront(key);
    if (d.changed || first) { drawHistory(d); drawTable(); await drawImportance(key); await drawParallel(key); }
  });
}

function stateText(s) {
  return s.running && s.running_since ? `${s.state.replace(/\)$/, "")} since ${when(s.running_since)})` : s.state;
}

function drawSummary(d) {
  const s = d.summary;
  if (s.error) { el("page-error").textContent = s.error; return; }
  if (s.state === "starting") { el("progress-detail").textContent = "the search is starting (no header yet)"; return; }
  el("page-error").textContent = "";
  el("progress-used").textContent = `${s.used} / ${s.budget}`;
  el("progress-bar").style.width = `${Math.min(100, 100 * s.used / Math.max(1, s.budget))}%`;
  const w = s.workers;
  const busy = w ? (w.slots === null ? `<br>pending: ${w.in_flight.length} asked` : `<br>workers: ${w.in_flight.length} of ${w.slots} busy`)
    + w.in_flight.map(f => `<br>&nbsp;· ${esc(f.arch_id)}` + (f.since ? ` for ${duration(now() - f.since)}` : "")).join("") : "";
  // as `nas status` counts them, every trial in one count: infeasible is every trial that breaks a constraint;
  // pruned ones (stopped early by a pruner) are ok but neither feasible nor infeasible
  const c = s.counts;
  const why = c.infeasible ? ` (${c.violating} evaluated, ${c.rejected} rejected)` : "";
  const others = Object.entries(c.other || {}).map(([k, n]) => `, ${n} ${esc(k)}`).join("");
  const pruned = c.pruned ? `; ${c.pruned} pruned (stopped early by a pruner: neither feasible nor on the front)` : "";
  const sim = s.rate_clock === "simulated";
  el("progress-detail").innerHTML = `${esc(stateText(s))}${s.still_writing ? " (a trial is being written)" : ""}<br>
    <span id="progress-counts">${s.trials} trials: ${c.ok} ok, ${c.failed} failed, ${c.rejected} rejected by a cheap constraint${others};
    ${c.feasible} feasible, ${c.infeasible} infeasible${why}${pruned}</span><br>
    rate ${s.rate_per_min === null ? "–" : fmt(s.rate_per_min) + (sim ? " / simulated min" : " / min")} ·
    ETA ${s.running && !sim ? duration(s.eta_s) : "–"}${busy}`;
  el("best").innerHTML = s.objectives.map(o => {
    const b = s.best[o.name];
    return `<div>${esc(o.name)} (${o.direction}): <b>${b ? fmt(b.value) : "–"}</b>
      ${b ? `<a href="#/s/${s.key}/trial/${b.trial}">trial ${b.trial}</a>` : ""}</div>`;
  }).join("") + `<div class="muted">Pareto front: ${s.pareto_size} trials</div>`;
  el("about").innerHTML = `<dl><dt>workdir</dt><dd>${esc(s.workdir)}</dd><dt>strategy</dt><dd>${esc(s.strategy)}
    ${Object.keys(s.strategy_options).length ? esc(JSON.stringify(s.strategy_options)) : ""}</dd>
    <dt>seed</dt><dd>${esc(s.seed)}</dd><dt>constraints</dt><dd>${esc(s.constraints.join(", ") || "none")}</dd>
    ${s.first !== null ? `<dt>first / last${s.simulated ? " (wall clock)" : ""}</dt><dd>${when(s.first)} / ${when(s.last)}</dd>` : ""}
    ${s.simulated ? `<dt>simulated clock</dt><dd id="simulated-clock">${s.simulated.trials} trials replayed on ${s.simulated.workers}
      simulated worker${s.simulated.workers > 1 ? "s" : ""}, from ${fmt(s.simulated.from)} s to ${fmt(s.simulated.to)} s simulated
      (no wall-clock dates)</dd>` : ""}</dl>`;
}

function setupAxes(s) {
  const opts = axisOptions(s);
  const html = opts.map(o => `<option value="${esc(o.value)}">${esc(o.label)}</option>`).join("");
  el("x-axis").innerHTML = html;
  el("y-axis").innerHTML = html;
  // a front by default only over two objectives: one objective has a best trial, not a front (as `nas pareto`)
  const second = s.objectives.length > 1 ? opts.find(o => o.value !== opts[0].value) : null;
  view.axes = [opts[0].value, second ? second.value : opts[0].value];
  el("x-axis").value = view.axes[0];
  el("y-axis").value = view.axes[1];
  const change = () => { view.axes = [el("x-axis").value, el("y-axis").value]; drawFront(view.key); };
  el("x-axis").onchange = change;
  el("y-axis").onchange = change;
}

function hoverText(r, names) {
  const ms = Object.keys(r.metrics).map(k => `${names.has(k) ? "<b>" + esc(k) + "</b>" : esc(k)} ${esc(fmt(metricText(r, k)))}`);
  return `trial ${r.number} (${r.status})<br>${ms.join("<br>")}<br>${wrapArch(r.arch)}`;
}

async function drawFront(key) {
  const d = data[key];
  const [x, y] = view.axes;
  if (!y || x === y) {
    el("front-note").textContent = d.summary.objectives.length > 1 ? "choose two different axes for a front"
      : "one objective: choose a second axis to draw a front";
    Plotly.react("front-plot", [], {title: {text: "Pareto front"}});
    // the "on the front" filter lists the search's own front (`nas pareto`), as the best card counts it
    try { el("front-plot").dataset.front = (await api(frontPath(key, []))).numbers.join(","); view.frontStale = false; }
    catch (e) { el("front-plot").dataset.front = ""; }
    return;
  }
  let front;
  try { front = await api(frontPath(key, [x, y])); view.frontStale = false; }
  catch (e) { el("front-note").textContent = e.message; return; }
  el("front-note").textContent = "";
  const mx = metricOf(x), my = metricOf(y);
  const names = new Set(d.summary.objectives.map(o => o.name).concat([mx, my]));
  const on = new Set(front.numbers);
  const groups = {front: [], dominated: [], pruned: [], infeasible: [], failed: []};
  for (const r of d.rows) {
    if (r.metrics[mx] === null || r.metrics[mx] === undefined || r.metrics[my] === null || r.metrics[my] === undefined) continue;
    // a pruned trial's metrics are a partial training's: drawn apart, never on the front
    const pruned = r.pruned_after !== null && r.pruned_after !== undefined;
    groups[on.has(r.number) ? "front" : pruned && r.status === "ok" ? "pruned" : r.feasible ? "dominated"
      : r.outcome === "infeasible" ? "infeasible" : "failed"].push(r);
  }
  // the legend counts what the "infeasible" filter lists; trials without both values (a cheap rejection) are not drawn
  const infeasible = d.summary.counts.infeasible;
  const shown = groups.infeasible.length === infeasible ? `${infeasible}` : `${groups.infeasible.length} drawn of ${infeasible}`;
  const byNumber = new Map(d.rows.map(r => [r.number, r]));
  groups.front = front.numbers.map(n => byNumber.get(n)).filter(Boolean);
  // hover: the full metrics for the front; trial, axes and architecture for the (many) others
  const trace = (rows, name, marker, extra = {}, full = false) => ({
    type: scatterType(rows.length), mode: "markers", name, x: rows.map(r => r.metrics[mx]), y: rows.map(r => r.metrics[my]),
    customdata: rows.map(r => r.number), text: rows.map(r => full ? hoverText(r, names) : wrapArch(r.arch)),
    hovertemplate: full ? "%{text}<extra></extra>"
      : `trial %{customdata}<br>${esc(mx)} %{x}<br>${esc(my)} %{y}<br>%{text}<extra></extra>`, marker, ...extra});
  const traces = [
    trace(groups.dominated, `dominated (${groups.dominated.length})`, {color: "#9aa5b5", size: 6, opacity: 0.6}),
    trace(groups.pruned, `pruned: partial training (${groups.pruned.length})`, {color: "#9aa5b5", size: 6, symbol: "circle-open"}),
    trace(groups.infeasible, `infeasible (${shown})`, {color: "#d9534f", size: 7, symbol: "x"}),
    trace(groups.front, `Pareto front (${groups.front.length})`, {color: "#1f5fbf", size: 10},
          {mode: "lines+markers", line: {shape: "hv", width: 1.5}}, true),
    trace(groups.failed, `failed with values (${groups.failed.length})`, {color: "#8a2be2", size: 7, symbol: "x-thin-open"}),
  ];
  const dir = n => n.endsWith(":min") || n.endsWith(":max") ? n.slice(n.lastIndexOf(":") + 1)
    : d.summary.objectives.find(o => o.name === n)?.direction;
  const layout = {title: {text: "Pareto front (click a point for its trial)"}, hovermode: "closest",
    xaxis: {title: {text: `${mx} (${dir(x)})`}}, yaxis: {title: {text: `${my} (${dir(y)})`}},
    legend: {orientation: "h", y: -0.2}, margin: {t: 40, r: 10}};
  const gd = el("front-plot");
  await Plotly.react(gd, traces, layout, {responsive: true});
  gd.dataset.front = front.numbers.join(",");
  if (!gd.dataset.bound) {
    gd.on("plotly_click", ev => { const p = ev.points[0]; if (p) location.hash = `#/s/${view.key}/trial/${p.customdata}`; });
    gd.dataset.bound = "1";
  }
}

// A panel's choice of objective: filled once with the search's objectives; a change redraws the panel.
function objectiveSelect(id, key, redraw) {
  const select = el(id);
  if (!select.options.length) {
    select.innerHTML = data[key].summary.objectives.map(o => `<option value="${esc(o.name)}">${esc(o.name)}</option>`).join("");
    select.onchange = () => redraw(view.key);
  }
  return select;
}

function importancePath(key, metric) {
  return `/api/search/${key}/importance?metric=${STATIC ? metric : encodeURIComponent(metric)}`;
}

// Which decisions matter (nas.importance): each decision's share as a bar; the server recomputes it only once the
// trials grew by a tenth, so polling a running search costs nothing in between.
async function drawImportance(key) {
  const select = objectiveSelect("imp-metric", key, drawImportance);
  let imp;
  try { imp = await api(importancePath(key, select.value)); }
  catch (e) { el("imp-note").textContent = e.message; return; }
  if (view.key !== key) return;
  el("imp-note").textContent = imp.error ? imp.error
    : `${imp.trials} trials, held-out R² ${fmt(imp.r2)} on ${imp.scale === "rank" ? "ranks" : "values"}`
      + (imp.r2 < 0.1 ? ": the decisions explain little, the shares describe noise" : "");
  const rows = imp.error ? [] : imp.decisions.slice().reverse();
  Plotly.react("importance-plot", rows.length ? [{type: "bar", orientation: "h", y: rows.map(r => r.decision),
    x: rows.map(r => 100 * r.share), marker: {color: "#2e86c1"},
    hovertemplate: "%{y}: %{x:.1f} %<extra></extra>"}] : [],
    {title: {text: `which decisions matter for ${select.value}`}, xaxis: {title: {text: "share of the importance (%)"}, rangemode: "tozero"},
     yaxis: {automargin: true}, margin: {t: 40, r: 10}, height: 160 + 22 * Math.max(rows.length, 3)}, {responsive: true});
}

// Parallel coordinates (nas.plot.parallel_axes): an axis per decision that alone explains most of the metric, a line
// per feasible trial coloured by the metric; recomputed by the server once the trials grew by a tenth.
async function drawParallel(key) {
  const select = objectiveSelect("par-metric", key, drawParallel);
  let p;
  try { p = await api(`/api/search/${key}/parallel?metric=${STATIC ? select.value : encodeURIComponent(select.value)}`); }
  catch (e) { el("par-note").textContent = e.message; return; }
  if (view.key !== key) return;
  if (p.error || !WEBGL) {  // plotly draws parallel coordinates with WebGL
    el("par-note").textContent = p.error || "parallel coordinates need WebGL, which this browser lacks (nas history DIR --parallel p.png)";
    Plotly.purge("parallel-plot");
    return;
  }
  const keep = p.feasible.map((f, i) => f ? i : -1).filter(i => i >= 0);
  const dims = p.decisions.map((name, j) => ({label: name, values: keep.map(i => p.positions[j][i]), range: [-0.15, 1],
    tickvals: p.ticks[j].map(t => t[0]), ticktext: p.ticks[j].map(t => t[1])}));
  dims.push({label: p.metric, values: keep.map(i => p.values[i])});
  const left = p.feasible.length - keep.length;
  el("par-note").textContent = `${keep.length} feasible trials` + (left ? ` (${left} infeasible left out)` : "")
    + (p.all_decisions > p.decisions.length ? `; the ${p.decisions.length} of ${p.all_decisions} decisions that explain most of ${p.metric} alone` : "");
  Plotly.react("parallel-plot", [{type: "parcoords", dimensions: dims, customdata: keep.map(i => p.numbers[i]),
    line: {color: keep.map(i => p.values[i]), colorscale: "Viridis", reversescale: p.direction === "min", showscale: true,
           colorbar: {title: {text: p.metric}}}}],
    {margin: {t: 50, l: 60, r: 40}, height: 380}, {responsive: true});
}

function drawHistory(d) {
  const h = d.history;
  if (!h) return;
  const hv = h.hypervolume;
  const last = d.summary.used;
  Plotly.react("hv-plot", hv.length ? [{type: "scatter", mode: "lines+markers", x: hv.map(p => p[0]).concat([last]),
    y: hv.map(p => p[1]).concat([hv[hv.length - 1][1]]), line: {shape: "hv"}, name: "hypervolume"}] : [],
    // a volume (or reference point) too large for a float: the server sends null from there on, and says why
    {title: {text: h.hypervolume_note ? `front hypervolume: ${esc(h.hypervolume_note)}`.replace(/(.{40,}?) /g, "$1<br>")
      : !hv.length ? "hypervolume: needs two objectives and a feasible trial"
      : h.hypervolume_error === null || h.hypervolume_error === undefined ? "front hypervolume over evaluations"
      : `front hypervolume over evaluations (Monte Carlo, ± ${fmt(h.hypervolume_error)} s.e., ${fmt(h.hypervolume_samples)} samples)`},
     xaxis: {title: {text: "evaluations"}}, yaxis: {title: {text: "hypervolume"}},
     annotations: h.reference ? [{text: `reference ${h.reference.map(fmt).join(", ")}`, showarrow: false,
       xref: "paper", yref: "paper", x: 1, y: 0, xanchor: "right", yanchor: "bottom", font: {size: 10}}] : [],
     margin: {t: h.hypervolume_note ? 90 : 40, r: 10}}, {responsive: true});
  const objs = d.summary.objectives;
  const traces = [];
  objs.forEach((o, i) => {
    const ax = i ? String(i + 1) : "";
    const pts = d.rows.filter(r => r.feasible && r.metrics[o.name] !== null && r.metrics[o.name] !== undefined);
    traces.push({type: scatterType(pts.length), mode: "markers", name: `${o.name}: feasible trials`, xaxis: "x" + ax, yaxis: "y" + ax,
      x: pts.map(r => r.used), y: pts.map(r => r.metrics[o.name]), marker: {color: "#9aa5b5", size: 4}, showlegend: i === 0,
      customdata: pts.map(r => r.number), hovertemplate: "trial %{customdata}: %{y}<extra></extra>"});
    const best = h.best[o.name] || [];
    traces.push({type: "scatter", mode: "lines", name: `${o.name} best so far`, xaxis: "x" + ax, yaxis: "y" + ax,
      x: best.map(p => p[0]).concat(best.length ? [last] : []), y: best.map(p => p[1]).concat(best.length ? [best[best.length - 1][1]] : []),
      line: {shape: "hv", width: 2}});
  });
  const layout = {title: {text: "best so far per objective"}, grid: {rows: objs.length, columns: 1, pattern: "independent"},
    legend: {orientation: "h", y: -0.2}, margin: {t: 40, r: 10}, height: 240 + 160 * objs.length};
  objs.forEach((o, i) => { layout[`yaxis${i ? i + 1 : ""}`] = {title: {text: `${o.name} (${o.direction})`}}; });
  layout[`xaxis${objs.length > 1 ? objs.length : ""}`] = {title: {text: "evaluations"}};
  const gd = el("best-plot");
  Plotly.react(gd, traces, layout, {responsive: true});
  if (!gd.dataset.bound) {
    gd.on("plotly_click", ev => { const p = ev.points[0]; if (p && p.customdata !== undefined) location.hash = `#/s/${view.key}/trial/${p.customdata}`; });
    gd.dataset.bound = "1";
  }
}

function drawTable() {
  const d = data[view.key];
  if (!d || !d.summary || d.summary.error) return;
  const objs = d.summary.objectives.map(o => o.name);
  const others = d.summary.metrics.filter(m => !objs.includes(m));
  const cols = [["number", "trial"], ["status", "status"], ...objs.map(m => ["m:" + m, m]), ...others.map(m => ["m:" + m, m]),
    ["duration", "seconds"], ["worker", "worker"], ["arch", "architecture / error"]];
  const front = new Set((el("front-plot").dataset.front || "").split(",").filter(Boolean).map(Number));
  const value = (r, c) => c.startsWith("m:") ? r.metrics[c.slice(2)] : c === "arch" ? (r.error || r.arch) : r[c];
  let rows = d.rows.filter(r => {
    if (view.status === "feasible" && !r.feasible) return false;
    if (view.status === "front" && !front.has(r.number)) return false;
    if (["infeasible", "failed"].includes(view.status) && r.outcome !== view.status) return false;  // as counted
    if (!["all", "feasible", "front", "infeasible", "failed"].includes(view.status) && r.status !== view.status) return false;
    const pruned = r.pruned_after !== null && r.pruned_after !== undefined ? " pruned" : "";
    return !view.filter || `${r.arch} ${r.error || ""} ${r.worker} ${r.status}${pruned} ${r.arch_id}`.toLowerCase().includes(view.filter);
  });
  const {col, dir} = view.sort;
  rows = rows.slice().sort((a, b) => {
    const va = value(a, col), vb = value(b, col);
    if (va === vb) return a.number - b.number;
    if (va === null || va === undefined) return 1;
    if (vb === null || vb === undefined) return -1;
    return (va < vb ? -1 : 1) * dir;
  });
  const table = el("trials");
  table.tHead.innerHTML = "<tr>" + cols.map(([c, label]) =>
    `<th data-col="${esc(c)}" class="${c === "arch" ? "arch" : c === "status" ? "status" : ""}">${esc(label)}${c === col ? (dir > 0 ? " ▲" : " ▼") : ""}</th>`).join("") + "</tr>";
  for (const th of table.tHead.rows[0].cells) {
    th.onclick = () => { const c = th.dataset.col; view.sort = {col: c, dir: view.sort.col === c ? -view.sort.dir : 1}; drawTable(); };
  }
  table.tBodies[0].innerHTML = rows.slice(0, view.limit).map(r =>
    `<tr class="${r.status}${front.has(r.number) ? " front" : ""}" data-number="${r.number}">` + cols.map(([c]) => {
      const v = value(r, c);
      if (c === "arch") return `<td class="arch">${esc(v)}</td>`;
      if (c === "status") return `<td class="status">${esc(v)}${r.status === "ok" && r.outcome === "infeasible" ? " (violates)" : ""}`
        + `${r.pruned_after !== null && r.pruned_after !== undefined ? ` (pruned after ${r.pruned_after})` : ""}</td>`;
      if (c === "duration") return `<td>${v.toFixed(2)}</td>`;
      return `<td>${esc(fmt(c.startsWith("m:") ? metricText(r, c.slice(2)) : v))}</td>`;
    }).join("") + "</tr>").join("");
  for (const tr of table.tBodies[0].rows) tr.onclick = () => { location.hash = `#/s/${view.key}/trial/${tr.dataset.number}`; };
  el("table-count").textContent = `${Math.min(rows.length, view.limit)} of ${rows.length} shown (${d.rows.length} in all)`;
  el("more").style.display = rows.length > view.limit ? "" : "none";
}

// ------------------------------------------------------------------ one trial
function tree(value) {
  if (Array.isArray(value)) return `<ul class="tree">${value.map((v, i) => `<li><span class="k">[${i}]</span> ${tree(v)}</li>`).join("")}</ul>`;
  if (value && typeof value === "object") return `<ul class="tree">${Object.entries(value).map(([k, v]) =>
    `<li><span class="k">${esc(k)}</span>${v && typeof v === "object" ? tree(v) : ` = <span class="v">${esc(JSON.stringify(v))}</span>`}</li>`).join("")}</ul>`;
  return `<span class="v">${esc(JSON.stringify(value))}</span>`;
}

async function showTrial(key, number) {
  view = {kind: "trial", key, number};
  el("main").innerHTML = `<p id="page-error" class="error"></p><div id="trial"></div>`;
  try {
    const d = data[key] && data[key].summary ? data[key] : await loadSearch(key);
    const t = await api(`/api/search/${key}/trial/${number}`);
    const objs = new Set(d.summary.objectives.map(o => o.name));
    const {curve, user_attrs, ...extra} = t.extra || {};  // per-epoch reports: drawn; user attributes: a card
    el("trial").innerHTML = `
      <p><a href="#/s/${key}">← ${esc(d.summary.name)}</a>
      ${number > 0 ? `· <a href="#/s/${key}/trial/${number - 1}">trial ${number - 1}</a>` : ""}
      ${number + 1 < d.rows.length ? `· <a href="#/s/${key}/trial/${number + 1}">trial ${number + 1}</a>` : ""}</p>
      <h2 id="trial-title">trial ${t.number} <span class="muted">(${esc(t.status)}${t.status === "ok" ? (t.feasible ? ", feasible" : t.outcome === "infeasible" ? ", violates a constraint" : `, ${esc(t.outcome)}`) : ""})</span></h2>
      <div class="cards">
        <div class="card"><h3>metrics</h3><table id="trial-metrics">${Object.keys(t.metrics).map(k =>
          `<tr><td class="status">${objs.has(k) ? "<b>" + esc(k) + "</b>" : esc(k)}</td><td>${esc(fmt(metricText(t, k)))}</td></tr>`).join("")}</table></div>
        <div class="card"><h3>run</h3><dl><dt>arch id</dt><dd>${esc(t.arch_id)}</dd><dt>worker</dt><dd>${esc(t.worker)}</dd>
          <dt>started</dt><dd>${trialTime(t.started, t.worker)}</dd><dt>finished</dt><dd>${trialTime(t.finished, t.worker)}</dd>
          <dt>seconds</dt><dd>${t.duration.toFixed(3)}</dd><dt>evaluations used</dt><dd>${t.used}</dd>
          ${Object.keys(extra).length ? `<dt>extra</dt><dd>${esc(JSON.stringify(extra))}</dd>` : ""}</dl>
          ${t.error ? `<h3>error</h3><pre class="error">${esc(t.error)}</pre>` : ""}</div>
        ${user_attrs ? `<div class="card"><h3>user attributes</h3><table id="trial-attrs">${Object.entries(user_attrs).map(([k, v]) =>
          `<tr><td class="status">${esc(k)}</td><td>${esc(typeof v === "string" ? v : JSON.stringify(v))}</td></tr>`).join("")}</table></div>` : ""}
      </div>
      ${curve ? `<div class="card wide"><h3>learning curve</h3><div class="plot" id="curve-plot"></div></div>` : ""}
      <div class="card wide"><h3>graph</h3><div class="svg" id="arch-graph">${t.graph_svg || ""}</div>
        <p class="muted">${esc(t.graph_note || "the static report draws the front's trials only")}</p></div>
      <div class="grid2">
        <div class="card"><h3>architecture</h3><div id="arch-tree">${tree(t.arch_tree).replace('class="tree"', 'class="tree root"')}</div>
          <p class="muted">${esc(t.arch)}</p></div>
        <div class="card" id="model-card"><h3>model card</h3>${t.card ? `<p class="muted">${esc(t.card.path)}</p>
          <pre>${esc(t.card.markdown || JSON.stringify(t.card.json, null, 1))}</pre>` : `<p class="muted">not exported
          (<code>nas export DIR --out models/</code> writes one for each front member)</p>`}</div>
      </div>`;
    if (curve) {
      const stopped = extra.pruned_after !== undefined && extra.pruned_after !== null;
      Plotly.react("curve-plot", [{type: "scatter", mode: "lines+markers", x: curve.map(p => p[0] + 1), y: curve.map(p => p[1]),
        name: "reported"}], {title: {text: stopped ? `reports until the pruner stopped it (after ${extra.pruned_after})` : "reports per epoch"},
        xaxis: {title: {text: "report"}, dtick: 1}, yaxis: {title: {text: extra.curve_of || d.summary.objectives[0].name}}, margin: {t: 40, r: 10}, height: 280},
        {responsive: true});
    }
  } catch (e) { showError(e); }
}

// ------------------------------------------------------------------ several searches
function showCompare() {
  view = {kind: "compare"};
  const ok = searches.filter(s => !s.error && s.objectives);
  const names = [...new Set(ok.flatMap(s => s.objectives.map(o => o.name)))];
  // Picked at first: the searches of the largest group of one space and problem (ties: the first listed), as
  // views.default_compare picks them; runs of different spaces or objectives cannot be compared.
  const sizes = new Map();
  for (const s of ok) sizes.set(s.compare_group, (sizes.get(s.compare_group) || 0) + 1);
  let group = ok.length ? ok[0].compare_group : null;
  for (const [g, n] of sizes) if (n > sizes.get(group)) group = g;
  const others = ok.filter(s => s.compare_group !== group);
  el("main").innerHTML = `<p id="page-error" class="error"></p>
    <div class="controls">${ok.map(s => `<label><input type="checkbox" class="pick" value="${s.key}" ${s.compare_group === group ? "checked" : ""}> ${esc(s.name)}</label>`).join("")}</div>
    ${others.length ? `<p class="muted" id="cmp-others">not picked: ${others.map(s => esc(s.name)).join(", ")}, which searched another space or objectives than the others (searches are compared only within one space and problem)</p>` : ""}
    <div class="controls">best so far of <select id="cmp-objective">${names.map(n => `<option>${esc(n)}</option>`).join("")}</select>
      · fronts on <select id="cmp-x">${names.map(n => `<option>${esc(n)}</option>`).join("")}</select> ×
      <select id="cmp-y">${names.map((n, i) => `<option ${i === 1 ? "selected" : ""}>${esc(n)}</option>`).join("")}</select></div>
    <div class="grid2"><div class="plot" id="cmp-best"></div><div class="plot" id="cmp-front"></div></div>
    <h3>by strategy <span class="muted" id="cmp-note"></span></h3>
    <table id="cmp-groups"><thead></thead><tbody></tbody></table>
    <div class="plot" id="cmp-mean"></div>`;
  const draw = () => drawCompare().catch(showError);
  for (const c of document.querySelectorAll(".pick, #cmp-objective, #cmp-x, #cmp-y")) c.onchange = draw;
  poll(async () => {
    const picked = [...document.querySelectorAll(".pick:checked")].map(c => c.value);
    let changed = false;
    for (const k of picked) changed = (await loadSearch(k)).changed || changed;
    if (changed || !view.drawn) { view.drawn = true; await drawCompare(); }
  });
}

async function drawCompare() {
  const picked = [...document.querySelectorAll(".pick:checked")].map(c => c.value);
  const obj = el("cmp-objective").value, x = el("cmp-x").value, y = el("cmp-y").value;
  const best = [], fronts = [];
  for (const k of picked) {
    const d = data[k] || await loadSearch(k);
    const s = d.summary;
    const h = (d.history && d.history.best[obj]) || [];
    if (h.length) best.push({type: "scatter", mode: "lines", line: {shape: "hv"}, name: s.name,
      x: h.map(p => p[0]).concat([s.used]), y: h.map(p => p[1]).concat([h[h.length - 1][1]])});
    const has = n => s.objectives.some(o => o.name === n);
    if (x !== y && has(x) && has(y)) {
      const f = await api(frontPath(k, [x, y]));
      const byNumber = new Map(d.rows.map(r => [r.number, r]));
      const rows = f.numbers.map(n => byNumber.get(n)).filter(Boolean);
      fronts.push({type: "scatter", mode: "lines+markers", line: {shape: "hv"}, name: s.name, customdata: rows.map(r => r.number),
        x: rows.map(r => r.metrics[x]), y: rows.map(r => r.metrics[y]), text: rows.map(r => esc(r.arch)),
        hovertemplate: `${esc(s.name)} trial %{customdata}<br>%{x}, %{y}<br>%{text}<extra></extra>`});
    }
  }
  Plotly.react("cmp-best", best, {title: {text: `best ${obj} so far`}, xaxis: {title: {text: "evaluations"}},
    yaxis: {title: {text: obj}}, legend: {orientation: "h", y: -0.2}, margin: {t: 40, r: 10}}, {responsive: true});
  Plotly.react("cmp-front", fronts, {title: {text: `Pareto fronts: ${x} × ${y}`}, xaxis: {title: {text: x}},
    yaxis: {title: {text: y}}, legend: {orientation: "h", y: -0.2}, margin: {t: 40, r: 10}}, {responsive: true});
  await drawGroups(picked, obj);
}

// The picked searches grouped by strategy (nas.compare): each scored at the fewest evaluations any spent, each
// group's mean with its 95 % interval and its improvement over random search; the mean curves with their bands.
async function drawGroups(picked, obj) {
  let c;
  try { c = await api(`/api/compare?keys=${picked.join(",")}&metric=${STATIC ? obj : encodeURIComponent(obj)}`); }
  catch (e) { c = {error: STATIC ? "the static report holds the comparison of the searches first picked only" : e.message}; }
  const table = el("cmp-groups");
  el("cmp-note").textContent = c.error ? c.error : `${c.score} after ${c.at} evaluations`
    + (c.baseline ? `; improvement over ${c.baseline} (Welch's t-test)` : "; no random-search runs to set the others against");
  table.tHead.innerHTML = c.error ? "" : "<tr><th>group</th><th>runs</th><th>mean [95 % CI]</th><th>improvement [95 % CI]</th><th>p</th></tr>";
  table.tBodies[0].innerHTML = c.error ? "" : c.groups.map(g => `<tr data-group="${esc(g.name)}"><td>${esc(g.name)}</td>
    <td>${g.runs.length}</td><td>${fmt(g.mean)} ${g.low === null || g.low === undefined ? "(one run: no interval)" : `[${fmt(g.low)}, ${fmt(g.high)}]`}</td>
    <td class="${g.ri_low !== null && g.ri_low > 0 ? "better" : ""}">${g.ri_pct === null ? "–" : `${g.ri_pct >= 0 ? "+" : ""}${g.ri_pct.toFixed(2)} %`
      + (g.ri_low !== null && g.name !== c.baseline ? ` [${g.ri_low.toFixed(2)}, ${g.ri_high.toFixed(2)}]` : "")}</td>
    <td>${g.p_value === null || g.name === c.baseline ? "" : fmt(g.p_value)}</td></tr>`).join("");
  const colours = ["31,119,180", "255,127,14", "44,160,44", "214,39,40", "148,103,189", "140,86,75", "227,119,194", "127,127,127"];
  const traces = c.error ? [] : c.groups.flatMap((g, i) => {
    const xs = g.curve.map(p => p[0]), rgb = colours[i % colours.length];
    return [{type: "scatter", mode: "lines", x: xs.concat(xs.slice().reverse()), y: g.curve.map(p => p[3]).concat(g.curve.map(p => p[2]).reverse()),
             fill: "toself", fillcolor: `rgba(${rgb},0.15)`, line: {width: 0}, showlegend: false, hoverinfo: "skip", name: g.name},
            {type: "scatter", mode: "lines", x: xs, y: g.curve.map(p => p[1]), name: `${g.name} (${g.runs.length} runs)`,
             line: {color: `rgb(${rgb})`, dash: g.name === c.baseline ? "dash" : "solid"}}];
  });
  Plotly.react("cmp-mean", traces, {title: {text: c.error ? "" : `mean ${obj} by strategy, 95 % band`},
    xaxis: {title: {text: "evaluations"}}, legend: {orientation: "h", y: -0.2}, margin: {t: 40, r: 10}}, {responsive: true});
}

window.addEventListener("hashchange", () => route().catch(showError));
route().catch(showError);
