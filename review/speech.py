"""Django-free demo speech: spoken sentences plus the mistakes a real Whisper run would make.

A demo or benchmark database is only useful when it looks like a live capture: real-sounding
speech of varied voices and lengths, with transcripts that are mostly *almost* right (homophones,
misheard names, numbers written the other way, dropped words, no punctuation) so a reviewer has
something to fix and a fine-tune has something to learn. Speech comes from `espeak-ng` when it
is installed; otherwise a built-in voiced signal (harmonics with a syllable rhythm) stands in,
so the demo still works on a bare machine. Everything is deterministic for a given seed.
"""
from __future__ import annotations

import io
import re
import shutil
import subprocess
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from review.audio import SAMPLE_RATE

# What people say to a speech-to-speech app: names, numbers, tech words, everyday chatter.
SENTENCES = [
    "Hello, how are you doing today?",
    "Can you remind me to call Siobhan at 3:30 tomorrow afternoon?",
    "The meeting with Aspen moved to Thursday at 10 am.",
    "Please add two pounds of carrots and a dozen eggs to the shopping list.",
    "I think their new office is right next to the train station.",
    "Our Kubernetes cluster ran out of memory again last night.",
    "Restart the PostgreSQL container and check the logs for errors.",
    "We shipped version 2.4 of the app on the 15th of March.",
    "My flight to Dublin leaves at 7:45 from gate 12.",
    "Could you write an email to Nguyen about the quarterly budget?",
    "The weather forecast says it will rain for the next four days.",
    "It's been a long week, so let's order pizza tonight.",
    "Whisper transcribes speech to text surprisingly well.",
    "Send the invoice for $1,250 to the accounting team by Friday.",
    "Turn left at the second traffic light and then go straight for 200 meters.",
    "I'd like to book a table for four at eight o'clock.",
    "The new GPU has 24 gigabytes of memory and costs about $1,600.",
    "Joaquin said the pull request needs one more review before we merge it.",
    "Set a timer for 25 minutes, please.",
    "What's the capital of Australia? I always forget it's Canberra.",
    "The kids have soccer practice on Tuesday and Thursday evenings.",
    "We need to migrate the database before the end of the sprint.",
    "Please read me the latest news about the Mars rover.",
    "Hey, could you play some jazz in the living room?",
    "Our latency dropped from 300 milliseconds to 85 after the fix.",
    "I'll meet you outside the library at a quarter past nine.",
    "Leila recommended a great Thai restaurant on Fifth Avenue.",
    "The Python script crashed with a key error on line 42.",
    "Don't forget to water the tomatoes before you leave.",
    "Can you translate good morning into Spanish and French?",
    "There were about 1,500 people at the conference in Lisbon.",
    "I need to renew my passport before the trip in June.",
    "The quick brown fox jumps over the lazy dog.",
    "Schedule a video call with Priya and Tomasz for next Monday.",
    "The battery is at 15 percent, so I'll plug it in now.",
    "Let's deploy the hotfix to production after lunch.",
    "My phone number is 555 0142, call me any time.",
    "The recipe needs three cups of flour and half a teaspoon of salt.",
    "Whose turn is it to take out the recycling this week?",
    "I'm going to the gym for an hour, then I'll be back.",
    "The API returns a 503 error when the database is locked.",
    "Please turn the thermostat down to 68 degrees.",
    "Anneliese and Jürgen are visiting us from Munich next weekend.",
    "Two of the four servers are down, so traffic is slower than usual.",
    "I'd rather walk there, it's only about ten minutes away.",
    "Remind me to buy a birthday present for Grandma Rose.",
    "We trained the model for 20 epochs with a learning rate of 1e-5.",
    "Could you summarize the last three messages from Oluwaseun?",
    "The package should arrive between 9 and 11 tomorrow morning.",
    "Write down that the car needs new tires before winter.",
    "Honestly, I'm not sure whether we should fix it or replace it.",
    "Open the garage door and turn on the porch lights.",
    "Our team grew from 6 to 14 engineers in a year.",
    "I left my keys on the kitchen counter, next to the fruit bowl.",
    "The Wi-Fi password is on a sticky note by the router.",
    "Let me know when you're ready and we'll start the demo.",
]

