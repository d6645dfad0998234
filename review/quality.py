"""Django-free quality checks: which clips need a human, and why, each with a stable code.

Two families. Audio checks read the numbers `review.audio.measure` computes (duration, RMS and
peak dBFS, clipping, silence, SNR) against named thresholds. Transcript checks read the text
alone or against the duration: empty text, a speaking rate no person has, Whisper's well-known
hallucinations on silence and noise ("Thank you.", "Thanks for watching!"), a phrase repeated in a
loop, text that is only a non-speech tag ("[Music]"), characters outside the expected script.

A code never changes once published (lists filter on it: `?check=clipping`); its message may.
"""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from review.audio import AudioMetrics


@dataclass(frozen=True)
class Check:
    code: str
    kind: str  # "audio" or "transcript"
    title: str


@dataclass(frozen=True)
class Finding:
    code: str
    message: str

    def as_dict(self) -> dict:
        return {"code": self.code, "message": self.message}


CHECKS = {c.code: c for c in (
    Check("too_short", "audio", "Audio shorter than a word"),
    Check("too_long_audio", "audio", "Audio longer than Whisper's 30 s window"),
    Check("clipping", "audio", "Clipping"),
    Check("silence", "audio", "Silent or nearly silent"),
    Check("mostly_silence", "audio", "Mostly silence"),
    Check("too_quiet", "audio", "Recorded too quietly"),
    Check("too_loud", "audio", "Recorded too loudly"),
    Check("low_snr", "audio", "Noisy (low SNR)"),
    Check("empty_text", "transcript", "Empty transcript"),
    Check("too_few_words", "transcript", "Too few words for the duration"),
    Check("too_many_words", "transcript", "Too many words for the duration"),
    Check("hallucination", "transcript", "Known Whisper hallucination"),
    Check("repetition", "transcript", "Repeated phrase loop"),
    Check("non_speech", "transcript", "Only non-speech tags"),
    Check("foreign_script", "transcript", "Characters outside the expected script"),
)}


@dataclass(frozen=True)
class AudioThresholds:
    """Where each audio warning starts; defaults suit 16 kHz speech captured by a headset or laptop."""

    min_duration_s: float = 0.3
    max_duration_s: float = 30.0
    max_clipping_ratio: float = 0.001   # 0.1 % of samples at full scale is audible distortion
    silence_rms_dbfs: float = -55.0     # below this the whole clip is (near) silence
    silence_ratio: float = 0.95         # share of frames under -50 dBFS for "silent"
    mostly_silence_ratio: float = 0.7   # a short word in a long pause
    quiet_peak_dbfs: float = -30.0      # speech that never gets louder than this was recorded too quietly
    loud_rms_dbfs: float = -6.0         # a clip this loud on average is overdriven even without clipping
    min_snr_db: float = 15.0


@dataclass(frozen=True)
class TextThresholds:
    """Speaking rates people reach: conversational English is 2-3 words/s, fast speech 4-5."""

    max_words_per_s: float = 6.0
    max_chars_per_s: float = 30.0       # catches one endless "word" the word count misses
    min_words_per_s: float = 0.4        # only checked on clips long enough to hold several words
    rate_floor_after_s: float = 3.0
    min_repeats: int = 3                # an n-gram said this many times in a row is a loop
    script: str = "latin"


def audio_findings(m: AudioMetrics, t: AudioThresholds = AudioThresholds()) -> list[Finding]:
    """Named audio warnings for one clip's metrics, most serious first."""
    out = []
    if m.duration_s < t.min_duration_s:
        out.append(Finding("too_short", f"audio is only {m.duration_s:.2f} s long"))
    if m.duration_s > t.max_duration_s:
        out.append(Finding("too_long_audio", f"audio is {m.duration_s:.1f} s long; Whisper hears 30 s at a time"))
    if m.clipping_ratio > t.max_clipping_ratio:
        out.append(Finding("clipping", f"clipping: {m.clipping_ratio:.1%} of samples at full scale"))
    silent = m.rms_dbfs < t.silence_rms_dbfs or m.silence_ratio >= t.silence_ratio
    if silent:
        out.append(Finding("silence", f"silence: almost no speech energy (RMS {m.rms_dbfs:.0f} dBFS)"))
        return out  # loudness and SNR of silence say nothing more
    if m.silence_ratio >= t.mostly_silence_ratio:
        out.append(Finding("mostly_silence", f"mostly silence: {m.silence_ratio:.0%} of the clip is quiet"))
    if m.peak_dbfs < t.quiet_peak_dbfs:
        out.append(Finding("too_quiet", f"recorded too quietly: peak {m.peak_dbfs:.0f} dBFS"))
    if m.rms_dbfs > t.loud_rms_dbfs:
        out.append(Finding("too_loud", f"recorded too loudly: RMS {m.rms_dbfs:.0f} dBFS"))
    if m.snr_db < t.min_snr_db:
        out.append(Finding("low_snr", f"low SNR: about {m.snr_db:.0f} dB of speech over the noise"))
    return out


