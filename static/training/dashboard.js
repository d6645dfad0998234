// Training dashboard: start a run, follow it live (websocket first, REST polling when the socket
// is down), pause/resume/stop it, and list past runs. No build step; uPlot is vendored.
import uPlot from "../vendor/uPlot.esm.js";

const $ = (id) => document.getElementById(id);
const FINAL = new Set(["succeeded", "failed", "stopped"]);
const POLL_MS = 2000;
const METRICS = ["train_loss", "val_loss", "wer", "learning_rate", "samples_per_s", "gpu_memory_mb"];

const state = {
  runId: null,
  status: null,
  logOffset: 0,
  points: [],          // metric history: {step, train_loss, val_loss, wer, ...}
  socket: null,
  pollTimer: null,
  reconnectTimer: null,
  charts: {},
  redrawQueued: false,
};

// ---- small helpers ---------------------------------------------------------------------------

function csrfToken() {
  const input = document.querySelector("#config-form input[name=csrfmiddlewaretoken]");
  return input ? input.value : "";
}

async function api(path, options = {}) {
  const response = await fetch(path, {
    credentials: "same-origin",
    headers: { "Content-Type": "application/json", "X-CSRFToken": csrfToken(), Accept: "application/json" },
    ...options,
  });
  let body = null;
  try { body = await response.json(); } catch { body = null; }
  if (!response.ok) {
    const error = new Error(errorText(body) || `${response.status} ${response.statusText}`);
    error.status = response.status;
    throw error;
  }
  return body;
}

function errorText(body) {
  if (!body) return "";
  if (typeof body.detail === "string") return body.detail;
  return Object.entries(body).map(([k, v]) => `${k}: ${Array.isArray(v) ? v.join(" ") : v}`).join("; ");
}

function fmt(value, digits = 3) {
  if (value === null || value === undefined || Number.isNaN(value)) return "—";
  if (Math.abs(value) > 0 && Math.abs(value) < 1e-3) return value.toExponential(2);
  return Number(value).toFixed(digits).replace(/\.?0+$/, "") || "0";
}

