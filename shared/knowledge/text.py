"""Text processing for the knowledge index: a Chinese + English tokenizer for BM25, and passage splitting.

The tokenizer is shared by every backend (the OpenSearch adapter indexes its output with a whitespace
analyzer), so keyword matching behaves the same locally and in the cloud.
"""

from __future__ import annotations

import logging
import re
import tempfile
import threading
import unicodedata
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

# CJK Unified Ideographs (+ extension A and compatibility ideographs). A run of these goes to jieba;
# everything else that is a letter or digit is split on non-word characters.
_CJK_CLASS = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_TOKEN_RUN = re.compile(rf"[{_CJK_CLASS}]+|[^\W_{_CJK_CLASS}]+(?:['’][^\W_{_CJK_CLASS}]+)*")
_HAS_CJK = re.compile(rf"[{_CJK_CLASS}]")

# Function words only: content words such as "long", "price" or "多久" stay searchable.
ENGLISH_STOPWORDS: frozenset[str] = frozenset(
    """
    a about above after again against all am an and any are as at be because been before being below
    between both but by can could did do does doing done down during each few for from further get got
    had has have having he her here hers herself him himself his how i if in into is it its itself just
    me might more most must my myself no nor not now of off on once only or other our ours ourselves out
    over own please same shall she should so some such than that the their theirs them themselves then
    there these they this those through to too under until up very was we were what when where which while
    who whom why will with would you your yours yourself yourselves hi hello thanks thank
    i'm i've i'd i'll you're you've you'd we're we've they're don't doesn't didn't can't cannot won't
    isn't aren't wasn't
    """.split()
)
CHINESE_STOPWORDS: frozenset[str] = frozenset(
    """
    的 了 吗 呢 吧 啊 呀 嘛 哦 是 在 我 你 您 他 她 它 我们 你们 他们 和 与 及 或 或者 就 都 也 还 要 会 能
    可以 怎么 怎样 如何 什么 哪 哪里 哪儿 请问 请 一下 这 那 这个 那个 个 有 被 把 让 给 对 从 为 想 得 地 着
    过 么 之 而 并 但 如果 因为 所以 您好 你好 谢谢
    """.split()
)


def has_cjk(text: str) -> bool:
    return _HAS_CJK.search(text) is not None


