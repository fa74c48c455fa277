"""Where one answer's text comes from: the answer cache, an identical question being answered right
now, or the model. If the leader gives up before a follower saw any text, the follower asks the model
itself. Cached and shared answers go through the same frame coalescer as fresh ones (the caller's),
so they stream like fresh ones."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from shared.errors import UpstreamError
from shared.model.answer_cache import AnswerCache, Flight, FlightAbandoned, SoloFlight
from shared.model.answer_keys import AnswerKey
from shared.model.answer_model import ModelUsage, close_stream
from shared.model.language import split_into_pieces
from shared.observability import logger

# Stored before the text of an answer the model declined (shared/model/no_answer.py), so a reused answer still
# counts as having no good source.
_DECLINED = "\x00kefu:declined\x00"


class AnswerSource:
    """The pieces of one answer and where they come from: ``origin`` is "cache" (a cached answer),
    "shared" (an identical question answered right now) or "model" (asked fresh, and shared with
    followers). ``usage`` is the model's, when it was asked; ``declined`` whether the model said the
    passages do not answer the question (known once the pieces are consumed)."""

    def __init__(
        self, cache: AnswerCache, key: AnswerKey | None, ask: Callable[[], Iterator[str]], owner: str = ""
    ) -> None:
        self._ask = ask
        self._cache, self._key = cache, key
        self._stream: Iterator[str] | None = None
        self._flight: Flight = SoloFlight()
        self._stored_declined: bool | None = None
        self.origin = "model"
        cached = cache.get(key) if key is not None else None
        if cached is not None:
            self.origin = "cache"
            self._stored_declined = cached.startswith(_DECLINED)
            self.pieces: Iterator[str] = iter(split_into_pieces(cached.removeprefix(_DECLINED)))
            return
        if key is not None:
            self._flight = cache.join(key, owner)
        if self._flight.leader:
            self.pieces = self._fresh()
        else:
            self.origin = "shared"
            self.pieces = self._follow()

    @property
    def usage(self) -> ModelUsage | None:
        usage = getattr(self._stream, "usage", None)
        return usage if isinstance(usage, ModelUsage) else None

    @property
    def declined(self) -> bool:
        if self.origin == "model":
            return bool(self.usage and self.usage.declined)
        if self._stored_declined is None and self._key is not None:
            # A follower: the leader stored its answer (marked) before ending the flight.
            stored = self._cache.get(self._key)
            self._stored_declined = stored is not None and stored.startswith(_DECLINED)
        return bool(self._stored_declined)

    def _fresh(self) -> Iterator[str]:
        self._stream = self._ask()
        try:
            yield from self._stream
        finally:
            close_stream(self._stream)

    def _follow(self) -> Iterator[str]:
        shown = False
        try:
            for piece in self._flight.follow():
                shown = True
                yield piece
            return
        except FlightAbandoned as exc:
            if shown:
                raise UpstreamError(f"the shared answer broke off: {exc}") from None
            if exc.model_unavailable:
                # The same model just spent its whole budget on this question: not a second one.
                raise UpstreamError(f"the shared answer never started: {exc}") from None
            logger.info("shared answer abandoned; asking the model", extra={"reason": str(exc)})
        self.origin = "model"
        self._flight = SoloFlight()
        yield from self._fresh()

    def published(self, text: str) -> None:
        if self._flight.leader:
            self._flight.publish(text)

    def finish(self, text: str) -> None:
        if self._flight.leader:
            self._flight.finish(_DECLINED + text if self.declined else text)

    def abandon(self, *, model_unavailable: bool = False) -> None:
        if self._flight.leader:
            self._flight.abandon(model_unavailable=model_unavailable)
