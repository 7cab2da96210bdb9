"use strict";
// fleetgen dashboard: polls /api/health every second and listens to /api/events for batches.
const $ = (id) => document.getElementById(id);
const state = { health: null, healthAt: 0, points: { companies: [], events: [] }, online: true };

const TOKEN_KEY = "fleetgen.api-token";  // kept for this tab only (sessionStorage)

function token() { return sessionStorage.getItem(TOKEN_KEY); }

async function api(path, options = {}) {
  const headers = { ...(options.headers || {}) };
  const sent = token();
  if (sent) headers.Authorization = `Bearer ${sent}`;
  const response = await fetch(path, { ...options, headers });
  let body;
  try {
    body = await response.json();
  } catch (error) {  // cut short (the service went away mid-answer) or not JSON
    throw new Error(`${response.status}: unreadable answer from ${path}`);
  }
  // Ask only when the token this request carried is still the tab's: an answer to a request sent before the
  // token was given (a poll in flight while it was typed) must not ask again.
  if (response.status === 401 && token() === sent) askForToken(sent ? "The token kept for this tab was refused." : "");
  if (!response.ok) throw new Error(body.detail || `${response.status} ${response.statusText}`);
  return body;
}

// With api.token set, the service answers 401 until the token is given: ask once, keep it for the tab.
function askForToken(reason) {
  $("auth-reason").textContent = reason;
  $("auth").hidden = false;
}

function saveToken(event) {
  event.preventDefault();
  const value = $("token-input").value.trim();
  if (!value) return;
  sessionStorage.setItem(TOKEN_KEY, value);
  $("token-input").value = "";
  $("auth").hidden = true;
  listen();
  refreshHealth(); refreshBatches(); refreshLogs(); refreshChart();
}

function setOnline(online) {
  state.online = online;
  $("offline").hidden = online;
  if (!online) {  // nothing shown may pretend the service is still running
    $("status").textContent = "unreachable";
    $("status").className = "badge offline";
    for (const id of ["pause", "resume", "clean"]) $(id).disabled = true;
  }
}

function showMessage(text) {
  const box = $("message");
  box.textContent = text;
  box.hidden = false;
  clearTimeout(showMessage.timer);
  showMessage.timer = setTimeout(() => { box.hidden = true; }, 4000);
}

function age(seconds) {
  if (seconds === null || seconds === undefined) return "never";
  if (seconds < 60) return `${seconds.toFixed(1)} s ago`;
  if (seconds < 3600) return `${(seconds / 60).toFixed(1)} min ago`;
  return `${(seconds / 3600).toFixed(1)} h ago`;
}

function countdown(seconds) {
  if (seconds === null || seconds === undefined) return "–";
  seconds = Math.max(0, seconds);
  if (seconds < 120) return `${seconds.toFixed(1)} s`;
  return `${Math.floor(seconds / 60)} min ${Math.round(seconds % 60)} s`;
}