class _Jieba:
    """jieba, imported and initialised on first Chinese text only (it costs ~0.1 s to import and
    ~0.5 s to load its dictionary, which English-only tenants never need to pay)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cut_for_search: Callable[[str], Iterator[str]] | None = None

    def cut_for_search(self, text: str) -> Iterator[str]:
        if self._cut_for_search is None:
            with self._lock:
                if self._cut_for_search is None:
                    self._cut_for_search = self._load()
        return self._cut_for_search(text)

    @staticmethod
    def _load() -> Callable[[str], Iterator[str]]:
        import jieba

        jieba.setLogLevel(logging.WARNING)
        # jieba writes a cache of its prefix dictionary on first load and reads it on later cold starts
        # in the same sandbox. Pin it to the temp dir (on Lambda only /tmp is writable) under our name.
        jieba.dt.tmp_dir = tempfile.gettempdir()
        jieba.dt.cache_file = "kefu-jieba.cache"
        jieba.initialize()
        return jieba.cut_for_search


_jieba = _Jieba()


def stem(word: str) -> str:
    """Light English suffix stripping (plural, -ing, -ed) so "refunds"/"refunded"/"refunding" meet.

    Deliberately conservative: it only has to map a word and its inflections to the same key, for
    query and document alike; it never has to produce a real word.
    """
    if len(word) <= 3 or not word.isascii() or not word.isalpha():
        return word
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    if word.endswith("sses"):
        return word[:-2]
    if word.endswith("ing") and len(word) > 5:
        return _undouble(word[:-3])
    if word.endswith("ed") and len(word) > 4:
        return _undouble(word[:-2])
    if word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


def _undouble(word: str) -> str:
    # "shipp" (from shipping/shipped) -> "ship"; "fill" keeps its double l.
    if len(word) >= 3 and word[-1] == word[-2] and word[-1] not in "aeioulsz":
        return word[:-1]
    return word


def normalize(text: str) -> str:
    """NFKC folds full-width letters/digits (常见于中文输入) to ASCII; then lowercase; Chinese in
    traditional characters is folded to simplified (OpenCC's t2s tables), so 寬帶 meets 宽带."""
    folded = unicodedata.normalize("NFKC", text).lower()
    return _chinese.to_simplified(folded) if has_cjk(folded) else folded


def fold_chinese(text: str) -> str:
    """Traditional characters folded to simplified, nothing else changed: what the embedder is given
    for a query, so 寬頻 and 宽频 land on the same vector (knowledge is mostly written in one script)."""
    return _chinese.to_simplified(text) if has_cjk(text) else text


def tokenize(text: str) -> list[str]:
    """BM25 terms of ``text``: for Chinese runs jieba search-mode words, character bigrams and their
    sounds (see ``_chinese_terms``); stemmed words otherwise.

    Stopwords and punctuation are dropped; order and repeats are kept (term frequency matters).
    """
    tokens: list[str] = []
    for match in _TOKEN_RUN.finditer(normalize(text)):
        run = match.group()
        if _HAS_CJK.match(run):
            tokens.extend(_chinese_terms(run))
        else:
            word = run.replace("’", "'")
            if word.endswith("'s"):
                word = word[:-2]
            if word in ENGLISH_STOPWORDS:
                continue
            tokens.append(stem(word))
    return tokens


def alternative_terms(text: str) -> list[str]:
    """Query terms that may stand for Chinese words: a short Latin word such as "sfz" or "kd" may be
    the pinyin initials of 身份证 or 宽带 (how people type on phones). They only count where the
    knowledge base has such a word: an index must not let them lower a query's keyword bound."""
    words = [m.group() for m in _TOKEN_RUN.finditer(normalize(text)) if not _HAS_CJK.match(m.group())]
    return [
        INITIALS_PREFIX + w
        for w in dict.fromkeys(words)
        if _LOOKS_LIKE_INITIALS.fullmatch(w) and w not in ENGLISH_STOPWORDS  # "my", "by", "why"
    ]


# 2-6 Latin consonants: no English word, but what initials look like (sfz, kd, xhzw, zfb).
_LOOKS_LIKE_INITIALS = re.compile(r"[b-df-hj-np-tv-z]{2,6}")


# --- Chinese terms ----------------------------------------------------------------------------------

# Prefixes keep sound-based terms apart from words (an English "fan" is not 饭's pinyin).
INITIALS_PREFIX = "i:"


def _chinese_terms(run: str) -> list[str]:
    """jieba's words (what a reader sees), every character bigram (recall where jieba cuts a
    colloquial or misspelt phrase differently from the FAQ's wording) and each word's pinyin initials
    (typed as "sfz" for 身份证). Toneless pinyin bigrams for homophone typos (花费/话费) were measured
    too and not kept: on telecom_zh they cost more in false matches than they found (docs/quality.md)."""
    words = [w for w in _jieba.cut_for_search(run) if w not in CHINESE_STOPWORDS and w.strip()]
    terms = [*words, *(run[n : n + 2] for n in range(len(run) - 1))]
    terms.extend(INITIALS_PREFIX + initials for w in words if len(w) >= 2 and (initials := _chinese.initials(w)))
    return terms


class _Chinese:
    """OpenCC's traditional-to-simplified tables and pypinyin's readings, loaded on first Chinese text
    (opencc ~2 ms, pypinyin's dictionary ~0.13 s: English-only tenants never pay for them)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._converter: Any = None
        self._traditional: frozenset[str] = frozenset()
        self._readings: dict[int, str] | None = None
        self._initial: dict[str, str] = {}

    def to_simplified(self, text: str) -> str:
        if self._converter is None:
            with self._lock:
                if self._converter is None:
                    self._converter = self._load_converter()
        # Most text has no traditional character: skip the (pure-Python) conversion then.
        return self._converter.convert(text) if not self._traditional.isdisjoint(text) else text

    def _load_converter(self) -> Any:
        from opencc import OpenCC

        converter = OpenCC("t2s")  # reads its tables now
        # The characters t2s changes, from its character table (the phrase table only refines them).
        characters: set[str] = set()
        for group in converter._dict_chain_data:  # noqa: SLF001 - the library exposes no accessor
            for _max_len, _min_len, table in group:
                characters.update(key for key, value in table.items() if len(key) == 1 and value[:1] != key)
        self._traditional = frozenset(characters)
        return converter

    def initials(self, word: str) -> str:
        """The first letter of each character's first reading ("身份证" -> "sfz"); "" if one has none."""
        if self._readings is None:
            with self._lock:
                if self._readings is None:
                    from pypinyin.pinyin_dict import pinyin_dict

                    self._readings = pinyin_dict
        letters = []
        for char in word:
            letter = self._initial.get(char)
            if letter is None:
                reading = self._readings.get(ord(char), "")
                first = unicodedata.normalize("NFD", reading[:1])[:1]
                letter = first if first.isascii() and first.isalpha() else ""
                self._initial[char] = letter
            if not letter:
                return ""
            letters.append(letter)
        return "".join(letters)


_chinese = _Chinese()


# --- chunking ---------------------------------------------------------------------------------------

# A sentence ends after Chinese/full-width terminators (no space follows them in Chinese), after
# ASCII terminators followed by whitespace, or at a line break.
_SENTENCE_END = re.compile(r"[。！？；!?]+[”」』）)]*|[.;:]+[\"')\]]*(?=\s)|\n+")


def _sentence_spans(text: str) -> list[tuple[int, int]]:
    spans: list[tuple[int, int]] = []
    start = 0
    for match in _SENTENCE_END.finditer(text):
        end = match.end()
        if text[start:end].strip():
            spans.append((start, end))
        start = end
    if text[start:].strip():
        spans.append((start, len(text)))
    return spans


def _split_long(text: str, start: int, end: int, max_chars: int) -> Iterator[tuple[int, int]]:
    """Hard-split a span longer than max_chars, preferring whitespace near the limit."""
    while end - start > max_chars:
        cut = start + max_chars
        space = text.rfind(" ", start + max_chars // 2, cut)
        cut = space + 1 if space > 0 else cut
        yield start, cut
        start = cut
    yield start, end


def split_passages(text: str, max_chars: int = 800, overlap_chars: int = 120) -> list[str]:
    """Split ``text`` into passages of at most ~max_chars on sentence/paragraph boundaries.

    Consecutive passages share up to ``overlap_chars`` of whole trailing sentences, so a fact that
    straddles a boundary is still found whole in one of them. Text that fits stays one passage.
    """
    text = text.strip()
    if len(text) <= max_chars:
        return [text] if text else []
    spans = [piece for s, e in _sentence_spans(text) for piece in _split_long(text, s, e, max_chars)]

    # Each passage is a range [first, stop) of spans.
    ranges: list[tuple[int, int]] = []
    i = 0
    while i < len(spans):
        first = i
        i += 1
        while i < len(spans) and spans[i][1] - spans[first][0] <= max_chars:
            i += 1
        ranges.append((first, i))
        if i >= len(spans):
            break
        # Step back over whole trailing sentences to form the overlap, always making progress.
        back = i
        while back - 1 > first and spans[i - 1][1] - spans[back - 1][0] <= overlap_chars:
            back -= 1
        i = back
    # A very short tail reads better merged into its predecessor than as a passage of its own.
    if len(ranges) >= 2:
        (prev_first, _), (tail_first, tail_stop) = ranges[-2], ranges[-1]
        tail_chars = spans[tail_stop - 1][1] - spans[tail_first][0]
        merged_chars = spans[tail_stop - 1][1] - spans[prev_first][0]
        if tail_chars < max_chars // 4 and merged_chars <= max_chars * 5 // 4:
            ranges[-2:] = [(prev_first, tail_stop)]
    return [text[spans[first][0] : spans[stop - 1][1]].strip() for first, stop in ranges]
