"""The default answer model: quotes the best passage of the knowledge base. Needs no language model."""

from __future__ import annotations

from collections.abc import Iterator

from shared.knowledge.base import Passage
from shared.model.base import Answer, AnswerModel, Turn
from shared.model.language import Language, detect_language, split_into_pieces

_QUOTE: dict[Language, str] = {
    "en": 'From our help centre ("{title}"): {text}',
    "zh": "来自我们的帮助中心（“{title}”）：{text}",
}
_NOT_FOUND: dict[Language, str] = {
    "en": "Sorry, I could not find that in our help centre. You can rephrase, or ask for a human agent.",
    "zh": "抱歉，我在帮助中心没有找到相关内容。您可以换个说法再问，或者请求人工客服。",
}


class ExtractiveModel(AnswerModel):
    """Answers with the best-scoring passage, verbatim and labelled as a quote, or says it does not know.

    It never invents text, so it is safe as the default; it ignores the history (it cannot resolve
    follow-up questions such as "and how much is it?").
    """

    def __init__(self, min_answer_score: float, language: str = "auto") -> None:
        self._min_answer_score = min_answer_score
        # "auto" follows the question; a tag starting with zh or en fixes the answer's language (the
        # quote itself stays in the passage's language).
        tag = language.lower()
        self._language: Language | None = "zh" if tag.startswith("zh") else "en" if tag.startswith("en") else None

    def plan(self, question: str, passages: list[Passage]) -> Answer:
        best = max(passages, key=lambda passage: passage.score, default=None)
        if best is None or best.score < self._min_answer_score:
            return Answer(citations=[])
        return Answer(citations=[best])

    def stream(self, question: str, answer: Answer, history: list[Turn]) -> Iterator[str]:
        language = self._language or detect_language(question)
        if answer.citations:
            passage = answer.citations[0]
            text = _QUOTE[language].format(title=passage.title.strip(), text=passage.text.strip())
        else:
            text = _NOT_FOUND[language]
        yield from split_into_pieces(text)
