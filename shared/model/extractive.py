"""The default answer model: quotes the sentences of the knowledge base that answer the question.
Needs no language model."""

from __future__ import annotations

from collections.abc import Iterator

from shared.knowledge.base import Passage
from shared.model.answer_model import Answer, AnswerModel, Turn
from shared.model.language import Language, detect_language, split_into_pieces
from shared.model.no_answer import not_found_text
from shared.model.sentences import DEFAULT_BUDGET, select, width

_QUOTE: dict[Language, str] = {
    "en": 'From our help centre ("{title}"): {text}',
    "zh": "来自我们的帮助中心（“{title}”）：{text}",
}


class ExtractiveModel(AnswerModel):
    """Answers with the sentences of the best-scoring document that answer the question (sentences.py),
    verbatim and labelled as a quote, or says it does not know.

    The sentences may come from any of that document's retrieved passages: a long entry is
    cut into overlapping chunks, and the chunk that ranks first is not always the one holding the fact
    asked for. One entry is cited. It never invents text, so it is safe as the default; it ignores the
    history (it cannot resolve follow-up questions such as "and how much is it?").
    """

    def __init__(self, min_answer_score: float, language: str = "auto") -> None:
        self._min_answer_score = min_answer_score
        # "auto" follows the question; a tag starting with zh or en fixes the answer's language (the
        # quote itself stays in the passage's language).
        tag = language.lower()
        self._language: Language | None = "zh" if tag.startswith("zh") else "en" if tag.startswith("en") else None

    def plan(self, question: str, passages: list[Passage]) -> Answer:
        """Cites the best passage's document, its ``text`` narrowed to the quoted sentences (so the
        citation's snippet shows them)."""
        best = max(passages, key=lambda passage: passage.score, default=None)
        if best is None or best.score < self._min_answer_score:
            return Answer(citations=[])
        # The entry cleared the threshold: all of its retrieved chunks are its text.
        same_entry = sorted(
            (p for p in passages if p.document_id == best.document_id),
            key=lambda passage: passage.score,
            reverse=True,
        )
        return Answer(citations=[best.model_copy(update={"text": select(question, same_entry)})])

    def stream(self, question: str, answer: Answer, history: list[Turn]) -> Iterator[str]:
        language = self._language or detect_language(question)
        if answer.citations:
            passage = answer.citations[0]
            text = passage.text.strip()
            if width(text) > DEFAULT_BUDGET:
                # Another model's plan (this one as a fallback) cites whole passages: quote what answers.
                text = select(question, [passage])
            text = _QUOTE[language].format(title=passage.title.strip(), text=text)
        else:
            text = not_found_text(language)
        yield from split_into_pieces(text)