function renderHealth() {
  const h = state.health;
  if (!h || !state.online) return;
  const elapsed = (Date.now() - state.healthAt) / 1000;
  $("mode").textContent = h.generation_mode;
  $("mode").className = `badge ${h.generation_mode}`;
  $("status").textContent = h.status;
  $("status").className = `badge ${h.status}`;
  $("reasons").hidden = !(h.reasons && h.reasons.length);
  $("reasons").textContent = (h.reasons || []).join(" · ");
  $("uptime").textContent = `up ${Math.round(h.uptime.seconds + elapsed)} s · seed ${h.seed}`;
  $("pause").disabled = h.lifecycle.paused;
  $("resume").disabled = !h.lifecycle.paused;
  $("clean").disabled = !h.lifecycle.paused;
  for (const [stream, gen] of [["companies", h.company_generator], ["events", h.driver_generator]]) {
    $(`${stream}-count`).textContent = gen.total_batches;
    $(`${stream}-records`).textContent = gen.total_records.toLocaleString();
    $(`${stream}-age`).textContent = age(gen.idle_seconds === null ? null : gen.idle_seconds + elapsed);
    $(`${stream}-next`).textContent = h.lifecycle.paused ? "paused" :
      countdown(gen.seconds_to_next_run === null ? null : gen.seconds_to_next_run - elapsed);
    $(`${stream}-interval`).textContent = `${gen.interval_seconds} s`;
    $(`${stream}-delay`).textContent = gen.last_firing_delay_ms === null ? "–" : `${gen.last_firing_delay_ms.toFixed(1)} ms`;
    const late = gen.lateness_ms;
    $(`${stream}-lateness`).textContent = !late || late.p50 === null ? "–" :
      `${late.p50.toFixed(0)} / ${late.p99.toFixed(0)} / ${late.max.toFixed(0)} ms`;
    $(`${stream}-offcadence`).textContent = `${gen.late_windows} · ${gen.catch_up_windows}`;
  }
  const q = h.quality;
  $("defect-percent").textContent = `${q.defect_percent.toFixed(2)} %`;
  $("quality-note").textContent = q.enabled ? `defective records (target ${(q.error_rate * 100).toFixed(1)} %)` : "quality injection off";
  $("defects").innerHTML = Object.entries(q.by_type_percent)
    .map(([type, pct]) => `<tr><td>${type.replaceAll("_", " ")}</td><td>${pct.toFixed(2)} %</td></tr>`).join("");
}

async function refreshHealth() {
  try {
    state.health = await api("/api/health");
    state.healthAt = Date.now();
    setOnline(true);
  } catch (error) {
    setOnline(false);
  }
  renderHealth();
}

async function refreshBatches() {
  try {
    const body = await api("/api/batches?limit=15");
    $("batches").querySelector("tbody").innerHTML = body.batches.map((b) =>
      `<tr><td>${b.stream}</td><td>${b.batch_id}</td><td class="status-${b.status}">${b.status}${b.reason ? ` (${b.reason})` : ""}</td>` +
      `<td>${b.record_count}</td><td>${b.corrupted_count}</td><td>${b.firing_delay_s === null ? "–" : (b.firing_delay_s * 1000).toFixed(1)}</td></tr>`).join("");
  } catch (error) { /* the offline banner says it */ }
}

async function refreshLogs() {
  const level = $("level").value;
  const asked = refreshLogs.asked = (refreshLogs.asked || 0) + 1;
  try {
    const body = await api(`/api/logs?limit=60${level ? `&level=${level}` : ""}`);
    if (asked !== refreshLogs.asked) return;  // a later read (another level filter, maybe) is the one to show
    $("logs").innerHTML = "";
    for (const entry of body.entries) {
      const level = entry.level.toUpperCase();
      const item = document.createElement("li");
      item.className = `lvl-${level}`;
      item.dataset.level = level;
      const context = entry.context && Object.keys(entry.context).length ? " " + JSON.stringify(entry.context) : "";
      item.textContent = `${entry.ts.slice(11, 23)} ${level.padEnd(7)} ${entry.message}${context}`;
      $("logs").appendChild(item);
    }
  } catch (error) { /* offline banner */ }
}

async function refreshChart() {
  try {
    state.points = await api("/api/chart");
    drawChart();
  } catch (error) { /* offline banner */ }
}

