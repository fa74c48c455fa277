"""Which sentences of a passage answer a question: what the extractive model quotes.

Pure Python on purpose: the generate function, where answers are written, bundles neither numpy, the
sentence encoder nor jieba (they live in the retrieve function). Sentences are scored against the
question with BM25 over the candidate sentences themselves: English words (stemmed, stopwords
dropped) and Chinese character bigrams, which need no dictionary and match words however a
segmenter would cut them. A question that asks for an amount or a time ("how long", 多久, 多少)
prefers sentences that state a number, so "2 to 4 working days" wins over a sentence that only
repeats the question's words; one that asks for a duration or a price puts the sentences that state
one (a number with a unit of time, a currency) first, since no other sentence can answer it.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections import Counter
from dataclasses import dataclass

from shared.knowledge.base import Passage
from shared.knowledge.text import ENGLISH_STOPWORDS, stem

# A quote's length in "units" (a Chinese character counts two): ~320 is two or three sentences in
# either language.
DEFAULT_BUDGET = 320
MAX_SENTENCES = 3
# Other sentences join the best one when they score at least this share of it.
_KEEP_SHARE = 0.5
# How much a sentence stating a number gains when the question asks for an amount, a duration or a time.
_NUMBER_BOOST = 1.5
_BM25_K1 = 1.2
_BM25_B = 0.75

_HAN = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_HAN_RUN = re.compile(f"[{_HAN}]+")
_WORD = re.compile(rf"[^\W_{_HAN}]+(?:['’][^\W_{_HAN}]+)*")
_WIDE = re.compile(f"[{_HAN}\u3000-\u303f\uff00-\uffef]")
# A sentence ends after Chinese terminators, or after ASCII ones followed by whitespace; a blank line
# ends a paragraph. Semicolons and colons do not end one: "到账时间：微信支付…；信用卡…" stays whole.
_SENTENCE_END = re.compile(r"[。！？!?]+[”」』）)\"']*|\.+[”\"')\]]*(?=\s)|\n\s*\n")
_TERMINATOR = re.compile(r"[。！？!?.][”」』）)\"']*$")
_QUESTION_END = re.compile(r"[?？]\s*[”」』）)\"']*\s*$")
_CHINESE_STOP_CHARS = frozenset(
    "的了吗呢吧啊呀嘛哦是在我你您他她它和与及或就都也还要会能请这那个有被把让给对从为想得地着过么之而并但"
)
_ASKS_AMOUNT = re.compile(
    r"\bhow\s+(?:long|much|many|soon|often|far|big|large|heavy|old|fast)\b|\bwhen\b|\bwhat\s+time\b"
    r"|\b(?:cost|costs|price|prices|fee|fees|charge|charges)\b"
    r"|多久|多长|多少|几[天个小周月年点次号岁]|什么时候|何时|多快|多大|多重|多远|价格|费用|收费",
    re.IGNORECASE,
)
_STATES_NUMBER = re.compile(r"\d|[一二两三四五六七八九十百千万半][个天周月年小分秒次元倍]")
_NUMBER = r"(?:\d+(?:[.,]\d+)?|[一二两三四五六七八九十百千万半]+)"
# Questions about a duration or a moment, and the sentences that state one.
_ASKS_DURATION = re.compile(
    r"\bhow\s+(?:long|soon)\b|\bwhen\b|\bwhat\s+time\b|多久|多长时间|什么时候|何时|多快|几[天周月年点]|几个?(?:小时|工作日|月)",
    re.IGNORECASE,
)
_STATES_DURATION = re.compile(
    rf"{_NUMBER}\s*(?:-|–|~|to|至|到)?\s*{_NUMBER}?\s*(?:个)?\s*(?:working\s+|business\s+|calendar\s+)?"
    r"(?:seconds?|secs?|minutes?|mins?|hours?|hrs?|h\b|days?|weeks?|months?|years?|"
    r"秒|分钟|小时|个?工作日|天|日|周|星期|个?月|年)"
    r"|\b\d{1,2}[:：]\d{2}\b|\d{1,2}\s*(?:am|pm|点)",
    re.IGNORECASE,
)
# Questions about a price, and the sentences that state one.
_ASKS_PRICE = re.compile(
    r"\bhow\s+much\b|\b(?:cost|costs|price|prices|fee|fees)\b|多少钱|价格|费用|收费|资费", re.IGNORECASE
)
_STATES_PRICE = re.compile(
    rf"[¥$€£￥]\s*{_NUMBER}|{_NUMBER}\s*(?:元|块|角|yuan|rmb|cny|usd|eur|dollars?|euros?)|\bfree\b|免费",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class _Sentence:
    text: str
    order: tuple[int, int]  # (passage, position): the reading order of the quote
    terms: tuple[str, ...]
    # A table row's header row (a table chunk repeats it first): quoted with the row, which means
    # nothing without its column names.
    header: str | None = None


def _is_row(line: str) -> bool:
    """A table row as chunking renders it: "| cell | cell |" (each row is a sentence of its own)."""
    return line.startswith("|") and line.rstrip().endswith("|")


def width(text: str) -> int:
    """A text's length in units: 2 per Chinese character (or full-width sign), 1 per other character."""
    return len(text) + len(_WIDE.findall(text))


