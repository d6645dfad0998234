// Review statistics for this browser session: clips reviewed, time per clip, pace and an
// estimate of the time left. Kept in sessionStorage so a reload does not reset the session.

const KEY = "s2s-review-session-stats";

export class SessionStats {
  constructor() {
    let saved = null;
    try { saved = JSON.parse(sessionStorage.getItem(KEY) || "null"); } catch { saved = null; }
    this.reviewed = new Set(saved?.reviewed || []);
    this.seconds = Number(saved?.seconds) || 0;   // review time spent on the clips reviewed
  }

  /** A clip became reviewed after `seconds` of work (only the first time counts). */
  recordReviewed(clipId, seconds) {
    if (this.reviewed.has(clipId)) return;
    this.reviewed.add(clipId);
    this.seconds += Math.max(0, seconds);
    this.persist();
  }

  /** More time spent on an already counted clip (a later edit). */
  addTime(clipId, seconds) {
    if (!this.reviewed.has(clipId)) return;
    this.seconds += Math.max(0, seconds);
    this.persist();
  }

  get count() { return this.reviewed.size; }
  get average() { return this.count ? this.seconds / this.count : null; }
  get perHour() { return this.average ? 3600 / this.average : null; }

  remaining(unreviewed, serverAverage) {
    const avg = this.average || serverAverage;
    return avg && unreviewed != null ? unreviewed * avg : null;
  }

  persist() {
    try { sessionStorage.setItem(KEY, JSON.stringify({ reviewed: [...this.reviewed], seconds: this.seconds })); } catch { /* ignore */ }
  }
}

export function formatDuration(s) {
  if (s == null || !Number.isFinite(s)) return "–";
  if (s < 60) return `${s.toFixed(1)} s`;
  const m = Math.round(s / 60);
  if (m < 60) return `${m} min`;
  return `${Math.floor(m / 60)} h ${m % 60} min`;
}