function drawChart() {
  const canvas = $("chart");
  const ratio = window.devicePixelRatio || 1;
  const width = canvas.clientWidth || 960, height = canvas.clientHeight || 220;
  canvas.width = width * ratio; canvas.height = height * ratio;
  const ctx = canvas.getContext("2d");
  ctx.scale(ratio, ratio);
  ctx.clearRect(0, 0, width, height);
  const series = { companies: state.points.companies.slice(-60), events: state.points.events.slice(-60) };
  const all = [...series.companies, ...series.events];
  if (!all.length) {
    ctx.fillStyle = "#8b96a5"; ctx.fillText("waiting for the first batch…", 20, 30); return;
  }
  const maxRecords = Math.max(1, ...all.map((p) => p.records));
  const delays = all.map((p) => p.firing_delay_ms).filter((d) => d !== null);
  const maxDelay = Math.max(1, ...delays);
  const pad = 36, n = 60, step = (width - 2 * pad) / n;
  ctx.strokeStyle = "#252d37"; ctx.fillStyle = "#8b96a5"; ctx.font = "11px sans-serif";
  for (let i = 0; i <= 4; i++) {
    const y = pad / 2 + (height - pad) * i / 4;
    ctx.beginPath(); ctx.moveTo(pad, y); ctx.lineTo(width - pad, y); ctx.stroke();
    ctx.fillText(String(Math.round(maxRecords * (4 - i) / 4)), 2, y + 4);
    ctx.fillText((maxDelay * (4 - i) / 4).toFixed(1), width - pad + 4, y + 4);
  }
  const colors = { companies: "#4aa3ff", events: "#b58cff" };
  const y = (v, max) => pad / 2 + (height - pad) * (1 - v / max);
  for (const [stream, points] of Object.entries(series)) {
    ctx.fillStyle = colors[stream];
    points.forEach((p, i) => {
      const x = pad + (n - points.length + i) * step + (stream === "events" ? step / 2 : 0);
      ctx.fillRect(x, y(p.records, maxRecords), Math.max(1, step / 2 - 1), (height - pad / 2) - y(p.records, maxRecords));
    });
    ctx.fillStyle = "#f0b429";
    points.forEach((p, i) => {
      if (p.firing_delay_ms === null) return;
      const x = pad + (n - points.length + i) * step + (stream === "events" ? step / 2 : 0) + step / 4;
      ctx.beginPath(); ctx.arc(x, y(p.firing_delay_ms, maxDelay), 2.5, 0, 2 * Math.PI); ctx.fill();
    });
  }
}

function listen() {
  if (listen.source) listen.source.close();
  // EventSource cannot send headers: with api.protect_reads the token goes in the query string.
  const source = new EventSource(token() ? `/api/events?access_token=${encodeURIComponent(token())}` : "/api/events");
  listen.source = source;
  source.addEventListener("batch", (event) => {
    const point = JSON.parse(event.data);
    (state.points[point.stream] ||= []).push(point);
    drawChart();
    refreshHealth(); refreshBatches();
    clearTimeout(listen.logTimer);
    listen.logTimer = setTimeout(refreshLogs, 700);  // the service writes its log to the store every 0.5 s
  });
  for (const kind of ["paused", "resumed", "cleaned", "auto_reinit", "failure"]) {
    source.addEventListener(kind, () => { refreshHealth(); refreshBatches(); refreshLogs(); refreshChart(); });
  }
  source.onerror = () => setOnline(false);
  source.onopen = () => setOnline(true);
}

// Where the data is and a typed read of it, for the engine chosen (from /api/dataset, once).
async function refreshDataset() {
  try {
    state.dataset = await api("/api/dataset");
    $("data-dir").textContent = state.dataset.data_dir;
    $("data-layout").textContent = state.dataset.layout;
    $("schemas-dir").textContent = state.dataset.schemas_dir;
    renderSnippet();
  } catch (error) { setTimeout(refreshDataset, 3000); }
}

function renderSnippet() {
  if (state.dataset) $("snippet").textContent = state.dataset.snippets[$("engine").value];
}

async function copySnippet() {
  try {
    await navigator.clipboard.writeText($("snippet").textContent);
    showMessage("snippet copied");
  } catch (error) {  // no clipboard permission (plain http on another host): select it instead
    window.getSelection().selectAllChildren($("snippet"));
    showMessage("snippet selected: press Ctrl+C to copy");
  }
}