def terms(text: str) -> list[str]:
    """Matching terms: stemmed English words without stopwords, and Chinese character bigrams (a lone
    character counts on its own unless it is a function word)."""
    folded = unicodedata.normalize("NFKC", text).lower()
    found: list[str] = []
    for run in _HAN_RUN.findall(folded):
        if len(run) == 1:
            if run not in _CHINESE_STOP_CHARS:
                found.append(run)
            continue
        found.extend(
            run[n : n + 2]
            for n in range(len(run) - 1)
            if not (run[n] in _CHINESE_STOP_CHARS and run[n + 1] in _CHINESE_STOP_CHARS)
        )
    for word in _WORD.findall(_HAN_RUN.sub(" ", folded)):
        word = word.replace("’", "'")
        if word.endswith("'s"):
            word = word[:-2]
        if word not in ENGLISH_STOPWORDS:
            found.append(stem(word))
    return found


def split_sentences(text: str) -> list[str]:
    """The sentences of ``text`` with the line breaks inside them removed (a PDF's text layer breaks
    lines mid-sentence). A line that does not end in punctuation runs on into the next one."""
    joined = _join_wrapped_lines(text.strip())
    sentences: list[str] = []
    start = 0
    for match in _SENTENCE_END.finditer(joined):
        piece = joined[start : match.end()].strip()
        if piece:
            sentences.append(piece)
        start = match.end()
    tail = joined[start:].strip()
    if tail:
        sentences.append(tail)
    return [" ".join(sentence.split()) for sentence in sentences]


def _join_wrapped_lines(text: str) -> str:
    lines = text.split("\n")
    out: list[str] = []
    for line in lines:
        line = line.strip()
        if not line:
            out.append("\n\n")  # a blank line: a paragraph break
            continue
        if out and out[-1] != "\n\n":
            previous = out[-1]
            if _TERMINATOR.search(previous) or _is_row(previous) or _is_row(line):
                out.append("\n\n")
            elif not (_WIDE.match(line[0]) or _WIDE.match(previous[-1])):
                out.append(" ")
        out.append(line)
    return "".join(out)


def select(question: str, passages: list[Passage], budget: int = DEFAULT_BUDGET) -> str:
    """The sentences of ``passages`` (one document's, best first) that answer ``question``, within
    about ``budget`` units; the start of the best passage when no sentence shares a
    term with the question (it was found by meaning, not by words)."""
    sentences = _candidates(passages)
    if not sentences:
        return passages[0].text.strip() if passages else ""
    scores = _bm25(terms(question), sentences)
    if _ASKS_AMOUNT.search(question):
        scores = [
            score * _NUMBER_BOOST if _STATES_NUMBER.search(sentence.text) else score
            for score, sentence in zip(scores, sentences, strict=True)
        ]
    scores = _what_was_asked_first(question, sentences, scores)
    ranked = sorted(range(len(sentences)), key=lambda n: (-scores[n], sentences[n].order))
    best = ranked[0]
    if scores[best] <= 0.0:
        chosen = _leading(sentences, budget)
    else:
        chosen = [best]
        used = width(sentences[best].text)
        for n in ranked[1:]:
            if len(chosen) == MAX_SENTENCES or scores[n] < _KEEP_SHARE * scores[best]:
                break
            if used + width(sentences[n].text) <= budget:
                chosen.append(n)
                used += width(sentences[n].text)
    # Reading order within the best sentence's passage, then the others' (chunks of one entry overlap
    # and their rank says nothing about where they stand in it).
    lead = sentences[chosen[0]].order[0]
    chosen.sort(key=lambda n: (sentences[n].order[0] != lead, sentences[n].order))
    quoted: list[str] = []
    for n in chosen:
        header = sentences[n].header
        if header is not None and header not in quoted:
            quoted.append(header)
        if sentences[n].text not in quoted:
            quoted.append(sentences[n].text)
    return _shorten(_join(quoted), 2 * budget)


