// Models pages: export and promotion run in the request (faster-whisper scores every test clip),
// so a submitted form says what is happening and cannot be sent twice.
for (const form of document.querySelectorAll("form[data-busy]")) {
  form.addEventListener("submit", () => {
    for (const button of document.querySelectorAll("form[data-busy] button")) button.disabled = true;
    const status = document.getElementById("busy-status");
    if (status) {
      status.textContent = form.dataset.busy;
      status.hidden = false;
    }
  });
}
