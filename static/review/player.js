// The audio player: an <audio> element driven by our own controls (play/pause/stop, seek bar,
// time, volume, speed, download), so every control has a label and a shortcut.
//
// A second, hidden element stands by with the next clip already loaded (`preload`): moving on
// swaps the two, so the next clip starts without the media pipeline's start-up delay. The
// element on duty always carries id="audio".

export function formatTime(s) {
  if (!Number.isFinite(s) || s < 0) s = 0;
  const m = Math.floor(s / 60);
  const sec = Math.floor(s % 60);
  return `${m}:${String(sec).padStart(2, "0")}`;
}

export class Player {
  constructor({ audio, standby, play, stop, seek, current, total, volume, speed, download }) {
    Object.assign(this, { audio, standby, playBtn: play, stopBtn: stop, seek, current, total, volume, speed, download });
    this.listeners = new Set();
    this.knownDuration = 0;
    this.seeking = false;
    this.playBtn.addEventListener("click", () => this.toggle());
    this.stopBtn.addEventListener("click", () => this.stop());
    this.seek.addEventListener("input", () => { this.seeking = true; this.current.textContent = formatTime(+this.seek.value); });
    this.seek.addEventListener("change", () => { this.seeking = false; this.seekTo(+this.seek.value); });
    this.volume.addEventListener("input", () => {
      this.audio.volume = this.standby.volume = +this.volume.value;
      remember("volume", this.volume.value);
    });
    this.speed.addEventListener("change", () => { this.audio.playbackRate = +this.speed.value; remember("speed", this.speed.value); });
    for (const el of [this.audio, this.standby]) {
      for (const ev of ["timeupdate", "durationchange", "loadedmetadata", "play", "pause", "ended", "seeked"]) {
        el.addEventListener(ev, () => { if (el === this.audio) this.refresh(); });
      }
    }
    const v = recall("volume"), r = recall("speed");
    if (v !== null) { this.volume.value = v; this.audio.volume = this.standby.volume = +v; }
    if (r !== null) { this.speed.value = r; }
  }

  /** Show a clip: `src` is a Blob URL when prefetched, else the streaming URL (Range requests). */
  load(src, { durationS = 0, downloadUrl = "" } = {}) {
    this.audio.pause();
    this.knownDuration = durationS || 0;
    if (src && this.standby.getAttribute("src") === src) {
      this.swap();
    } else if (src) {
      this.audio.src = src;
    } else {
      this.audio.removeAttribute("src");
    }
    this.audio.playbackRate = +this.speed.value;
    this.audio.defaultPlaybackRate = +this.speed.value;
    if (src && this.audio.readyState === 0) this.audio.load();
    this.download.href = downloadUrl || "#";
    this.download.toggleAttribute("aria-disabled", !downloadUrl);
    this.refresh();
  }

  /** Load `src` (a Blob URL of the next clip) into the standby element, ready to swap in. */
  preload(src) {
    if (!src || this.standby.getAttribute("src") === src || this.audio.getAttribute("src") === src) return;
    this.standby.preload = "auto";
    this.standby.src = src;
    this.standby.load();
  }

  swap() {
    const old = this.audio;
    this.audio = this.standby;
    this.standby = old;
    old.id = "audio-standby";
    this.audio.id = "audio";
    this.audio.currentTime = 0;
    old.removeAttribute("src");
    old.load();  // release the previous clip's decoder
  }

  get duration() {
    const d = this.audio.duration;
    return Number.isFinite(d) && d > 0 ? d : this.knownDuration;
  }

  toggle() {
    if (!this.audio.getAttribute("src")) return;
    if (this.audio.paused) this.audio.play().catch(() => {}); else this.audio.pause();
  }

  stop() {
    this.audio.pause();
    if (this.audio.getAttribute("src")) this.audio.currentTime = 0;
    this.refresh();
  }

  seekTo(seconds) {
    if (!this.audio.getAttribute("src")) return;
    this.audio.currentTime = Math.max(0, Math.min(seconds, this.duration || seconds));
    this.refresh();
  }

  onUpdate(fn) { this.listeners.add(fn); }

  refresh() {
    const d = this.duration, t = this.audio.currentTime || 0;
    this.seek.max = String(d || 0);
    if (!this.seeking) this.seek.value = String(t);
    if (!this.seeking) this.current.textContent = formatTime(t);
    this.total.textContent = formatTime(d);
    const playing = !this.audio.paused && !this.audio.ended;
    this.playBtn.firstElementChild.textContent = playing ? "❚❚" : "▶";
    this.playBtn.setAttribute("aria-label", playing ? "Pause (Space)" : "Play (Space)");
    this.playBtn.setAttribute("aria-pressed", String(playing));
    for (const fn of this.listeners) fn(t, d);
  }
}

function remember(k, v) { try { localStorage.setItem(`s2s-review-${k}`, v); } catch { /* private mode */ } }
function recall(k) { try { return localStorage.getItem(`s2s-review-${k}`); } catch { return null; } }
