"""Where one answer's text comes from: the cache, a flight being answered now, or the model."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from shared.chat.answer_source import AnswerSource
from shared.errors import UpstreamError
from shared.model.answer_cache import NoAnswerCache
from shared.model.answer_cache_memory import InMemoryAnswerCache
from shared.model.answer_model import AnswerStream, ModelUsage
from tests.unit.test_model_answer_cache import key


class Model:
    def __init__(self, pieces: list[str]) -> None:
        self.pieces = pieces
        self.asked = 0

    def __call__(self) -> Iterator[str]:
        self.asked += 1
        return AnswerStream(iter(self.pieces), ModelUsage(provider="openai", model="m", output_tokens=len(self.pieces)))


def test_without_a_key_the_model_is_asked_and_nothing_is_shared() -> None:
    model = Model(["a", "b"])
    source = AnswerSource(InMemoryAnswerCache(60), None, model)

    assert "".join(source.pieces) == "ab" and source.origin == "model"
    assert source.usage is not None and source.usage.output_tokens == 2


def test_a_cached_answer_streams_in_several_pieces_without_asking_the_model() -> None:
    cache, model = InMemoryAnswerCache(60), Model(["unused"])
    cache.join(key()).finish("You can return any item within 30 days.")

    source = AnswerSource(cache, key(), model)
    pieces = list(source.pieces)

    assert "".join(pieces) == "You can return any item within 30 days." and len(pieces) > 3
    assert source.origin == "cache" and model.asked == 0 and source.usage is None


def test_a_second_identical_question_follows_the_first_instead_of_asking_the_model() -> None:
    cache, model = InMemoryAnswerCache(60), Model(["x"])
    first = AnswerSource(cache, key(), Model(["Two ", "days."]))
    second = AnswerSource(cache, key(), model)
    assert first.origin == "model" and second.origin == "shared"

    for piece in first.pieces:
        first.published(piece)  # what the generator does as each frame is sent
    first.finish("Two days.")

    assert "".join(second.pieces) == "Two days." and model.asked == 0


def test_a_follower_asks_the_model_itself_when_the_leader_fails_before_any_text() -> None:
    cache, model = InMemoryAnswerCache(60), Model(["own ", "answer"])
    first = AnswerSource(cache, key(), Model(["x"]))
    second = AnswerSource(cache, key(), model)

    first.abandon()

    assert "".join(second.pieces) == "own answer" and model.asked == 1 and second.origin == "model"


def test_a_follower_that_already_showed_text_fails_when_the_leader_breaks_off() -> None:
    cache = InMemoryAnswerCache(60)
    first, second = AnswerSource(cache, key(), Model(["x"])), AnswerSource(cache, key(), Model(["y"]))
    first.published("Two ")
    first.abandon()

    pieces = second.pieces
    assert next(pieces) == "Two "
    with pytest.raises(UpstreamError, match="broke off"):
        next(pieces)


def test_no_cache_always_asks_the_model() -> None:
    model = Model(["a"])
    for _ in range(2):
        source = AnswerSource(NoAnswerCache(), key(), model)
        assert "".join(source.pieces) == "a"
        source.finish("a")
    assert model.asked == 2


class DecliningModel(Model):
    """A model whose reply carried the no-answer marker: its usage says so once the pieces are read."""

    def __call__(self) -> Iterator[str]:
        self.asked += 1
        usage = ModelUsage(provider="openai", model="m")

        def pieces() -> Iterator[str]:
            yield from self.pieces
            usage.declined = True

        return AnswerStream(pieces(), usage)


def test_a_declined_answer_stays_declined_when_followed_or_reused_and_its_marker_is_never_shown() -> None:
    cache = InMemoryAnswerCache(60)
    leader = AnswerSource(cache, key(), DecliningModel(["Sorry, ", "I don't know."]))
    follower = AnswerSource(cache, key(), Model(["unused"]))
    for piece in leader.pieces:
        leader.published(piece)
    leader.finish("Sorry, I don't know.")
    followed = "".join(follower.pieces)
    reused = AnswerSource(cache, key(), Model(["unused"]))

    assert (leader.origin, follower.origin, reused.origin) == ("model", "shared", "cache")
    assert followed == "".join(reused.pieces) == "Sorry, I don't know."
    assert leader.declined and follower.declined and reused.declined


def test_an_answer_the_model_did_not_decline_is_not_declined_anywhere() -> None:
    cache = InMemoryAnswerCache(60)
    leader = AnswerSource(cache, key(), Model(["Two ", "days."]))
    follower = AnswerSource(cache, key(), Model(["unused"]))
    for piece in leader.pieces:
        leader.published(piece)
    leader.finish("Two days.")
    "".join(follower.pieces)

    assert not leader.declined and not follower.declined and not AnswerSource(cache, key(), Model([])).declined