# Whole-word confusions Whisper makes on fast or accented speech (truth -> heard).
HOMOPHONES = {
    "their": "there", "there": "their", "they're": "there", "to": "too", "two": "to", "too": "to",
    "four": "for", "for": "four", "right": "write", "write": "right", "whose": "who's", "it's": "its",
    "you're": "your", "your": "you're", "here": "hear", "know": "no", "by": "buy", "buy": "by",
    "weather": "whether", "whether": "weather", "week": "weak", "hour": "our", "our": "are",
    "then": "than", "than": "then", "meet": "meat", "eight": "ate", "one": "won", "new": "knew",
    "flour": "flower", "tires": "tyres", "piece": "peace",
}

# Names and jargon a small model mishears.
MISHEARD = {
    "Siobhan": "Shivon", "Aspen": "Austin", "Nguyen": "Win", "Kubernetes": "Cooper Netties",
    "PostgreSQL": "Postgres Q L", "Whisper": "whisker", "Joaquin": "Walkin", "Canberra": "Camberra",
    "Leila": "Layla", "Priya": "Pria", "Tomasz": "Thomas", "Anneliese": "Annalise", "Jürgen": "Yurgen",
    "Oluwaseun": "Oluwa Sean", "Lisbon": "Lisbin", "GPU": "G P U", "API": "a P I", "Wi-Fi": "wifi",
    "hotfix": "hot fix", "Munich": "Munic", "Dublin": "Doublin", "Mars": "Mars's", "1e-5": "one e minus five",
}

# Numbers as a transcript might write them instead (or the other way round).
NUMBER_FORMS = {
    "3:30": "three thirty", "10 am": "10 a.m.", "7:45": "745", "12": "twelve", "2.4": "two point four",
    "15th": "fifteenth", "$1,250": "1250 dollars", "200": "two hundred", "24": "twenty four",
    "$1,600": "1600 dollars", "25": "twenty-five", "300": "three hundred", "85": "eighty five",
    "42": "forty two", "1,500": "1500", "15": "fifteen", "555 0142": "5550142", "68": "sixty eight",
    "20": "twenty", "9": "nine", "11": "eleven", "6": "six", "14": "fourteen", "503": "five oh three",
    "three": "3", "four": "4", "ten": "10", "eight o'clock": "8 o'clock", "half": "1/2", "a dozen": "12",
}

# Short words an ASR drops when they are spoken quickly.
DROPPABLE = {"the", "a", "an", "to", "and", "of", "at", "is", "that", "so", "then", "me", "it", "we", "you", "on"}

# espeak-ng voices (language + variant) a demo cycles through, and how fast each one talks.
VOICES = [
    "en-us", "en-gb", "en-us+f3", "en-gb+m3", "en-gb-scotland", "en-029", "en-us+Annie",
    "en-gb-x-rp+f2", "en-us+klatt4", "en-us+Alicia", "en-gb-x-gbcwmd+m5", "en-us+m7",
]
SPEEDS = (135, 150, 165, 180, 195)


@dataclass(frozen=True)
class Utterance:
    """One demo clip: what was said, what the "ASR" wrote, and the audio at 16 kHz."""

    truth: str
    transcript: str
    samples: np.ndarray  # float32 in [-1, 1], 16 kHz mono
    voice: str
    mistakes: tuple[str, ...]

    @property
    def duration_s(self) -> float:
        return len(self.samples) / SAMPLE_RATE


class SpeechSynthesisError(RuntimeError):
    """espeak-ng ran but gave no usable audio."""


def espeak_path() -> str | None:
    return shutil.which("espeak-ng")


def synthesize_espeak(text: str, *, voice: str = "en-us", speed: int = 165, pitch: int = 50,
                      executable: str = "espeak-ng") -> np.ndarray:
    """Speak `text` with espeak-ng and return float32 samples resampled to 16 kHz mono."""
    import soundfile as sf

    proc = subprocess.run(
        [executable, "--stdout", "-v", voice, "-s", str(speed), "-p", str(pitch), "--", text],
        capture_output=True, timeout=30, check=False,
    )
    if proc.returncode != 0 or len(proc.stdout) < 100:
        raise SpeechSynthesisError(f"espeak-ng failed for voice {voice}: {proc.stderr.decode(errors='replace').strip()}")
    # espeak writes a WAV whose size fields are 0xFFFFFFFF on a pipe; libsndfile copes with that.
    data, rate = sf.read(io.BytesIO(proc.stdout), dtype="float32", always_2d=True)
    return resample(data.mean(axis=1), rate)


