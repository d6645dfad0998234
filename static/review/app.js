// The review page: shows one clip at a time, lets the reviewer listen, fix the transcript and
// move on. This module wires the pieces together and owns the page state; each concern (API,
// player, waveform, undo history, diff, validation, shortcuts, prefetch, stats) is its own module.
//
// Invariants: the reviewer's text is never lost (moving to another clip saves first; leaving the
// page with unsaved text asks; a conflict shows both versions), and every write carries the
// version the reviewer saw (If-Match), so two people cannot silently overwrite each other.

import * as api from "./api.js";
import { renderDiff } from "./diff.js";
import { activeCount, fillForm, readFilters, readForm, writeUrl } from "./filters.js";
import { EditHistory } from "./history.js";
import { Player } from "./player.js";
import { Prefetcher } from "./prefetch.js";
import { installShortcuts } from "./shortcuts.js";
import { formatDuration, SessionStats } from "./stats.js";
import { fillCheckOptions, renderSuggestion } from "./suggestion.js";
import { initToasts, toast } from "./toast.js";
import { counts, MAX_CHARS, validate } from "./validate.js";
import { Waveform } from "./waveform.js";

const $ = (id) => document.getElementById(id);
const root = $("review-app");
const maxChars = Number(root.dataset.maxChars) || MAX_CHARS;

const state = {
  filters: readFilters(),
  entry: null,          // the shown clip's JSON (as the server last said)
  history: null,        // EditHistory of the shown clip
  histories: new Map(), // clip id -> EditHistory (in memory; sessionStorage backs it)
  shownAt: performance.now(),
  stats: null,          // last /api/stats answer
  busy: Promise.resolve(),
  loadToken: 0,
};
const prefetch = new Prefetcher();
// Observable from outside (tests, the benchmark): the last prefetched clip, ready to show at once.
prefetch.onReady = (id) => {
  root.dataset.prefetched = String(id);
  if (id === state.entry?.next_id) prefetch.audioReady(id)?.then((url) => { if (id === state.entry?.next_id) player.preload(url); });
};
const session = new SessionStats();
initToasts($("toasts"));

const editor = $("editor");
const player = new Player({
  audio: $("audio"), standby: $("audio-standby"), play: $("btn-play"), stop: $("btn-stop"), seek: $("seek"),
  current: $("time-current"), total: $("time-total"), volume: $("volume"), speed: $("speed"),
  download: $("download"),
});
const waveform = new Waveform($("waveform"), $("waveform-status"), {
  onSeek: (fraction) => player.seekTo(fraction * player.duration),
});
player.onUpdate((t, d) => waveform.setPosition(d ? t / d : 0));

// ---------------------------------------------------------------- one action at a time
/** Run `fn` after whatever action is running: a save and a navigation never interleave. */
function serial(fn) {
  const next = state.busy.then(fn, fn);
  state.busy = next.catch(() => {});
  return next;
}

// ---------------------------------------------------------------- rendering
function isDirty() {
  return !!state.entry && editor.value !== (state.entry.transcript ?? "");
}

