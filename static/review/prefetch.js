// Prefetch: the next clip's JSON, waveform peaks and audio (as an in-memory Blob URL) are
// fetched while the reviewer works on the current one, so Save & Next shows and plays the
// next clip without a round trip. Entries are few (current, next, previous); old audio is freed.

import { fetchAudioBlobUrl, getEntry, getPeaks } from "./api.js";

const MAX_AUDIO = 4;          // Blob URLs kept alive
const FRESH_MS = 60_000;      // entry JSON older than this is fetched again

export class Prefetcher {
  constructor() {
    this.items = new Map();   // id -> {entry, entryAt, peaks: Map(width -> promise), audio: promise}
    this.order = [];          // ids by last use, for freeing audio
    this.onReady = null;      // (id) => void, once a clip's JSON, peaks and audio are all here
  }

  item(id) {
    let it = this.items.get(id);
    if (!it) { it = { entry: null, entryAt: 0, peaks: new Map(), audio: null }; this.items.set(id, it); }
    this.order = this.order.filter((x) => x !== id);
    this.order.push(id);
    this.evict();
    return it;
  }

  /** Start loading everything for clip `id`; errors are kept so the page can show them. */
  warm(id, filters, width) {
    if (id == null) return;
    this.entry(id, filters);
    const it = this.item(id);
    it.entry.then((e) => {
      if (!e || e.audio_problem) return null;
      if (!it.audio) it.audio = fetchAudioBlobUrl(e).catch(() => null);
      return Promise.all([this.peaks(e, width), it.audio]);
    }).then((ready) => { if (ready && this.onReady) this.onReady(id); }).catch(() => {});
  }

  entry(id, filters) {
    const it = this.item(id);
    const key = JSON.stringify(filters || {});
    if (!it.entry || it.filterKey !== key || Date.now() - it.entryAt > FRESH_MS) {
      it.entry = getEntry(id, filters);
      it.entryAt = Date.now();
      it.filterKey = key;
      it.entry.catch(() => { if (this.items.get(id) === it) it.entry = null; });
    }
    return it.entry;
  }

  peaks(entry, width) {
    const it = this.item(entry.id);
    if (!it.peaks.has(width)) {
      const p = getPeaks(entry, width);
      p.catch(() => it.peaks.delete(width));
      it.peaks.set(width, p);
    }
    return it.peaks.get(width);
  }

  /** The Blob URL when the audio is already here (or nearly); null means stream it instead. */
  audioReady(id) {
    const it = this.items.get(id);
    return it && it.audio ? it.audio : null;
  }

  /** The row changed on the server (our own write): forget its JSON, keep audio and peaks. */
  invalidate(id) {
    const it = this.items.get(id);
    if (it) it.entry = null;
  }

  /** Clips came or went (delete, restore): every cached prev/next may be wrong; keep audio. */
  invalidateAll() {
    for (const it of this.items.values()) it.entry = null;
  }

  /** The clip is gone (deleted): forget everything. */
  drop(id) {
    const it = this.items.get(id);
    if (!it) return;
    if (it.audio) it.audio.then((u) => u && URL.revokeObjectURL(u));
    this.items.delete(id);
    this.order = this.order.filter((x) => x !== id);
  }

  evict() {
    const withAudio = this.order.filter((id) => this.items.get(id)?.audio);
    while (withAudio.length > MAX_AUDIO) {
      const old = withAudio.shift();
      const it = this.items.get(old);
      const p = it.audio;
      it.audio = null;
      // Revoke later: the element may still be playing the clip that just left the cache.
      p.then((u) => u && setTimeout(() => URL.revokeObjectURL(u), 60_000));
    }
  }
}
