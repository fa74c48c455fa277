"""Jobs the generate function could not settle (its dead-letter queue): list them, send them back."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from shared.admin.deps import PlatformOnly
from shared.config_section import CamelModel
from shared.wire.dead_letters import DeadLetter, DeadLetters
from shared.wiring import dead_letters

router = APIRouter(prefix="/v1/dead-letters", tags=["operations"], dependencies=[PlatformOnly])


class DeadLetterList(CamelModel):
    # SQS's approximate count of the whole queue; ``jobs`` holds at most ``limit`` of them.
    count: int
    jobs: list[DeadLetter]


class Redriven(CamelModel):
    redriven: int
    jobs: list[DeadLetter]


def _dead_letters() -> DeadLetters:
    return dead_letters()


Letters = Annotated[DeadLetters, Depends(_dead_letters)]
Limit = Annotated[int, Query(ge=1, le=100)]


@router.get("", response_model=DeadLetterList, response_model_by_alias=True)
def list_dead_letters(letters: Letters, limit: Limit = 20) -> DeadLetterList:
    """Jobs the generate function gave up on (they stay in the queue)."""
    return DeadLetterList(count=letters.count(), jobs=letters.peek(limit))


@router.post("/redrive", response_model=Redriven, response_model_by_alias=True)
def redrive_dead_letters(letters: Letters, limit: Limit = 100) -> Redriven:
    """Send up to ``limit`` jobs back to the generate queue; a job answered meanwhile is skipped there."""
    moved = letters.redrive(limit)
    return Redriven(redriven=len(moved), jobs=moved)