def resample(samples: np.ndarray, rate: int, target: int = SAMPLE_RATE) -> np.ndarray:
    """Mono float32 at `rate` -> float32 at `target` (soxr high quality, as librosa uses)."""
    samples = np.asarray(samples, dtype=np.float32)
    if rate == target:
        return samples
    import soxr

    return soxr.resample(samples, rate, target, quality="HQ").astype(np.float32)


def synthesize_builtin(text: str, rng: np.random.Generator, *, speed: int = 165) -> np.ndarray:
    """A clear stand-in for speech when espeak-ng is missing: one voiced burst per syllable.

    Each syllable is a glottal-like harmonic series under a formant-ish spectral tilt, with pitch
    drifting like intonation and short gaps between words, so durations, loudness and waveforms
    look like speech even though nothing intelligible is said.
    """
    words = re.findall(r"[\w'$.,:-]+", text) or ["uh"]
    syllable_s = 60.0 / (speed * 1.6)
    f0_base = rng.uniform(95, 220)
    parts = []
    for i, word in enumerate(words):
        n_syll = max(1, len(re.findall(r"[aeiouy]+", word.lower())))
        for _ in range(n_syll):
            n = int(SAMPLE_RATE * syllable_s * rng.uniform(0.7, 1.3))
            t = np.arange(n) / SAMPLE_RATE
            f0 = f0_base * (1 + 0.08 * np.sin(2 * np.pi * rng.uniform(0.5, 2) * t + i)) * (1 - 0.1 * i / len(words))
            phase = 2 * np.pi * np.cumsum(f0) / SAMPLE_RATE
            voiced = sum(np.sin(k * phase) / k**1.2 for k in range(1, 12))
            env = np.sin(np.pi * np.linspace(0, 1, n)) ** 0.7
            parts.append((0.25 * env * voiced).astype(np.float32))
        parts.append(np.zeros(int(SAMPLE_RATE * rng.uniform(0.04, 0.12)), np.float32))
    return np.concatenate(parts)


