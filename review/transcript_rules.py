"""Rules that rewrite many transcripts at once: find-and-replace (plain or regex) and normalization.

Django-free and pure: a rule turns one text into another; `review.services` builds the plan
(every change, previewed before it is applied) and writes it.

Regular expressions come from people and run over thousands of transcripts, so they run on the
`regex` package with a timeout per transcript and a budget for the whole batch: a pattern with
catastrophic backtracking (`(a+)+$`) fails with a message instead of pinning a CPU.
"""
from __future__ import annotations

import re
import time
from dataclasses import dataclass

import regex

MAX_PATTERN_CHARS = 200
MAX_REPLACEMENT_CHARS = 500
MATCH_TIMEOUT_S = 0.05  # one transcript (at most 2000 characters): plenty for any sane pattern
BATCH_BUDGET_S = 10.0
CASINGS = ("keep", "sentence", "lower", "upper")
_SPACE_BEFORE_PUNCTUATION = re.compile(r"\s+([,.!?;:])")


class RuleError(ValueError):
    """The rule cannot run as given; `field` names the form field to fix."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field
        self.message = message


@dataclass(frozen=True)
class FindReplace:
    find: str
    replace: str = ""
    use_regex: bool = False
    ignore_case: bool = False

    def __post_init__(self):
        if not self.find:
            raise RuleError("find", "Type the text to find.")
        if len(self.find) > MAX_PATTERN_CHARS:
            raise RuleError("find", f"The search is {len(self.find)} characters; the limit is {MAX_PATTERN_CHARS}.")
        if len(self.replace) > MAX_REPLACEMENT_CHARS:
            raise RuleError("replace", f"The replacement is longer than {MAX_REPLACEMENT_CHARS} characters.")
        flags = regex.V0 | (regex.IGNORECASE if self.ignore_case else 0)
        try:
            compiled = regex.compile(self.find if self.use_regex else regex.escape(self.find), flags)
        except regex.error as e:
            raise RuleError("find", f"Not a valid regular expression: {e}.") from None
        object.__setattr__(self, "_pattern", compiled)
        if self.use_regex:
            try:  # a bad group reference only shows when the template is expanded
                regex.compile("(?:" + self.find + ")|$").sub(self.replace, "", count=1, timeout=MATCH_TIMEOUT_S)
            except regex.error as e:
                raise RuleError("replace", f"The replacement is not valid for this pattern: {e}.") from None
            except TimeoutError:
                pass

    def describe(self) -> str:
        kind = "regex" if self.use_regex else "text"
        case = ", ignoring case" if self.ignore_case else ""
        return f"replace {kind} “{self.find}” with “{self.replace}”{case}"

    def apply(self, text: str) -> str:
        # Plain mode: the replacement is literal (no backslash or group expansion).
        repl = self.replace if self.use_regex else (lambda _m: self.replace)
        try:
            return self._pattern.sub(repl, text, timeout=MATCH_TIMEOUT_S)
        except TimeoutError:
            raise RuleError("find", f"The pattern took longer than {MATCH_TIMEOUT_S * 1000:.0f} ms on one transcript "
                                    "(catastrophic backtracking?): simplify it.") from None
        except regex.error as e:
            raise RuleError("replace", f"The replacement is not valid for this pattern: {e}.") from None


@dataclass(frozen=True)
class Normalize:
    collapse_whitespace: bool = True
    punctuation_spacing: bool = False
    casing: str = "keep"

    def __post_init__(self):
        if self.casing not in CASINGS:
            raise RuleError("casing", f"Casing must be one of {', '.join(CASINGS)}.")
        if not (self.collapse_whitespace or self.punctuation_spacing or self.casing != "keep"):
            raise RuleError("collapse_whitespace", "Choose at least one rule.")

    def describe(self) -> str:
        parts = []
        if self.collapse_whitespace:
            parts.append("collapse whitespace")
        if self.punctuation_spacing:
            parts.append("no space before punctuation")
        if self.casing != "keep":
            parts.append(f"{self.casing} case")
        return "normalize: " + ", ".join(parts)

    def apply(self, text: str) -> str:
        if self.collapse_whitespace:
            text = " ".join(text.split())
        if self.punctuation_spacing:
            text = _SPACE_BEFORE_PUNCTUATION.sub(r"\1", text)
        if self.casing == "lower":
            text = text.lower()
        elif self.casing == "upper":
            text = text.upper()
        elif self.casing == "sentence":
            stripped = text.lstrip()
            if stripped:
                lead = len(text) - len(stripped)
                text = text[:lead] + stripped[0].upper() + stripped[1:]
        return text


class Budget:
    """Wall time left for one batch of rule applications."""

    def __init__(self, seconds: float = BATCH_BUDGET_S):
        self.deadline = time.monotonic() + seconds
        self.seconds = seconds

    def check(self) -> None:
        if time.monotonic() > self.deadline:
            raise RuleError("find", f"Applying the rule took more than {self.seconds:g} s in total: "
                                    "select fewer clips or simplify the pattern.")
