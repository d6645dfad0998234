// Waveform on a <canvas>, drawn from the server's min/max peaks (`/api/entries/{id}/peaks`):
// the browser never decodes the audio for it. A click seeks (the seek slider is the keyboard way).

export class Waveform {
  constructor(canvas, status, { onSeek }) {
    this.canvas = canvas;
    this.status = status;
    this.onSeek = onSeek;
    this.peaks = null;
    this.position = 0;   // 0..1 played fraction
    canvas.addEventListener("click", (e) => {
      const rect = canvas.getBoundingClientRect();
      if (rect.width > 0) this.onSeek(Math.max(0, Math.min(1, (e.clientX - rect.left) / rect.width)));
    });
    new ResizeObserver(() => this.draw()).observe(canvas);
  }

  /** How many peak columns to ask for: one per device pixel of the canvas width. */
  get wantedWidth() {
    const w = Math.round((this.canvas.clientWidth || 600) * (window.devicePixelRatio || 1));
    return Math.max(64, Math.min(2000, w));
  }

  setPeaks(peaks) {
    this.peaks = peaks;
    this.status.textContent = "";
    this.draw();
  }

  setMessage(text) {
    this.peaks = null;
    this.status.textContent = text;
    this.draw();
  }

  setPosition(fraction) {
    const f = Number.isFinite(fraction) ? Math.max(0, Math.min(1, fraction)) : 0;
    if (Math.abs(f - this.position) < 1e-4) return;
    this.position = f;
    this.draw();
  }

  draw() {
    const c = this.canvas;
    const dpr = window.devicePixelRatio || 1;
    const w = Math.max(1, Math.round(c.clientWidth * dpr)), h = Math.max(1, Math.round(c.clientHeight * dpr));
    if (c.width !== w) c.width = w;
    if (c.height !== h) c.height = h;
    const ctx = c.getContext("2d");
    const style = getComputedStyle(c);
    ctx.clearRect(0, 0, w, h);
    ctx.fillStyle = style.getPropertyValue("--wave-bg").trim() || "#f1f5f9";
    ctx.fillRect(0, 0, w, h);
    const mid = h / 2;
    ctx.fillStyle = "#cbd5e1";
    ctx.fillRect(0, Math.floor(mid), w, 1);
    if (!this.peaks || !this.peaks.length) return;
    const n = this.peaks.length;
    const played = this.position * w;
    const colPlayed = style.getPropertyValue("--wave-played").trim() || "#1d4ed8";
    const colRest = style.getPropertyValue("--wave-rest").trim() || "#64748b";
    for (let x = 0; x < w; x++) {
      const [lo, hi] = this.peaks[Math.min(n - 1, Math.floor((x / w) * n))];
      const top = mid - Math.max(0, hi) * mid * 0.95;
      const bottom = mid - Math.min(0, lo) * mid * 0.95;
      ctx.fillStyle = x < played ? colPlayed : colRest;
      ctx.fillRect(x, top, 1, Math.max(1, bottom - top));
    }
    ctx.fillStyle = "#dc2626";
    ctx.fillRect(Math.min(w - 2, Math.floor(played)), 0, 2 * dpr, h);
  }
}
