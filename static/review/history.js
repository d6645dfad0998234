// Multi-level undo/redo of the transcript, one history per clip, kept in sessionStorage so it
// survives a save, a move to another clip and back, and a reload of the tab.
//
// The browser's own textarea undo cannot be used: it is lost whenever the page sets the value
// (loading a clip, taking the server's version), and it knows nothing of clips.

const KEY = (id) => `s2s-review-history:${id}`;
const LIMIT = 200;          // states kept per clip
const GROUP_MS = 1000;      // typed characters closer than this form one undo step

export class EditHistory {
  constructor(clipId, initialText) {
    this.clipId = clipId;
    const saved = load(clipId);
    if (saved && saved.states.length && saved.states.includes(initialText)) {
      Object.assign(this, saved);
      // The server text may differ from where the history stopped (saved elsewhere): follow it.
      if (this.states[this.index] !== initialText) this.push(initialText, { group: false });
    } else {
      this.states = [initialText];
      this.index = 0;
    }
    this.lastPush = 0;
    this.lastKind = "";
  }

  get current() { return this.states[this.index]; }
  get canUndo() { return this.index > 0; }
  get canRedo() { return this.index < this.states.length - 1; }

  /**
   * Record a new text. Single typed characters in quick succession join the previous step (so
   * one Ctrl+Z removes a word, not a letter); a space, a paste or a pause starts a new step.
   */
  push(text, { kind = "other", data = null, group = true } = {}) {
    if (text === this.current) return;
    const now = Date.now();
    const typed = kind === "insertText" && typeof data === "string" && data.length === 1 && !/\s/.test(data);
    const deleting = kind.startsWith("delete");
    const joins = group && this.index > 0 && !this.canRedo && now - this.lastPush < GROUP_MS &&
      ((typed && this.lastKind === "typed") || (deleting && this.lastKind === kind));
    this.states.splice(this.index + 1);
    if (joins) {
      this.states[this.index] = text;
    } else {
      this.states.push(text);
      this.index = this.states.length - 1;
    }
    if (this.states.length > LIMIT) {
      this.states.splice(0, this.states.length - LIMIT);
      this.index = this.states.length - 1;
    }
    this.lastPush = now;
    this.lastKind = typed ? "typed" : kind;
    this.persist();
  }

  undo() {
    if (!this.canUndo) return null;
    this.index -= 1;
    this.lastKind = "";
    this.persist();
    return this.current;
  }

  redo() {
    if (!this.canRedo) return null;
    this.index += 1;
    this.lastKind = "";
    this.persist();
    return this.current;
  }

  /** Break the typing group so the next keystroke is its own step (after a save, say). */
  seal() { this.lastKind = ""; }

  persist() {
    try {
      sessionStorage.setItem(KEY(this.clipId), JSON.stringify({ states: this.states, index: this.index }));
    } catch {
      // Storage full or disabled: the history still works in memory for this page.
    }
  }
}

function load(clipId) {
  try {
    const raw = sessionStorage.getItem(KEY(clipId));
    if (!raw) return null;
    const data = JSON.parse(raw);
    if (!Array.isArray(data.states) || !Number.isInteger(data.index)) return null;
    if (data.index < 0 || data.index >= data.states.length) return null;
    return { states: data.states.map(String), index: data.index };
  } catch {
    return null;
  }
}
