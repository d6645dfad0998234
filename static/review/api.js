// REST client for the review page: one place that knows URLs, CSRF, ETags and error shapes.
// Every other module talks to the server through these functions, so a contract change lands here.

const root = document.getElementById("review-app");
const CSRF = root ? root.dataset.csrf : "";

/** An HTTP answer that was not 2xx; `body` is the parsed JSON error when there is one. */
export class ApiError extends Error {
  constructor(status, body, message) {
    super(message || (body && (body.detail || body.error)) || `HTTP ${status}`);
    this.status = status;
    this.body = body;
  }
}

async function request(method, url, { body, headers = {}, signal } = {}) {
  const init = { method, headers: { Accept: "application/json", ...headers }, credentials: "same-origin", signal };
  if (method !== "GET" && method !== "HEAD") init.headers["X-CSRFToken"] = CSRF;
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const res = await fetch(url, init);
  let data = null;
  const type = res.headers.get("Content-Type") || "";
  if (type.includes("json")) data = await res.json().catch(() => null);
  if (!res.ok) {
    if (res.status === 401 || res.status === 403) {
      if (!data || !data.detail || /credentials|authenticat/i.test(data.detail)) {
        // Session expired: the login page brings the reviewer back here.
        window.location.assign(`/accounts/login/?next=${encodeURIComponent(location.pathname + location.search)}`);
      }
    }
    throw new ApiError(res.status, data);
  }
  return data;
}

/** Filters -> query string, dropping empty values. */
export function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params || {})) {
    if (v !== undefined && v !== null && v !== "") q.set(k, v);
  }
  const s = q.toString();
  return s ? `?${s}` : "";
}

export const entryUrl = (id) => `/api/entries/${encodeURIComponent(id)}`;

export function getEntry(id, filters, signal) {
  return request("GET", entryUrl(id) + query(filters), { signal });
}

export function listEntries(filters) {
  return request("GET", "/api/entries" + query(filters));
}

/** PATCH with optimistic concurrency: a changed row answers 409 with the server's version. */
export function updateEntry(id, version, fields) {
  return request("PATCH", entryUrl(id), { body: { ...fields, version }, headers: { "If-Match": `"${version}"` } });
}

export function markReviewed(id, version) {
  const headers = version ? { "If-Match": `"${version}"` } : {};
  return request("POST", `${entryUrl(id)}/review`, { headers });
}

export function deleteEntry(id) {
  return request("DELETE", entryUrl(id));
}

export function restoreTrash(trashId) {
  return request("POST", `/api/trash/${encodeURIComponent(trashId)}/restore`);
}

export function getChecks() {
  return request("GET", "/api/quality/checks");
}

export function getStats() {
  return request("GET", "/api/stats");
}

export function getPeaks(entry, width, signal) {
  const base = entry.peaks_url || `${entryUrl(entry.id)}/peaks`;
  const sep = base.includes("?") ? "&" : "?";
  return request("GET", `${base}${sep}width=${width}`, { signal });
}

export function audioUrl(entry) {
  return entry.audio_url || `${entryUrl(entry.id)}/audio`;
}

/** Fetch the whole clip into memory and hand back an object URL the <audio> plays at once. */
export async function fetchAudioBlobUrl(entry, signal) {
  const res = await fetch(audioUrl(entry), { credentials: "same-origin", signal });
  if (!res.ok) throw new ApiError(res.status, null, `audio: HTTP ${res.status}`);
  return URL.createObjectURL(await res.blob());
}
