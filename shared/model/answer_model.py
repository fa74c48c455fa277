"""The model port: a question, the retrieved passages and recent turns in; streamed text out."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel

from shared.knowledge.base import Passage


class Turn(BaseModel):
    """One earlier message of the conversation, as context for the model."""

    role: Literal["visitor", "bot", "agent"]
    text: str


class Answer(BaseModel):
    """What the model decided to cite, known before the first token is streamed."""

    citations: list[Passage]


@dataclass
class ModelUsage:
    """What one answer cost, as far as the provider reported it (filled in while streaming).

    ``provider``/``model`` name the target that actually answered (after retries and fallbacks);
    token counts stay None when the provider did not report them.
    """

    provider: str
    model: str
    input_tokens: int | None = None
    output_tokens: int | None = None
    # Attempts that failed before this target answered (retries and fallbacks), for metrics.
    failed_attempts: int = 0
    fallback: bool = False
    # The model said the passages do not answer the question (its NO_ANSWER marker, no_answer.py):
    # the answer counts as having no good source, for handoff and metrics.
    declined: bool = False


class AnswerStream(Iterator[str]):
    """The pieces of one answer, with the ``usage`` the provider reported once they are consumed.

    ``close()`` stops the work behind the stream (the HTTP request or AWS event stream), like closing
    a generator; the frame coalescer calls it when the visitor is gone.
    """

    def __init__(self, pieces: Iterator[str], usage: ModelUsage) -> None:
        self._pieces = pieces
        self.usage = usage

    def __iter__(self) -> AnswerStream:
        return self

    def __next__(self) -> str:
        return next(self._pieces)

    def close(self) -> None:
        close_stream(self._pieces)


class AnswerModel(ABC):
    """Streams a grounded answer. ``plan`` picks the passages to cite; ``stream`` yields text pieces.

    Markers such as ``[2]`` in the streamed text refer to ``answer.citations[1]`` (numbered from 1, in
    order). Closing the ``stream`` iterator early must stop the work behind it (e.g. an HTTP request).
    Adapters that know what an answer cost return an ``AnswerStream``.
    """

    @abstractmethod
    def plan(self, question: str, passages: list[Passage]) -> Answer: ...

    @abstractmethod
    def stream(self, question: str, answer: Answer, history: list[Turn]) -> Iterator[str]: ...


def close_stream(stream: object) -> None:
    """Close an iterator that can be closed (a generator, a model's stream and its HTTP request)."""
    close = getattr(stream, "close", None)
    if close is not None:
        close()
