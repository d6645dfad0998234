// Toasts in an aria-live region: short confirmations and errors, optionally with one action
// (the Undo after a delete). Text only, via textContent.

let region = null;

export function initToasts(el) { region = el; }

/** Show a message; `action` = {label, run} adds a button. Returns a function that closes it. */
export function toast(message, { level = "info", action = null, timeout = 5000 } = {}) {
  if (!region) return () => {};
  const box = document.createElement("div");
  box.className = `toast toast-${level}`;
  if (level === "error") box.setAttribute("role", "alert");
  const text = document.createElement("span");
  text.textContent = message;
  box.append(text);
  let timer = null;
  const close = () => { clearTimeout(timer); box.remove(); };
  if (action) {
    const btn = document.createElement("button");
    btn.type = "button";
    btn.textContent = action.label;
    btn.className = "toast-action";
    btn.addEventListener("click", () => { close(); action.run(); });
    box.append(btn);
  }
  const x = document.createElement("button");
  x.type = "button";
  x.className = "toast-close";
  x.setAttribute("aria-label", "Dismiss");
  x.textContent = "×";
  x.addEventListener("click", close);
  box.append(x);
  region.append(box);
  if (timeout) timer = setTimeout(close, timeout);
  return close;
}
