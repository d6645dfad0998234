// Word diff of the edited transcript against Whisper's original, rendered as <ins>/<del> spans.
// Text goes in through textContent only: transcripts are untrusted data.

/** Split into words, keeping punctuation attached (what a reviewer sees as one word). */
export function words(text) {
  return (text || "").trim().split(/\s+/).filter(Boolean);
}

/** Longest-common-subsequence diff: [{op: "eq"|"del"|"ins", text}] in reading order. */
export function diffWords(before, after) {
  const a = words(before), b = words(after);
  // Transcripts are short (a sentence or two); guard against pathological sizes anyway.
  if (a.length * b.length > 250000) {
    return [...a.map((t) => ({ op: "del", text: t })), ...b.map((t) => ({ op: "ins", text: t }))];
  }
  const n = a.length, m = b.length;
  const table = Array.from({ length: n + 1 }, () => new Uint16Array(m + 1));
  for (let i = n - 1; i >= 0; i--) {
    for (let j = m - 1; j >= 0; j--) {
      table[i][j] = a[i] === b[j] ? table[i + 1][j + 1] + 1 : Math.max(table[i + 1][j], table[i][j + 1]);
    }
  }
  const out = [];
  let i = 0, j = 0;
  while (i < n && j < m) {
    if (a[i] === b[j]) { out.push({ op: "eq", text: a[i] }); i++; j++; }
    else if (table[i + 1][j] >= table[i][j + 1]) { out.push({ op: "del", text: a[i] }); i++; }
    else { out.push({ op: "ins", text: b[j] }); j++; }
  }
  while (i < n) out.push({ op: "del", text: a[i++] });
  while (j < m) out.push({ op: "ins", text: b[j++] });
  return out;
}

/** Replace `container`'s children with the diff; returns how many words changed. */
export function renderDiff(container, before, after) {
  const parts = diffWords(before, after);
  container.replaceChildren();
  let changed = 0;
  parts.forEach((p, k) => {
    if (k) container.append(document.createTextNode(" "));
    if (p.op === "eq") {
      container.append(document.createTextNode(p.text));
    } else {
      const el = document.createElement(p.op === "ins" ? "ins" : "del");
      el.textContent = p.text;
      el.setAttribute("aria-label", `${p.op === "ins" ? "added" : "removed"}: ${p.text}`);
      container.append(el);
      changed++;
    }
  });
  if (!parts.length) container.textContent = "(empty)";
  if (!changed && parts.length) container.classList.add("unchanged");
  else container.classList.remove("unchanged");
  return changed;
}