function formatTimestamp(entry) {
  const raw = entry.timestamp || entry.timestamp_raw;
  if (!raw) return "unknown";
  const d = new Date(raw);
  if (Number.isNaN(d.getTime())) return String(entry.timestamp_raw ?? raw);
  const p = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

function renderEntryMeta(entry) {
  $("entry-id").textContent = String(entry.id);
  $("entry-timestamp").textContent = formatTimestamp(entry);
  const flags = $("entry-flags");
  flags.replaceChildren();
  const badge = (text, cls) => {
    const b = document.createElement("span");
    b.className = `badge ${cls}`;
    b.textContent = text;
    flags.append(b);
  };
  badge(entry.is_reviewed ? "reviewed" : "not reviewed", entry.is_reviewed ? "ok" : "todo");
  if (entry.is_trained) badge("trained", "info");
  $("original").textContent = entry.original_transcript ?? entry.transcript ?? "";

  const m = entry.metrics;
  $("q-duration").textContent = entry.duration_s != null ? `${Number(entry.duration_s).toFixed(2)} s` : "–";
  const db = (v) => (v == null || !Number.isFinite(v) ? "–" : `${v.toFixed(1)} dBFS`);
  $("q-rms").textContent = db(m?.rms_dbfs);
  $("q-peak").textContent = db(m?.peak_dbfs);
  $("meter-rms").value = Math.max(-60, m?.rms_dbfs ?? -60);
  $("meter-peak").value = Math.max(-60, m?.peak_dbfs ?? -60);
  $("q-snr").textContent = m?.snr_db != null && Number.isFinite(m.snr_db) ? `${m.snr_db.toFixed(1)} dB` : "–";
  const pct = (v, digits) => (v == null || !Number.isFinite(v) ? "–" : `${(100 * v).toFixed(digits)} %`);
  $("q-clipping").textContent = pct(m?.clipping_ratio, 2);
  $("q-silence").textContent = pct(m?.silence_ratio, 0);
  const list = $("warnings");
  list.replaceChildren();
  const warn = (text, code) => {
    const li = document.createElement("li");
    li.textContent = text;
    if (code) li.dataset.code = code;
    list.append(li);
  };
  if (entry.problem) warn(`${entry.audio_problem ? "Audio problem" : "Problem"}: ${entry.problem_detail || entry.problem}`);
  const checked = new Set();
  for (const c of entry.checks || []) { warn(String(c.message), String(c.code)); checked.add(c.message); }
  for (const w of entry.warnings || []) if (!checked.has(w)) warn(String(w));
  renderSuggestion($("suggestion"), $("suggestion-text"), $("suggestion-meta"), entry.suggestion);
  renderEdits(entry.edits || []);
}

/** Who changed the transcript, when, from what to what (the server keeps the latest 20). */
function renderEdits(edits) {
  $("edits-count").textContent = String(edits.length);
  const list = $("edits-list");
  list.replaceChildren();
  for (const e of edits) {
    const li = document.createElement("li");
    const who = document.createElement("span");
    who.className = "muted";
    who.textContent = `${e.username || "someone"}, ${new Date(e.created_at).toLocaleString()}: `;
    const from = document.createElement("del");
    from.textContent = e.old_value ?? "";
    const to = document.createElement("ins");
    to.textContent = e.new_value ?? "";
    li.append(who, from, document.createTextNode(" → "), to);
    list.append(li);
  }
}

/** Counts, validation, diff, undo buttons and the unsaved marker: all follow the text. */
function renderEditorState() {
  const text = editor.value;
  const c = counts(text);
  $("counts").textContent = `Characters: ${c.chars} | Words: ${c.words}`;
  const issues = validate(text, state.entry?.duration_s, maxChars);
  const list = $("validation");
  list.replaceChildren();
  for (const issue of issues) {
    const li = document.createElement("li");
    li.className = issue.level;
    li.textContent = issue.message;
    list.append(li);
  }
  editor.setAttribute("aria-invalid", String(issues.some((i) => i.level === "error")));
  renderDiff($("diff"), state.entry?.original_transcript ?? state.entry?.transcript ?? "", text);
  $("btn-undo").disabled = !state.history?.canUndo;
  $("btn-redo").disabled = !state.history?.canRedo;
  $("dirty").hidden = !isDirty();
}

function renderNav() {
  const e = state.entry;
  $("btn-prev").disabled = !e || e.prev_id == null;
  $("btn-next").disabled = !e || e.next_id == null;
  $("btn-skip").disabled = !e || e.next_unreviewed_id == null;
  for (const id of ["btn-save", "btn-save-next", "btn-review", "btn-delete"]) $(id).disabled = !e;
}

function renderFilters() {
  fillForm($("filter-form"), state.filters);
  const n = activeCount(state.filters);
  $("filter-count").textContent = n ? String(n) : "";
  $("export").href = `/api/export${api.query(state.filters)}`;
}

async function refreshStats() {
  try {
    state.stats = await api.getStats();
  } catch {
    return;
  }
  const { total = 0, reviewed = 0 } = state.stats;
  const pct = total ? Math.round((reviewed / total) * 1000) / 10 : 0;
  $("progress-fill").style.width = `${pct}%`;
  $("progress").setAttribute("aria-valuenow", String(pct));
  $("progress-text").textContent = `${pct}% (${reviewed}/${total} reviewed)`;
  renderSessionStats();
}

function renderSessionStats() {
  $("s-count").textContent = String(session.count);
  $("s-avg").textContent = formatDuration(session.average);
  $("s-rate").textContent = session.perHour ? session.perHour.toFixed(1) : "–";
  const unreviewed = state.stats ? state.stats.unreviewed ?? state.stats.total - state.stats.reviewed : null;
  $("s-remaining").textContent = formatDuration(session.remaining(unreviewed, state.stats?.avg_review_seconds));
}

// ---------------------------------------------------------------- showing a clip
function historyFor(entry) {
  let h = state.histories.get(entry.id);
  if (!h) {
    h = new EditHistory(entry.id, entry.transcript ?? "");
    state.histories.set(entry.id, h);
  } else if (h.current !== (entry.transcript ?? "")) {
    h.push(entry.transcript ?? "", { group: false });
  }
  return h;
}

/** Put `entry` on screen; audio from the prefetched Blob when there is one, else streamed. */
async function display(entry, { autoplay = false, focusEditor = false } = {}) {
  const token = ++state.loadToken;
  state.entry = entry;
  state.history = historyFor(entry);
  state.shownAt = performance.now();
  $("empty-state").hidden = true;
  root.classList.remove("is-empty");
  renderEntryMeta(entry);
  editor.value = entry.transcript ?? "";
  renderEditorState();
  renderNav();
  writeUrl(state.filters, entry.id);
  document.title = `Clip ${entry.id} · Review · S2S Trainer`;

  const downloadUrl = `${api.audioUrl(entry)}?format=wav`;
  if (entry.audio_problem) {
    player.load(null, { durationS: entry.duration_s });
    waveform.setMessage(`No audio: ${entry.problem_detail || entry.problem}`);
  } else {
    const ready = prefetch.audioReady(entry.id);
    const blobUrl = ready ? await Promise.race([ready, new Promise((r) => setTimeout(() => r(null), 150))]) : null;
    if (token !== state.loadToken) return;
    player.load(blobUrl || api.audioUrl(entry), { durationS: entry.duration_s, downloadUrl });
    if (autoplay && $("autoplay").checked) player.audio.play().catch(() => {});
    waveform.setMessage("");
    prefetch.peaks(entry, waveform.wantedWidth).then(
      (p) => { if (token === state.loadToken) waveform.setPeaks(p.peaks); },
      (err) => { if (token === state.loadToken) waveform.setMessage(`Waveform unavailable: ${err.message}`); },
    );
  }
  root.dataset.clipId = String(entry.id);
  if (focusEditor) editor.focus();
  // Warm the clip a reviewer most likely opens next, then the one before.
  prefetch.warm(entry.next_id, state.filters, waveform.wantedWidth);
  if (entry.prev_id != null) prefetch.entry(entry.prev_id, state.filters);
}

async function load(id, opts = {}) {
  id = Number(id);  // ids from the URL are strings; the cache is keyed by number
  let entry;
  try {
    entry = await prefetch.entry(id, state.filters);
  } catch (err) {
    if (err.status === 404) toast(`Clip ${id} does not exist (deleted?).`, { level: "error" });
    else toast(`Could not load clip ${id}: ${err.message}`, { level: "error" });
    return false;
  }
  await display(entry, opts);
  return true;
}

function showEmpty() {
  state.entry = null;
  state.history = null;
  editor.value = "";
  $("empty-state").hidden = false;
  root.classList.add("is-empty");
  $("entry-id").textContent = "–";
  $("entry-timestamp").textContent = "–";
  $("original").textContent = "";
  player.load(null);
  waveform.setMessage("No clip");
  renderEditorState();
  renderNav();
  writeUrl(state.filters, null);
}

/** The first clip to show for the current filter: the first unreviewed one, else the first. */
async function loadFirst() {
  const base = { ...state.filters, page_size: 1 };
  try {
    let page = state.filters.reviewed ? null : await api.listEntries({ ...base, reviewed: 0 });
    if (!page || !page.results.length) page = await api.listEntries(base);
    if (!page.results.length) return showEmpty();
    await load(page.results[0].id);
  } catch (err) {
    toast(`Could not list clips: ${err.message}`, { level: "error", timeout: 0 });
  }
}

// ---------------------------------------------------------------- writing
function reviewSeconds() {
  return Math.round((performance.now() - state.shownAt) / 100) / 10;
}

/**
 * Save the text (and, with `reviewed`, the reviewed flag). Resolves true when the server holds
 * what the reviewer wants (saved, or nothing to save), false when the reviewer must act first.
 */
async function save({ reviewed = false } = {}) {
  const entry = state.entry;
  if (!entry) return false;
  const text = editor.value;
  const fields = {};
  if (text !== (entry.transcript ?? "")) fields.transcript = text;
  if (reviewed && !entry.is_reviewed) fields.is_reviewed = true;
  if (!Object.keys(fields).length) return true;
  if (fields.transcript !== undefined) {
    const errors = validate(text, entry.duration_s, maxChars).filter((i) => i.level === "error");
    if (errors.length) {
      toast(`Not saved: ${errors[0].message}`, { level: "error" });
      editor.focus();
      return false;
    }
  }
  fields.review_seconds = reviewSeconds();
  try {
    const updated = await api.updateEntry(entry.id, entry.version, fields);
    afterWrite(entry, updated, fields);
    toast(fields.is_reviewed ? `Clip ${entry.id} saved and marked reviewed.` : `Clip ${entry.id} saved.`, { timeout: 2500 });
    return true;
  } catch (err) {
    return handleWriteError(err, entry, fields);
  }
}

function afterWrite(entry, updated, fields) {
  // Keep prev/next from the filtered detail: the write's answer does not know the filter.
  const merged = { ...entry, ...updated, prev_id: entry.prev_id, next_id: entry.next_id,
    next_unreviewed_id: entry.next_unreviewed_id };
  if (state.entry && state.entry.id === entry.id) state.entry = merged;
  prefetch.invalidate(entry.id);
  const seconds = fields.review_seconds || 0;
  if (merged.is_reviewed && !entry.is_reviewed) session.recordReviewed(entry.id, seconds);
  else session.addTime(entry.id, seconds);
  state.shownAt = performance.now();
  state.history?.seal();
  if (state.entry === merged) {
    renderEntryMeta(merged);
    renderEditorState();
  }
  renderSessionStats();
  refreshStats();
}

async function handleWriteError(err, entry, fields) {
  if (err.status === 409 && err.body?.current) return resolveConflict(entry, err.body.current, fields);
  if (err.status === 400 && err.body) {
    const msgs = Object.entries(err.body).flatMap(([k, v]) => (Array.isArray(v) ? v : [v]).map((m) => `${k}: ${m}`));
    toast(`Not saved: ${msgs.join("; ")}`, { level: "error", timeout: 8000 });
  } else if (err.status === 503) {
    toast("The database is busy (the live app is writing). Your text is kept; try again in a moment.", { level: "error", timeout: 8000 });
  } else if (err.status === 404) {
    toast(`Clip ${entry.id} no longer exists. Your text: “${editor.value}”`, { level: "error", timeout: 0 });
  } else {
    toast(`Not saved: ${err.message}. Your text is kept.`, { level: "error", timeout: 8000 });
  }
  return false;
}

/**
 * 409: show the reviewer's text beside the server's and let them pick. Keep mine resaves on top
 * of the server's version (true: the action goes on); take theirs loads the server's text into
 * the box, one undo step away from mine (false: the reviewer looks again first).
 */
function resolveConflict(entry, current, fields) {
  const dialog = $("conflict-dialog");
  $("conflict-mine").textContent = editor.value;
  $("conflict-theirs").textContent = current.transcript ?? "";
  const last = (current.edits || [])[0];
  $("conflict-who").textContent = last ? `Last change by ${last.username || "someone"} at ${new Date(last.created_at).toLocaleString()}.` : "";
  return new Promise((resolve) => {
    const done = (value) => {
      $("conflict-keep").removeEventListener("click", keep);
      $("conflict-take").removeEventListener("click", take);
      dialog.removeEventListener("cancel", cancel);
      if (dialog.open) dialog.close();
      resolve(value);
    };
    const keep = async () => {
      const base = { ...entry, ...current, prev_id: entry.prev_id, next_id: entry.next_id,
        next_unreviewed_id: entry.next_unreviewed_id };
      if (state.entry?.id === entry.id) state.entry = base;
      const retry = { ...fields, transcript: editor.value, review_seconds: reviewSeconds() };
      try {
        const updated = await api.updateEntry(entry.id, current.version, retry);
        afterWrite(base, updated, retry);
        toast(`Kept your version of clip ${entry.id}.`, { timeout: 2500 });
        done(true);
      } catch (err) {
        done(false);
        handleWriteError(err, base, retry);
      }
    };
    const take = () => {
      const base = { ...entry, ...current, prev_id: entry.prev_id, next_id: entry.next_id,
        next_unreviewed_id: entry.next_unreviewed_id };
      if (state.entry?.id === entry.id) {
        state.entry = base;
        editor.value = current.transcript ?? "";
        state.history.push(editor.value, { group: false });
        renderEntryMeta(base);
        renderEditorState();
      }
      prefetch.invalidate(entry.id);
      toast(`Took the server's version of clip ${entry.id}. Check it, then save or move on.`, { timeout: 4000 });
      // Stay on the clip (false): the reviewer has not reviewed the server's text yet, so a
      // pending Save & Next must not mark it reviewed and move on.
      done(false);
    };
    const cancel = () => done(false);
    $("conflict-keep").addEventListener("click", keep);
    $("conflict-take").addEventListener("click", take);
    dialog.addEventListener("cancel", cancel);
    dialog.showModal();
  });
}

// ---------------------------------------------------------------- actions
/**
 * Move to the clip `pick(entry)` names, saving unsaved text first; stays put when that save does
 * not succeed. The target is picked when the move runs, not when the key was pressed, so three
 * quick presses of → go three clips on.
 */
function go(pick, { autoplay = true, reviewed = false } = {}) {
  return serial(async () => {
    if (!state.entry) return;
    const id = pick(state.entry);
    if (isDirty() || reviewed) {
      if (!(await save({ reviewed }))) return;
    }
    if (id == null) {
      toast("No more clips in this direction (for the current filter).", { timeout: 3000 });
      return;
    }
    await load(id, { autoplay });
  });
}

const actions = {
  playPause: () => player.toggle(),
  save: () => serial(async () => {
    if (state.entry && !isDirty()) toast("No changes to save.", { timeout: 1500 });
    else await save();
  }),
  saveNext: () => go((e) => e.next_id, { reviewed: true }),
  review: () => serial(() => save({ reviewed: true })),
  prev: () => go((e) => e.prev_id),
  next: () => go((e) => e.next_id),
  skip: () => go((e) => e.next_unreviewed_id),
  undo: () => applyHistory(state.history?.undo()),
  redo: () => applyHistory(state.history?.redo()),
  remove: () => serial(removeClip),
  help: () => { if (!$("help-dialog").open) $("help-dialog").showModal(); },
  accept: acceptSuggestion,
};

/** Put the model's suggestion in the edit box (one undo step); saving stays the reviewer's call. */
function acceptSuggestion() {
  const text = state.entry?.suggestion?.text;
  if (!text) {
    toast("No model suggestion for this clip.", { level: "error", timeout: 2500 });
    return;
  }
  if (editor.value === text) return;
  editor.value = text;
  state.history?.push(text, { group: false });
  renderEditorState();
  editor.focus();
  toast("Suggestion accepted: Ctrl+Enter saves it and moves on.", { timeout: 2500 });
}

function applyHistory(text) {
  if (text == null) return;
  editor.value = text;
  renderEditorState();
}

async function removeClip() {
  const entry = state.entry;
  if (!entry) return;
  let res;
  try {
    res = await api.deleteEntry(entry.id);
  } catch (err) {
    toast(`Not deleted: ${err.message}`, { level: "error" });
    return;
  }
  prefetch.drop(entry.id);
  prefetch.invalidateAll();
  refreshStats();
  const target = entry.next_id ?? entry.prev_id;
  const restore = () => serial(async () => {
    try {
      const restored = await api.restoreTrash(res.trash_id);
      prefetch.invalidateAll();
      toast(`Clip ${restored.id ?? entry.id} restored.`, { timeout: 2500 });
      refreshStats();
      if (state.entry) { if (isDirty() && !(await save())) return; }
      await load(restored.id ?? entry.id);
    } catch (err) {
      toast(`Could not restore clip ${entry.id}: ${err.message}`, { level: "error" });
    }
  });
  toast(`Clip ${entry.id} deleted.`, { action: { label: "Undo", run: restore }, timeout: 10000 });
  if (target != null) {
    await load(target, { autoplay: true });
  } else {
    await loadFirst();
  }
}

// ---------------------------------------------------------------- wiring
editor.addEventListener("input", (e) => {
  state.history?.push(editor.value, { kind: e.inputType || "other", data: e.data });
  renderEditorState();
});

$("btn-undo").addEventListener("click", actions.undo);
$("btn-redo").addEventListener("click", actions.redo);
$("btn-prev").addEventListener("click", actions.prev);
$("btn-next").addEventListener("click", actions.next);
$("btn-save").addEventListener("click", actions.save);
$("btn-save-next").addEventListener("click", actions.saveNext);
$("btn-review").addEventListener("click", actions.review);
$("btn-delete").addEventListener("click", actions.remove);
$("btn-skip").addEventListener("click", actions.skip);
$("btn-help").addEventListener("click", actions.help);
$("btn-accept").addEventListener("click", actions.accept);
$("empty-clear").addEventListener("click", () => applyFilters({}));

$("jump-form").addEventListener("submit", (e) => {
  e.preventDefault();
  const id = parseInt($("jump-id").value, 10);
  if (!Number.isInteger(id) || id < 1) {
    toast("Type a clip ID (a whole number).", { level: "error" });
    return;
  }
  serial(async () => {
    if (isDirty() && !(await save())) return;
    await load(id);
  });
});

function applyFilters(filters) {
  return serial(async () => {
    if (isDirty() && !(await save())) return;
    state.filters = filters;
    renderFilters();
    writeUrl(filters, null, { push: true });
    $("filter-menu").open = false;
    await loadFirst();
  });
}
$("filter-form").addEventListener("submit", (e) => {
  e.preventDefault();
  applyFilters(readForm(e.target, state.filters));
});
$("filter-clear").addEventListener("click", () => applyFilters({}));

window.addEventListener("popstate", () => {
  serial(async () => {
    if (isDirty() && !(await save())) return;
    state.filters = readFilters();
    renderFilters();
    const id = new URLSearchParams(location.search).get("id");
    if (id) await load(id); else await loadFirst();
  });
});

// Leaving the page with unsaved text: the browser asks. (Moving between clips saves instead.)
window.addEventListener("beforeunload", (e) => {
  if (isDirty()) {
    e.preventDefault();
    e.returnValue = "";
  }
});

// Autoplay: a reviewer moving on usually wants to hear the next clip at once.
(() => {
  const box = $("autoplay");
  try { box.checked = localStorage.getItem("s2s-review-autoplay") !== "0"; } catch { /* ignore */ }
  box.addEventListener("change", () => {
    try { localStorage.setItem("s2s-review-autoplay", box.checked ? "1" : "0"); } catch { /* ignore */ }
  });
})();

const blocked = () => $("help-dialog").open || $("conflict-dialog").open;
installShortcuts(actions, { isBlocked: blocked });

// Start: the clip named in the URL, else the first unreviewed one under the filter.
api.getChecks().then((checks) => fillCheckOptions($("filter-check"), checks, state.filters.check)).catch(() => {});
renderFilters();
refreshStats();
{
  const id = new URLSearchParams(location.search).get("id");
  (id ? load(id).then((ok) => ok || loadFirst()) : loadFirst()).finally(() => {
    root.dataset.ready = "1";
  });
}
