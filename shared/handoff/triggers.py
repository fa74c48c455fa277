"""Visitor phrases that ask for a person, detected on the server (never in the model's reply)."""

from __future__ import annotations

import re
from collections.abc import Iterable

# Matched against the lower-cased message with runs of whitespace collapsed. Kept specific: "human"
# alone is too common ("is this a human-readable format?") to hand a chat off.
BUILT_IN_PHRASES: tuple[str, ...] = (
    "转人工",
    "人工客服",
    "人工服务",
    "找人工",
    "要人工",
    "真人客服",
    "客服人员",
    "talk to a human",
    "speak to a human",
    "talk to a person",
    "speak to a person",
    "talk to someone",
    "speak to someone",
    "talk to an agent",
    "speak to an agent",
    "human agent",
    "live agent",
    "real person",
    "customer service representative",
)

_SPACES = re.compile(r"\s+")


def _normalize(text: str) -> str:
    return _SPACES.sub(" ", text.lower()).strip()


def asks_for_human(text: str, extra_phrases: Iterable[str] = ()) -> bool:
    normalized = _normalize(text)
    # Chinese has no spaces between words: "转 人工" still asks for a person.
    compact = normalized.replace(" ", "")
    for phrase in (*BUILT_IN_PHRASES, *extra_phrases):
        wanted = _normalize(phrase)
        if not wanted:
            continue
        if wanted in normalized or (not wanted.isascii() and wanted.replace(" ", "") in compact):
            return True
    return False
