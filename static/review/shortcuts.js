// Keyboard shortcuts. The rule: outside the edit box, plain keys act (Space plays, arrows move
// between clips); inside it, Space and the arrows type and move the caret as usual, and
// Alt+arrows / Alt+Space (or Ctrl+Space) act instead. Ctrl combinations act everywhere and
// stop the browser's own meaning (Ctrl+R reload, Ctrl+D bookmark, Ctrl+S save page).

/** Elements where plain Space and arrows belong to the element (typing, sliders, menus). */
function ownsPlainKeys(el) {
  if (!el || el === document.body) return false;
  if (el.isContentEditable) return true;
  const tag = el.tagName;
  if (tag === "TEXTAREA" || tag === "SELECT") return true;
  if (tag === "INPUT") return !["button", "submit", "reset", "checkbox", "radio"].includes(el.type);
  return false;
}

/**
 * Install the handler. `actions` maps names to functions: playPause, save, saveNext, remove,
 * review, accept (the model's suggestion), prev, next, undo, redo, help. `isBlocked()` is true while a modal dialog is open.
 */
export function installShortcuts(actions, { isBlocked }) {
  let swallowSpaceUp = false;
  // A focused button clicks on Space's keyup; when Space played/paused, that click must not happen.
  document.addEventListener("keyup", (e) => {
    if (e.key === " " && swallowSpaceUp) { e.preventDefault(); swallowSpaceUp = false; }
  });
  document.addEventListener("keydown", (e) => {
    if (e.defaultPrevented || e.isComposing) return;
    if (isBlocked()) return;   // an open dialog owns the keyboard (Esc closes it natively)
    const ctrl = e.ctrlKey || e.metaKey;
    const key = e.key.length === 1 ? e.key.toLowerCase() : e.key;
    const inField = ownsPlainKeys(e.target);
    let run = null;

    if (ctrl && !e.altKey) {
      if (key === "s") run = actions.save;
      else if (key === "Enter") run = actions.saveNext;
      else if (key === "d") run = actions.remove;
      else if (key === "r" && !e.shiftKey) run = actions.review;
      else if (key === "g" && !e.shiftKey) run = actions.accept;
      // Undo/redo are the transcript's; in another text field (filter, jump) they stay native.
      else if (key === "z" && !(inField && e.target.id !== "editor")) run = e.shiftKey ? actions.redo : actions.undo;
      else if (key === "y" && !(inField && e.target.id !== "editor")) run = actions.redo;
      else if (key === " ") run = actions.playPause;
      // Repeated keydowns from a held key must not save or delete twice.
      if (run && e.repeat && run !== actions.undo && run !== actions.redo) { e.preventDefault(); return; }
    } else if (e.altKey && !ctrl) {
      if (key === " ") run = actions.playPause;
      else if (key === "ArrowLeft") run = actions.prev;
      else if (key === "ArrowRight") run = actions.next;
    } else if (!inField && !e.altKey && !ctrl) {
      if (key === " " && !e.shiftKey) run = actions.playPause;
      else if (key === "ArrowLeft" && !e.shiftKey) run = actions.prev;
      else if (key === "ArrowRight" && !e.shiftKey) run = actions.next;
      else if (key === "?") run = actions.help;
      if (run && e.repeat && key !== " ") { e.preventDefault(); return; }
    }
    if (!run) return;
    if (key === " ") swallowSpaceUp = true;
    e.preventDefault();
    e.stopPropagation();
    run();
  });
}
