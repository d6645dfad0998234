// Transcript checks shown next to the edit box. Errors block a save (the API would answer 400
// anyway); warnings only inform: a slow or fast speaker is possible, just worth a second listen.

import { words } from "./diff.js";

export const MAX_CHARS = 2000;
// Conversational English runs at about 2-3 words per second; these bounds are generous.
const MAX_WORDS_PER_SECOND = 6;
const MIN_WORDS_PER_SECOND = 0.3;
const CONTROL = /[\u0000-\u0008\u000B\u000C\u000E-\u001F\u007F]/;

export function counts(text) {
  return { chars: text.length, words: words(text).length };
}

/** -> [{level: "error"|"warning", message}] */
export function validate(text, durationS, maxChars = MAX_CHARS) {
  const out = [];
  const trimmed = text.trim();
  if (!trimmed) {
    out.push({ level: "error", message: "The transcript is empty. Delete the clip instead if it holds no speech." });
    return out;
  }
  if (text.length > maxChars) {
    out.push({ level: "error", message: `Too long: ${text.length} characters (at most ${maxChars}).` });
  }
  if (CONTROL.test(text)) {
    out.push({ level: "error", message: "Contains control characters; remove them." });
  }
  const n = words(text).length;
  if (durationS && durationS > 0) {
    const rate = n / durationS;
    if (rate > MAX_WORDS_PER_SECOND) {
      out.push({ level: "warning", message: `Very long for ${durationS.toFixed(1)} s of audio (${rate.toFixed(1)} words/s).` });
    } else if (durationS >= 2 && rate < MIN_WORDS_PER_SECOND) {
      out.push({ level: "warning", message: `Very short for ${durationS.toFixed(1)} s of audio (${rate.toFixed(2)} words/s).` });
    }
  }
  if (/(\b\w+\b)(\s+\1\b){2,}/i.test(trimmed)) {
    out.push({ level: "warning", message: "A word repeats three times in a row (a common Whisper hallucination)." });
  }
  return out;
}