function fmtDuration(seconds) {
  if (seconds === null || seconds === undefined) return "—";
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s} s remaining`;
  if (s < 3600) return `${Math.round(s / 60)} min remaining`;
  return `${Math.floor(s / 3600)} h ${Math.round((s % 3600) / 60)} min remaining`;
}

function show(el, visible) { el.hidden = !visible; }

// The pipeline reports the test-set WER of the new model as `new_wer` (`wer` in older results).
function finalWer(metrics) {
  if (!metrics) return null;
  return metrics.new_wer !== undefined ? metrics.new_wer : metrics.wer;
}

function pct(value) { return value === null || value === undefined ? "—" : `${fmt(100 * value, 1)}%`; }

// ---- rendering -------------------------------------------------------------------------------

function renderStatus(status, error) {
  state.status = status;
  const el = $("run-status");
  el.textContent = status || "—";
  el.dataset.status = status || "";
  const active = status && !FINAL.has(status);
  $("pause-button").disabled = !(status === "training" || status === "evaluating");
  $("resume-button").disabled = !(status === "paused" || status === "stopped" || status === "failed");
  // Stop stays enabled while stopping: the server forces a run whose worker is gone.
  $("stop-button").disabled = !active;
  $("start-button").disabled = Boolean(active);
  const err = $("run-error");
  err.textContent = error || "";
  show(err, Boolean(error));
}

function renderProgress(p) {
  if (!p || !p.stage) return;
  $("run-progress").value = p.percent || 0;
  $("run-percent").textContent = `${fmt(p.percent || 0, 1)}%`;
  const epoch = p.epoch !== null && p.epoch !== undefined ? ` · epoch ${fmt(p.epoch, 2)}` : "";
  $("run-step").textContent = p.total ? `step ${p.step}/${p.total}${epoch}` : "";
  $("run-stage").textContent = p.stage ? `(${p.stage})` : "";
  // Evaluation events carry no ETA: keep the last estimate rather than flicker to a dash.
  if (p.eta_s !== null && p.eta_s !== undefined) $("run-eta").textContent = fmtDuration(p.eta_s);
  else if (p.stage === "done" || FINAL.has(state.status)) $("run-eta").textContent = "—";
  for (const name of METRICS) {
    if (p[name] === null || p[name] === undefined) continue;
    let text = fmt(p[name], name === "samples_per_s" ? 1 : 4);
    if (name === "wer") text = `${fmt(100 * p[name], 1)}%`;
    if (name === "gpu_memory_mb") text = `${fmt(p[name], 0)} MB`;
    $(`m-${name}`).textContent = text;
  }
}

function appendLog(lines) {
  const pre = $("run-log");
  const nearBottom = pre.scrollHeight - pre.scrollTop - pre.clientHeight < 40;
  const fragment = document.createDocumentFragment();
  for (const line of lines) {
    if (line.offset <= state.logOffset) continue;   // the socket may repeat what the snapshot had
    state.logOffset = line.offset;
    const span = document.createElement("span");
    span.className = `level-${line.level}`;
    span.textContent = `${line.message}\n`;
    fragment.appendChild(span);
  }
  pre.appendChild(fragment);
  if (nearBottom) pre.scrollTop = pre.scrollHeight;
}

function resetRunView(run) {
  state.runId = run.id;
  state.logOffset = 0;
  state.points = [];
  $("run-log").textContent = "";
  $("run-eta").textContent = "—";
  for (const name of METRICS) $(`m-${name}`).textContent = "—";
  $("run-label").textContent = `run ${run.id}`;
  $("dashboard").dataset.run = run.id;
  show($("progress-panel"), true);
  ensureCharts();
}

function applyRun(run) {
  renderStatus(run.status, run.error);
  renderProgress(run.progress);
  const wer = finalWer(run.metrics);
  if (FINAL.has(run.status) && wer !== null && wer !== undefined) renderProgress({ ...run.progress, wer });
}

// ---- charts ----------------------------------------------------------------------------------

function chartWidth(el) { return Math.max(280, el.clientWidth || 480); }

function ensureCharts() {
  if (state.charts.loss) return;
  const lossEl = $("chart-loss");
  const werEl = $("chart-wer");
  const axes = [{ label: "step" }, {}];
  const scales = { x: { time: false } };
  state.charts.loss = new uPlot({
    width: chartWidth(lossEl), height: 220, axes, scales,
    series: [{ label: "step" }, { label: "train loss", stroke: "#2563eb", spanGaps: true },
             { label: "val loss", stroke: "#dc2626", spanGaps: true, points: { show: true } }],
  }, [[], [], []], lossEl);
  state.charts.wer = new uPlot({
    width: chartWidth(werEl), height: 220, axes, scales,
    series: [{ label: "step" }, { label: "WER", stroke: "#15803d", spanGaps: true, points: { show: true } }],
  }, [[], []], werEl);
  window.addEventListener("resize", () => {
    state.charts.loss.setSize({ width: chartWidth(lossEl), height: 220 });
    state.charts.wer.setSize({ width: chartWidth(werEl), height: 220 });
  });
}

function addPoint(point) {
  if (point) state.points.push(point);
  if (state.redrawQueued) return;
  state.redrawQueued = true;
  requestAnimationFrame(() => { state.redrawQueued = false; redrawCharts(); });
}

function redrawCharts() {
  ensureCharts();
  // Points are keyed by step; several events at one step merge (train loss and validation).
  const byStep = new Map();
  for (const p of state.points) {
    const row = byStep.get(p.step) || { train: null, val: null, wer: null };
    if (p.train_loss !== null && p.train_loss !== undefined) row.train = p.train_loss;
    if (p.val_loss !== null && p.val_loss !== undefined) row.val = p.val_loss;
    if (p.wer !== null && p.wer !== undefined && p.stage !== "evaluating") row.wer = p.wer;
    byStep.set(p.step, row);
  }
  const steps = [...byStep.keys()].sort((a, b) => a - b);
  const rows = steps.map((s) => byStep.get(s));
  state.charts.loss.setData([steps, rows.map((r) => r.train), rows.map((r) => r.val)]);
  state.charts.wer.setData([steps, rows.map((r) => r.wer)]);
}

// ---- live updates: websocket, then polling ---------------------------------------------------

function setConnection(text) { $("connection").textContent = text; }

function follow(runId) {
  stopFollowing();
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  let socket;
  try {
    socket = new WebSocket(`${scheme}://${location.host}/ws/runs/${runId}/`);
  } catch {
    setConnection("· polling");
    startPolling(runId);
    return;
  }
  state.socket = socket;
  socket.addEventListener("open", () => { setConnection("· live"); stopPolling(); });
  socket.addEventListener("message", (e) => onMessage(JSON.parse(e.data)));
  socket.addEventListener("close", () => {
    if (state.socket !== socket) return;
    state.socket = null;
    if (FINAL.has(state.status)) { setConnection(""); return; }
    setConnection("· polling");
    startPolling(runId);
    state.reconnectTimer = setTimeout(() => { if (state.runId === runId) follow(runId); }, 5000);
  });
}

function stopFollowing() {
  if (state.socket) { const s = state.socket; state.socket = null; s.close(); }
  clearTimeout(state.reconnectTimer);
  stopPolling();
}

function onMessage(msg) {
  switch (msg.type) {
    case "snapshot":
      resetRunView(msg.run);
      applyRun(msg.run);
      state.points = msg.history || [];
      addPoint(null);
      appendLog(msg.log || []);
      break;
    case "progress":
      renderProgress(msg.progress);
      addPoint(msg.metric);
      break;
    case "metric": // a late chart point (its progress was already superseded)
      addPoint(msg.metric);
      break;
    case "log":
      appendLog(msg.lines || []);
      break;
    case "status":
      renderStatus(msg.status, msg.error);
      loadRuns();
      if (FINAL.has(msg.status)) { loadDataStatus(); refreshRun(state.runId); }
      break;
    case "error":
      $("run-error").textContent = msg.message;
      show($("run-error"), true);
      break;
    default:
      break;
  }
}

