// Models pages: Export and Promote are Celery tasks. A form with data-api posts to the REST API
// (202 + status URL, or 409 while another deployment action runs), then this module polls the
// status and shows the stage and clips scored; when the task ends it shows the result and
// re-reads the page's [data-refresh] sections from the server (no reload, no build step).
const POLL_MS = 500;
const LOST_POLLS = 3; // running but no longer holding the slot this many times: its worker died

const STEPS = {
  starting: "Starting…",
  exporting: "Converting to CTranslate2…",
  verifying: "Checking the export with faster-whisper",
  comparing: "Scoring the live model on the same clips",
  switching: "Switching the live model…",
};

const statusBox = document.getElementById("action-status");
const text = document.getElementById("action-text");
const bar = document.getElementById("action-progress");

function show(message, kind = "") {
  text.textContent = message; // textContent: server text is never parsed as HTML
  text.className = kind;
  text.hidden = false;
}

function setBusy(busy) {
  for (const button of document.querySelectorAll("form[data-api] button")) button.disabled = busy;
}

function describe(status) {
  if (status.state === "PENDING") return "Queued: waiting for a worker on the data queue…";
  if (!status.step) return "Started on a worker…";
  const what = `${status.action || "action"} ${status.version || ""}`.trim();
  const step = STEPS[status.step] || "Working…";
  return status.total ? `${what}: ${step}: ${status.done} / ${status.total} clips` : `${what}: ${step}`;
}

async function refreshSections() {
  const response = await fetch(window.location.href, { credentials: "same-origin", headers: { Accept: "text/html" } });
  if (!response.ok) return;
  const fresh = new DOMParser().parseFromString(await response.text(), "text/html");
  for (const section of document.querySelectorAll("[data-refresh]")) {
    const replacement = fresh.getElementById(section.id);
    if (replacement) section.replaceWith(document.importNode(replacement, true));
    else section.remove();
  }
}

async function follow(url) {
  setBusy(true);
  let lost = 0;
  for (;;) {
    let status;
    try {
      const response = await fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } });
      status = await response.json();
    } catch (error) {
      show(`Lost contact with the server (${error}); retrying…`, "error");
      await new Promise((resolve) => setTimeout(resolve, POLL_MS * 3));
      continue;
    }
    const finished = status.state === "SUCCESS" || status.state === "FAILURE";
    if (finished) {
      bar.hidden = true;
      if (status.ok) show(status.message, "ok");
      else show(status.error || "The task failed.", "error");
      await refreshSections();
      setBusy(false);
      return status;
    }
    lost = status.state !== "PENDING" && !status.holds_slot ? lost + 1 : 0;
    if (lost >= LOST_POLLS) {
      bar.hidden = true;
      show("The worker running this action stopped before it finished; press the button again to retry.", "error");
      setBusy(false);
      return status;
    }
    show(describe(status));
    bar.hidden = !status.total;
    if (status.total) {
      bar.max = status.total;
      bar.value = status.done;
    }
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  }
}

async function submit(form) {
  const body = {};
  const quantization = form.querySelector("[name=quantization]");
  if (quantization) body.quantization = quantization.value;
  const force = form.querySelector("[name=force]");
  if (force) body.force = force.checked;
  setBusy(true);
  show("Queueing…");
  const response = await fetch(form.dataset.api, {
    method: "POST",
    credentials: "same-origin",
    headers: {
      "Content-Type": "application/json",
      Accept: "application/json",
      "X-CSRFToken": form.querySelector("[name=csrfmiddlewaretoken]").value,
    },
    body: JSON.stringify(body),
  });
  const answer = await response.json().catch(() => ({}));
  if (response.status !== 202) {
    show(answer.detail || `The server answered ${response.status}.`, "error");
    setBusy(false);
    return;
  }
  statusBox.dataset.statusUrl = answer.status_url;
  await follow(answer.status_url);
}

// Delegated: the refreshed sections bring new forms.
document.addEventListener("submit", (event) => {
  const form = event.target;
  if (!(form instanceof HTMLFormElement) || !form.dataset.api || !statusBox) return;
  event.preventDefault();
  submit(form).catch((error) => {
    show(`Could not start: ${error}`, "error");
    setBusy(false);
  });
});

// A page opened (or reopened) while an export or promotion runs follows it.
if (statusBox && statusBox.dataset.statusUrl) follow(statusBox.dataset.statusUrl);