async function control(action) {
  if (action === "clean" && !window.confirm("Remove every batch fleetgen wrote in the data directory? This cannot be undone.")) {
    return;
  }
  try {
    const body = await api(`/api/${action}`, { method: "POST" });
    showMessage(action === "clean" ? `cleaned: ${body.deleted_count} items removed (${body.removed_batches} batches)`
      : body.message);
  } catch (error) {
    showMessage(`${action} failed: ${error.message}`);
  }
  refreshHealth(); refreshBatches(); refreshLogs(); refreshChart();
}

// The reference pipeline (`fleetgen pipeline` / `run --with-pipeline`), from its status document.
function sum(values) { return values.reduce((a, b) => a + (b || 0), 0); }
function latency(l) { return l && l.p50 !== null ? `${Math.round(l.p50)} / ${Math.round(l.p99)}` : "–"; }

async function refreshPipeline() {
  let view;
  try { view = await api("/api/pipeline"); } catch (error) { return; }
  const s = view.status;
  $("pipeline-state").textContent = view.running ? `running · ${s.engine}` : "not running";
  $("pipeline-state").className = `badge ${view.running ? "running" : ""}`;
  $("pipeline-note").textContent = view.note || (s ? `silver ${s.silver_dir} · gold ${s.gold_dir} · `
    + `${s.pending_batches} batch(es) waiting` : "");
  if (!s) return;
  const layers = s.layers;
  const bronze = Object.values(layers.bronze), silver = Object.values(layers.silver);
  $("pipeline-bronze-rows").textContent = sum(bronze.map((b) => b.records)).toLocaleString();
  $("pipeline-silver-rows").textContent = sum(silver.map((b) => b.rows)).toLocaleString();
  $("pipeline-quarantine-rows").textContent = sum(silver.map((b) => b.quarantined)).toLocaleString();
  const gold = Object.entries(layers.gold).filter(([name]) => name !== "last_batch");
  $("pipeline-gold-rows").textContent = sum(gold.map(([, t]) => t.rows)).toLocaleString();
  $("pipeline-bronze-last").textContent = layers.bronze.events ? layers.bronze.events.last_batch : "–";
  $("pipeline-silver-last").textContent = layers.silver.events ? layers.silver.events.last_batch : "–";
  $("pipeline-gold-last").textContent = layers.gold.last_batch || "–";
  for (const layer of ["bronze", "silver", "gold"]) {
    $(`pipeline-${layer}-latency`).textContent = latency(s.latency_ms[layer]);
  }
  const reasons = $("pipeline-reasons");
  reasons.replaceChildren();
  for (const [stream, counts] of Object.entries(s.quarantine_by_reason)) {
    for (const [reason, count] of Object.entries(counts)) {
      const row = reasons.insertRow();
      row.insertCell().textContent = `${stream} ${reason}`;
      row.insertCell().textContent = count.toLocaleString();
    }
  }
  const check = s.check;
  const badge = $("pipeline-check");
  if (!check) {
    badge.textContent = "not checked yet"; badge.className = "badge";
  } else {
    const words = { equal: "silver = expected", different: "silver ≠ expected", error: "check failed" };
    badge.textContent = words[check.state] || check.state;
    badge.className = `badge ${check.state}`;
    badge.title = check.error || Object.entries(check.tables || {}).map(([name, t]) =>
      `${name}: ${t.missing} missing, ${t.extra} extra, ${t.changed} changed`).join("\n");
  }
}

$("pause").addEventListener("click", () => control("pause"));
$("resume").addEventListener("click", () => control("resume"));
$("clean").addEventListener("click", () => control("clean"));
$("level").addEventListener("change", refreshLogs);
$("engine").addEventListener("change", renderSnippet);
$("copy-snippet").addEventListener("click", copySnippet);
$("auth").addEventListener("submit", saveToken);
refreshHealth(); refreshBatches(); refreshLogs(); refreshChart(); refreshDataset(); refreshPipeline(); listen();
setInterval(refreshPipeline, 1000);
setInterval(refreshHealth, 1000);
setInterval(renderHealth, 250);
setInterval(refreshBatches, 3000);
setInterval(refreshLogs, 3000);