function startPolling(runId) {
  if (state.pollTimer) return;
  const tick = async () => {
    try {
      await refreshRun(runId);
      const logs = await api(`/api/train/logs?run=${runId}&offset=${state.logOffset}`);
      appendLog(logs.lines);
    } catch (e) {
      setConnection(`· offline (${e.message})`);
    }
    if (FINAL.has(state.status)) { stopPolling(); loadRuns(); }
  };
  tick();
  state.pollTimer = setInterval(tick, POLL_MS);
}

function stopPolling() { clearInterval(state.pollTimer); state.pollTimer = null; }

async function refreshRun(runId) {
  const run = await api(`/api/runs/${runId}`);
  if (run.id !== state.runId) resetRunView(run);
  applyRun(run);
  state.points = run.history || [];
  addPoint(null);
}

// ---- actions ---------------------------------------------------------------------------------

function formConfig(form) {
  const config = {};
  for (const el of form.querySelectorAll("[name][data-type]")) {
    if (el.dataset.type === "bool") config[el.name] = el.checked;
    else if (el.dataset.type === "int") config[el.name] = parseInt(el.value, 10);
    else if (el.dataset.type === "float") config[el.name] = parseFloat(el.value);
    else config[el.name] = el.value.trim();
  }
  return config;
}

async function onStart(event) {
  event.preventDefault();
  const form = event.currentTarget;
  const error = $("form-error");
  show(error, false);
  if (!form.reportValidity()) return;
  $("start-button").disabled = true;
  try {
    const run = await api("/api/train", { method: "POST", body: JSON.stringify(formConfig(form)) });
    resetRunView(run);
    applyRun(run);
    follow(run.id);
    loadRuns();
  } catch (e) {
    error.textContent = e.status === 409 ? `Cannot start: ${e.message}` : e.message;
    show(error, true);
    $("start-button").disabled = false;
  }
}

async function onAction(event) {
  const action = event.currentTarget.dataset.action;
  if (!state.runId) return;
  show($("run-error"), false);
  if (state.socket && state.socket.readyState === WebSocket.OPEN) {
    state.socket.send(JSON.stringify({ action }));
    return;
  }
  try {
    const run = await api(`/api/runs/${state.runId}/${action}`, { method: "POST", body: "{}" });
    applyRun(run);
    if (!FINAL.has(run.status)) startPolling(run.id);
  } catch (e) {
    $("run-error").textContent = e.message;
    show($("run-error"), true);
  }
}

// A stopped run resumed over REST needs following again; over the socket, the status event does it.
function onStatusChangeResume() {
  if (state.status === "queued" && !state.socket) follow(state.runId);
}

// ---- history and data status -----------------------------------------------------------------

async function loadRuns() {
  try {
    const page = await api("/api/runs");
    const body = $("runs-table").tBodies[0];
    body.textContent = "";
    if (!page.results.length) {
      const row = body.insertRow();
      const cell = row.insertCell();
      cell.colSpan = 8;
      cell.className = "muted";
      cell.textContent = "No runs yet.";
      return;
    }
    for (const run of page.results) {
      const row = body.insertRow();
      row.dataset.run = run.id;
      const cells = [
        `#${run.id}`, run.status, run.created_by || "—", new Date(run.created_at).toLocaleString(),
        String(run.clip_count), pct(finalWer(run.metrics)), pct(run.metrics ? run.metrics.base_wer : null),
        (run.artifacts && run.artifacts.model_dir) || "—",
      ];
      for (const text of cells) row.insertCell().textContent = text;
    }
  } catch (e) {
    setConnection(`· history unavailable (${e.message})`);
  }
}

async function loadDataStatus() {
  // The review side's statistics API knows the hours; without it the server-rendered numbers stay.
  try {
    const stats = await api("/api/stats");
    if (stats.reviewed !== undefined && $("data-reviewed")) $("data-reviewed").textContent = stats.reviewed;
    if (stats.reviewed_hours !== undefined && $("data-hours")) $("data-hours").textContent = fmt(stats.reviewed_hours, 2);
    if (stats.reviewed_untrained !== undefined && $("data-untrained")) $("data-untrained").textContent = stats.reviewed_untrained;
  } catch {
    /* keep what the page rendered */
  }
}

// ---- start -----------------------------------------------------------------------------------

async function init() {
  $("config-form").addEventListener("submit", onStart);
  for (const id of ["pause-button", "resume-button", "stop-button"]) $(id).addEventListener("click", onAction);
  $("resume-button").addEventListener("click", () => setTimeout(onStatusChangeResume, 500));
  loadRuns();
  loadDataStatus();
  try {
    const current = await api("/api/train/status");
    if (current.id) {
      resetRunView(current);
      applyRun(current);
      state.points = current.history || [];
      addPoint(null);
      follow(current.id);
    }
  } catch (e) {
    setConnection(`· ${e.message}`);
  }
}

init();