# Whisper's most frequent inventions on silence, music and noise (from its YouTube subtitle
# training data), compared after lowercasing and stripping punctuation. Short words people do say
# to an assistant ("okay", "bye") are left out: flagging them would bury the real inventions.
HALLUCINATIONS = {
    "thank you", "thank you very much", "thanks for watching", "thank you for watching",
    "thank you so much for watching", "thanks for watching and see you next time",
    "please subscribe", "subscribe to my channel", "like and subscribe",
    "please like and subscribe", "dont forget to like and subscribe",
    "see you next time", "see you in the next video", "you", "so", "ill see you next time",
    "thank you for listening", "the end",
}
HALLUCINATION_PATTERNS = [
    re.compile(p) for p in (
        r"^(subtitles|subtitle|captions|captioning|transcription|transcript|translated|translation)\s+by\b",
        r"^(subtitles|captions) (made|created|provided) by\b",
        r"\bamara\.org\b", r"\bsubtitles by the amara\b", r"^www\.", r"\.com$",
        r"^copyright\b", r"^©",
    )
]
NON_SPEECH_TAG = re.compile(r"\[[^\]]*\]|\([^)]*\)|\*[^*]*\*|♪+|♫+|#+")
SCRIPT_RANGES = {
    # Latin letters with accents (Basic Latin, Latin-1, Extended-A/B, IPA, Latin Extended Additional).
    "latin": ((0x0041, 0x024F), (0x1E00, 0x1EFF)),
}


def _plain(text: str) -> str:
    """Lowercase words without punctuation (apostrophes dropped: "don't" -> "dont")."""
    text = unicodedata.normalize("NFKC", text).lower().replace("'", "").replace("’", "")
    return " ".join(re.sub(r"[^\w\s.©]", " ", text).replace(".", " ").split())


def is_hallucination(text: str) -> bool:
    plain = _plain(text)
    if plain in HALLUCINATIONS:
        return True
    raw = unicodedata.normalize("NFKC", text).strip().lower()
    return any(p.search(raw) for p in HALLUCINATION_PATTERNS)


def repeated_ngram(words: list[str], min_repeats: int = 3, max_n: int = 6) -> tuple[str, int] | None:
    """The phrase said `min_repeats` or more times in a row (Whisper's decoding loop), if any."""
    for n in range(1, max_n + 1):
        for start in range(0, len(words) - n * min_repeats + 1):
            gram = words[start:start + n]
            count = 1
            while words[start + count * n:start + (count + 1) * n] == gram:
                count += 1
            if count >= min_repeats and (n > 1 or count >= min_repeats + 1):
                return " ".join(gram), count
    return None


def foreign_characters(text: str, script: str = "latin") -> list[str]:
    """Letters outside the script (digits, punctuation and symbols are fine)."""
    ranges = SCRIPT_RANGES.get(script)
    if not ranges:
        return []
    out = []
    for ch in text:
        if not ch.isalpha():
            continue
        cp = ord(ch)
        if not any(lo <= cp <= hi for lo, hi in ranges) and ch not in out:
            out.append(ch)
    return out


def transcript_findings(text: str | None, duration_s: float | None,
                        t: TextThresholds = TextThresholds()) -> list[Finding]:
    """Named transcript warnings; the duration is optional (rate checks need it)."""
    if text is None or not text.strip():
        return [Finding("empty_text", "transcript is empty")]
    out = []
    words = _plain(text).split()
    if is_hallucination(text):
        out.append(Finding("hallucination", f"{text.strip()[:60]!r} is a phrase Whisper invents on silence or noise"))
    if not NON_SPEECH_TAG.sub(" ", text).strip(" .,!?-—…\t\n"):
        out.append(Finding("non_speech", "transcript holds only non-speech tags such as [Music]"))
        return out
    loop = repeated_ngram(words, t.min_repeats)
    if loop:
        out.append(Finding("repetition", f"{loop[0]!r} repeated {loop[1]} times in a row"))
    foreign = foreign_characters(text, t.script)
    if foreign:
        out.append(Finding("foreign_script", f"characters outside the {t.script} script: {' '.join(foreign[:8])}"))
    if duration_s:
        spoken = [w for w in _plain(NON_SPEECH_TAG.sub(" ", text)).split()]
        rate = len(spoken) / duration_s
        chars_per_s = len(text.strip()) / duration_s
        if rate > t.max_words_per_s or chars_per_s > t.max_chars_per_s:
            out.append(Finding("too_many_words", f"transcript looks too long for {duration_s:.1f} s of audio "
                               f"({len(spoken)} words, {rate:.1f} words/s): faster than anyone speaks"))
        elif duration_s >= t.rate_floor_after_s and rate < t.min_words_per_s:
            out.append(Finding("too_few_words", f"only {len(spoken)} words in {duration_s:.1f} s ({rate:.2f} words/s): words may be missing"))
    return out


def clip_findings(metrics: AudioMetrics | None, text: str | None, duration_s: float | None) -> list[Finding]:
    """Every warning for one clip: audio first (when measured), then the transcript."""
    out = audio_findings(metrics) if metrics is not None else []
    return out + transcript_findings(text, duration_s if duration_s is not None else (metrics.duration_s if metrics else None))
