// The model's suggested transcript for the shown clip (from a re-transcription, see
// `manage.py transcribeclips`): its words with the unsure ones underlined, and the checks that
// fired as named warnings. Text is always set with textContent (never HTML).

const LOW = 0.5; // same threshold as review.confidence.LOW_WORD_PROBABILITY

/** Fill the suggestion box, or hide it when the clip has no suggestion. */
export function renderSuggestion(box, textEl, metaEl, suggestion) {
  textEl.replaceChildren();
  box.hidden = !suggestion || !suggestion.text;
  if (box.hidden) return;
  const words = suggestion.words || [];
  if (!words.length) {
    textEl.textContent = suggestion.text;
  }
  words.forEach((w, i) => {
    const span = document.createElement("span");
    span.className = "word";
    span.textContent = w.word;
    const p = Number(w.probability);
    if (Number.isFinite(p)) span.title = `probability ${p.toFixed(2)}`;
    if (Number.isFinite(p) && p < LOW) span.classList.add("low-conf");
    if (i) textEl.append(" ");
    textEl.append(span);
  });
  const parts = [`by ${suggestion.model_id}`];
  if (suggestion.avg_logprob != null) parts.push(`confidence ${Math.round(100 * Math.exp(suggestion.avg_logprob))} %`);
  const unsure = words.filter((w) => Number(w.probability) < LOW).length;
  parts.push(unsure ? `${unsure} unsure word${unsure > 1 ? "s" : ""}` : "no unsure words");
  metaEl.textContent = `${parts.join(" · ")} ·`;
}

/** The check catalogue as options of the filter menu's select (counts in brackets). */
export function fillCheckOptions(select, checks, selected) {
  for (const c of checks) {
    const opt = document.createElement("option");
    opt.value = c.code;
    opt.textContent = `${c.title} (${c.clips})`;
    select.append(opt);
  }
  select.value = selected || "";
}
