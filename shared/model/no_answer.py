"""The model's "the passages do not answer this" signal, and the text kefu says when it has no answer.

A chat model is told to begin such a reply with ``NO_ANSWER`` (chat_model.SYSTEM_PROMPT). A fixed
word at the start costs no extra call and small open models (Qwen2.5-7B behind vLLM) follow it as
reliably as Bedrock's: what varies is the decoration, so the filter accepts it in bold, code or
brackets, followed by a colon, and anywhere in the reply (some models put it last). It never reaches
the visitor: the stream holds back a tail that could be the start of the marker until the next piece
shows it is not.
"""

from __future__ import annotations

import re

from shared.model.language import Language

NO_ANSWER_MARKER = "NO_ANSWER"
_SPELLINGS = (NO_ANSWER_MARKER, "NO ANSWER")
# Upper case only: "there is no answer to that" in an answer is prose, not the marker.
_OPENERS = " \t\n*_`[(<\"'“「【"
_CLOSERS = "*_`])>\"'”」】"
_PUNCTUATION = ":：.。,，-–—"
_MARKER = re.compile(
    rf"[{re.escape(_OPENERS)}]*\bNO[_ ]ANSWER\b[{re.escape(_CLOSERS)}]*[{re.escape(_PUNCTUATION)}]?[ \t]*\n*"
)
_LEAD = _OPENERS + _CLOSERS + _PUNCTUATION
_LONGEST_HOLD = len(NO_ANSWER_MARKER) + 8

_NOT_FOUND: dict[Language, str] = {
    "en": "Sorry, I could not find that in our help centre. You can rephrase, or ask for a human agent.",
    "zh": "抱歉，我在帮助中心没有找到相关内容。您可以换个说法再问，或者请求人工客服。",
}


def not_found_text(language: Language) -> str:
    return _NOT_FOUND[language]


class NoAnswerFilter:
    """Feed it the streamed text piece by piece: it returns what may be shown (the marker removed) and
    sets ``found`` once the marker appeared. ``finish`` returns what it still held back."""

    def __init__(self) -> None:
        self.found = False
        self._pending = ""
        self._trim_lead = False

    def feed(self, text: str) -> str:
        self._pending += text
        self._drop_markers()
        cut = self._hold_from()
        shown, self._pending = self._pending[:cut], self._pending[cut:]
        return self._trimmed(shown)

    def finish(self) -> str:
        self._drop_markers()
        shown, self._pending = self._pending, ""
        return self._trimmed(shown)

    def _drop_markers(self) -> None:
        while (match := _MARKER.search(self._pending)) is not None:
            self.found = True
            before, after = self._pending[: match.start()], self._pending[match.end() :]
            if not before.strip():
                before = ""
                self._trim_lead = True  # what follows the opening marker starts the visible reply
            elif after and not before[-1].isspace():
                before += " "
            self._pending = before + after

    def _hold_from(self) -> int:
        """Where the tail that could still become a marker starts (len(pending) when none can)."""
        pending = self._pending
        for start in range(max(0, len(pending) - _LONGEST_HOLD), len(pending)):
            if start > 0 and pending[start - 1].isalnum() and pending[start].isalnum():
                continue  # inside a word: a marker starts at a word boundary
            core = pending[start:].lstrip(_OPENERS)
            if core and any(spelling.startswith(core) for spelling in _SPELLINGS):
                return start
        return len(pending)

    def _trimmed(self, shown: str) -> str:
        if self._trim_lead:
            shown = shown.lstrip(_LEAD)
            if shown:
                self._trim_lead = False
        return shown
