"""Tiny language helpers for answers written without a model: which language, and how to split text."""

from __future__ import annotations

import re
from typing import Literal

Language = Literal["zh", "en"]

# Han ideographs: the unified block, extension A and the compatibility block. Extensions B+ are rare in
# customer questions and would need astral-plane ranges; they count as "other" characters.
_HAN = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_HAN_CHAR = re.compile(f"[{_HAN}]")
_LATIN_WORD = re.compile(r"[A-Za-z]+")
# One Chinese character carries about as much as one English word, so they are weighed one to one.
_CHINESE_SHARE = 0.5

# A streamed piece: a few Han characters (with the punctuation that follows them), or one non-Han word;
# either keeps the whitespace after it so that joining the pieces gives back the text unchanged.
_PIECE = re.compile(f"(?:[{_HAN}]{{1,4}}[，。、；：！？…）」』”’\\s]*|[^{_HAN}\\s]+\\s*|\\s+)")


def detect_language(text: str) -> Language:
    """Return "zh" when the text is mainly Chinese (Han characters against Latin words), else "en"."""
    han = len(_HAN_CHAR.findall(text))
    words = len(_LATIN_WORD.findall(text))
    if han == 0:
        return "en"
    return "zh" if han / (han + words) >= _CHINESE_SHARE else "en"


def split_into_pieces(text: str) -> list[str]:
    """Word- or phrase-sized pieces whose concatenation is exactly ``text``."""
    return _PIECE.findall(text)