def capture(samples: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Make clean synthetic speech look like a microphone capture.

    Adds the lead-in/trailing silence of voice-activity detection, a random gain and a low noise
    floor (so the blob compresses like a real recording, not like digital silence).
    """
    lead = np.zeros(int(SAMPLE_RATE * rng.uniform(0.1, 0.45)), np.float32)
    tail = np.zeros(int(SAMPLE_RATE * rng.uniform(0.15, 0.6)), np.float32)
    x = np.concatenate([lead, samples.astype(np.float32), tail])
    peak = float(np.max(np.abs(x))) or 1.0
    x = x * (rng.uniform(0.2, 0.8) / peak)
    noise_level = 10 ** (rng.uniform(-62, -45) / 20)
    x = x + noise_level * rng.standard_normal(len(x)).astype(np.float32)
    return np.clip(x, -1.0, 32767 / 32768).astype(np.float32)


# ---------------------------------------------------------------- ASR-like mistakes

def _replace_word(text: str, table: dict[str, str], rng: np.random.Generator) -> str | None:
    hits = [k for k in table if re.search(rf"(?<![\w$]){re.escape(k)}(?![\w])", text)]
    if not hits:
        return None
    key = hits[int(rng.integers(len(hits)))]
    return re.sub(rf"(?<![\w$]){re.escape(key)}(?![\w])", table[key], text, count=1)


def _homophone(text, rng):
    words = text.split(" ")
    idx = [i for i, w in enumerate(words) if w.strip(".,?!").lower() in HOMOPHONES]
    if not idx:
        return None
    i = idx[int(rng.integers(len(idx)))]
    bare = words[i].strip(".,?!")
    swap = HOMOPHONES[bare.lower()]
    if bare[:1].isupper():
        swap = swap[:1].upper() + swap[1:]
    words[i] = words[i].replace(bare, swap, 1)
    return " ".join(words)


def _drop_word(text, rng):
    words = text.split(" ")
    idx = [i for i, w in enumerate(words) if w.lower().strip(".,?!") in DROPPABLE and i > 0]
    if not idx:
        return None
    i = idx[int(rng.integers(len(idx)))]
    tail = words[i][len(words[i].rstrip(".,?!")):]
    del words[i]
    if tail:
        words[i - 1] += tail
    return " ".join(words)


def _no_punctuation(text, rng):
    out = re.sub(r"[,.?!;](?=\s|$)", "", text).lower()
    return out if out != text else None


def _merge_or_split(text, rng):
    pairs = [("a lot", "alot"), ("next to", "nextto"), ("into", "in to"), ("every day", "everyday"),
             ("some time", "sometime"), ("any time", "anytime"), ("out of", "outta"), ("going to", "gonna")]
    present = [(a, b) for a, b in pairs if a in text]
    if not present:
        return None
    a, b = present[int(rng.integers(len(present)))]
    return text.replace(a, b, 1)


MISTAKES: dict[str, Callable[[str, np.random.Generator], str | None]] = {
    "homophone": _homophone,
    "name": lambda t, r: _replace_word(t, MISHEARD, r),
    "number": lambda t, r: _replace_word(t, NUMBER_FORMS, r),
    "dropped_word": _drop_word,
    "merge_split": _merge_or_split,
    "no_punctuation": _no_punctuation,
}


def inject_mistakes(text: str, rng: np.random.Generator, *, count: int | None = None) -> tuple[str, tuple[str, ...]]:
    """Return (transcript, kinds applied): 1-3 realistic ASR errors that apply to this sentence."""
    count = int(rng.integers(1, 4)) if count is None else count
    kinds = list(MISTAKES)
    order = rng.permutation(len(kinds))
    out, applied = text, []
    for k in order:
        if len(applied) >= count:
            break
        kind = kinds[int(k)]
        if kind == "no_punctuation" and applied and rng.random() < 0.5:
            continue
        changed = MISTAKES[kind](out, rng)
        if changed and changed != out:
            out, applied = changed, [*applied, kind]
    return out, tuple(applied)


# ---------------------------------------------------------------- putting it together

@dataclass(frozen=True)
class Script:
    """What one demo clip will say and how: chosen before any audio is made (cheap, deterministic)."""

    truth: str
    transcript: str
    voice: str
    speed: int
    pitch: int
    mistakes: tuple[str, ...]
    seed: int


def demo_scripts(n: int, *, seed: int = 0, exact_ratio: float = 0.2) -> list[Script]:
    """Plan `n` clips: sentences (sometimes two joined), voices, and the transcript errors."""
    rng = np.random.default_rng(seed)
    scripts = []
    order = rng.permutation(len(SENTENCES))
    for i in range(n):
        truth = SENTENCES[int(order[i % len(SENTENCES)])]
        if rng.random() < 0.2:  # a longer capture: two sentences in one breath
            truth = f"{truth} {SENTENCES[int(rng.integers(len(SENTENCES)))]}"
        if rng.random() < exact_ratio:
            transcript, mistakes = truth, ()
        else:
            transcript, mistakes = inject_mistakes(truth, rng)
        scripts.append(Script(
            truth=truth, transcript=transcript, voice=VOICES[int(rng.integers(len(VOICES)))],
            speed=int(SPEEDS[int(rng.integers(len(SPEEDS)))]), pitch=int(rng.integers(30, 71)),
            mistakes=mistakes, seed=int(rng.integers(2**31)),
        ))
    return scripts


def render(script: Script, *, espeak: str | None) -> Utterance:
    """Turn a plan into audio (espeak-ng when given its path, the built-in signal otherwise)."""
    rng = np.random.default_rng(script.seed)
    if espeak:
        speech = synthesize_espeak(script.truth, voice=script.voice, speed=script.speed,
                                   pitch=script.pitch, executable=espeak)
        voice = script.voice
    else:
        speech = synthesize_builtin(script.truth, rng, speed=script.speed)
        voice = "builtin"
    return Utterance(script.truth, script.transcript, capture(speech, rng), voice, script.mistakes)


def generate_utterances(n: int, *, seed: int = 0, use_espeak: bool | None = None, workers: int = 4) -> Iterator[Utterance]:
    """Yield `n` demo utterances in order; espeak-ng runs in a few threads (it is a subprocess).

    `use_espeak=None` means "when installed"; True insists (error if missing); False forces the
    built-in signal.
    """
    path = espeak_path() if use_espeak is not False else None
    if use_espeak and not path:
        raise SpeechSynthesisError("espeak-ng is not installed (apt-get install espeak-ng)")
    scripts = demo_scripts(n, seed=seed)
    if not path:
        for s in scripts:
            yield render(s, espeak=None)
        return
    with ThreadPoolExecutor(max_workers=workers) as pool:
        yield from pool.map(lambda s: render(s, espeak=path), scripts)
