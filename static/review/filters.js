// The filter lives in the page URL's query (so a filtered view can be bookmarked, shared and
// reloaded) and is passed through to every API call as the same parameters.

export const FILTER_KEYS = ["reviewed", "trained", "date_from", "date_to", "q", "has_problem", "check", "ordering"];
// Understood by the API and kept from the URL, though the menu does not offer them.
const PASS_THROUGH = ["id_min", "id_max"];

export function readFilters(search = location.search) {
  const params = new URLSearchParams(search);
  const out = {};
  for (const k of [...FILTER_KEYS, ...PASS_THROUGH]) {
    const v = params.get(k);
    if (v !== null && v !== "") out[k] = v;
  }
  return out;
}

/** Write filters (and the shown clip id) into the address bar without reloading. */
export function writeUrl(filters, clipId, { push = false } = {}) {
  const params = new URLSearchParams();
  for (const [k, v] of Object.entries(filters)) if (v !== "" && v != null) params.set(k, v);
  if (clipId != null) params.set("id", clipId);
  const url = `${location.pathname}${params.toString() ? `?${params}` : ""}`;
  if (url === location.pathname + location.search) return;
  history[push ? "pushState" : "replaceState"]({ id: clipId }, "", url);
}

export function fillForm(form, filters) {
  for (const k of FILTER_KEYS) {
    if (form.elements[k]) form.elements[k].value = filters[k] ?? "";
  }
}

export function readForm(form, current) {
  const out = {};
  for (const k of PASS_THROUGH) if (current[k]) out[k] = current[k];
  for (const k of FILTER_KEYS) {
    const v = (form.elements[k]?.value ?? "").trim();
    if (v) out[k] = v;
  }
  return out;
}

export function activeCount(filters) {
  return FILTER_KEYS.filter((k) => k !== "ordering" && filters[k]).length;
}