def _what_was_asked_first(question: str, sentences: list[_Sentence], scores: list[float]) -> list[float]:
    """For a question about a duration or a price: the sentences that share a term with it and state
    one rank above every other sentence (a sentence that only repeats the question's words cannot
    answer "how long"); their own order is kept."""
    for asks, states in ((_ASKS_DURATION, _STATES_DURATION), (_ASKS_PRICE, _STATES_PRICE)):
        if not asks.search(question):
            continue
        answering = [n for n, sentence in enumerate(sentences) if scores[n] > 0 and states.search(sentence.text)]
        if answering:
            lift = max(scores)
            return [score + lift if n in answering else score for n, score in enumerate(scores)]
    return scores


def _candidates(passages: list[Passage]) -> list[_Sentence]:
    """Every sentence once (chunks of one document overlap), without the FAQ question or heading that
    opens a chunk: a quote answers, it does not repeat the question."""
    skip = {_key(text) for passage in passages for text in (passage.title, passage.section or "") if text}
    seen: set[str] = set()
    sentences: list[_Sentence] = []
    for p, passage in enumerate(passages):
        header: str | None = None
        for s, text in enumerate(split_sentences(passage.text)):
            row_header = header if _is_row(text) else None
            if header is None and _is_row(text):
                header = text
            key = _key(text)
            if not key or key in seen or key in skip or _QUESTION_END.search(text):
                continue
            seen.add(key)
            sentences.append(_Sentence(text, (p, s), tuple(terms(text)), row_header))
    return sentences


def _key(text: str) -> str:
    return "".join(ch for ch in unicodedata.normalize("NFKC", text).casefold() if ch.isalnum())


def _bm25(query: list[str], sentences: list[_Sentence]) -> list[float]:
    """BM25 of each sentence for the query's distinct terms, with idf over the candidate sentences."""
    count = len(sentences)
    average = sum(len(sentence.terms) for sentence in sentences) / count or 1.0
    frequency = Counter(term for sentence in sentences for term in set(sentence.terms))
    wanted = list(dict.fromkeys(query))
    scores = []
    for sentence in sentences:
        tf = Counter(sentence.terms)
        norm = _BM25_K1 * (1 - _BM25_B + _BM25_B * len(sentence.terms) / average)
        score = 0.0
        for term in wanted:
            if tf[term]:
                idf = math.log(1 + (count - frequency[term] + 0.5) / (frequency[term] + 0.5))
                score += idf * tf[term] * (_BM25_K1 + 1) / (tf[term] + norm)
        scores.append(score)
    return scores


def _leading(sentences: list[_Sentence], budget: int) -> list[int]:
    """The first sentences of the best passage, within the budget (always at least one)."""
    chosen: list[int] = []
    used = 0
    for n, sentence in enumerate(sentences):
        if sentence.order[0] != 0 or (chosen and used + width(sentence.text) > budget):
            break
        chosen.append(n)
        used += width(sentence.text)
    return chosen or [0]


def _join(sentences: list[str]) -> str:
    text = ""
    for sentence in sentences:
        if text:
            if _is_row(sentence):
                text += "\n"
            elif not (_WIDE.search(text[-1]) and _WIDE.search(sentence[0])):
                text += " "
        text += sentence
    return text


def _shorten(text: str, limit: int) -> str:
    """Cut a run-on quote (a table row, a text layer without punctuation) at a clause boundary."""
    if width(text) <= limit:
        return text
    cut = 0
    used = 0
    for n, char in enumerate(text):
        used += width(char)
        if used > limit:
            break
        if char in "，,；;、 ":
            cut = n
    cut = cut or n
    return text[:cut].rstrip("，,；;、 ") + "…"
