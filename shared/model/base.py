"""The model port: a question, the retrieved passages and recent turns in; streamed text out."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
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


class AnswerModel(ABC):
    """Streams a grounded answer. ``plan`` picks the passages to cite; ``stream`` yields text pieces.

    Markers such as ``[2]`` in the streamed text refer to ``answer.citations[1]`` (numbered from 1, in
    order). Closing the ``stream`` iterator early must stop the work behind it (e.g. an HTTP request).
    """

    @abstractmethod
    def plan(self, question: str, passages: list[Passage]) -> Answer: ...

    @abstractmethod
    def stream(self, question: str, answer: Answer, history: list[Turn]) -> Iterator[str]: ...
