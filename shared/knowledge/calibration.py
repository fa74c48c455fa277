"""Calibrating a tenant's "no good answer" threshold.

Scores are absolute (see scoring.py), but how high an off-topic question scores depends on the
tenant's knowledge: a large knowledge base about many things gives every question some partial match.
Calibration measures that for the tenant, through the same search path the bot uses (same weight, same
reranker): it runs off-topic probes (probes.py, or the tenant's own examples of questions it must not
answer) and sets the threshold just above the score of the ``target_decline`` quantile of them, so that
share of such questions is declined. Generic probes are easier to decline than the near-miss questions
real visitors ask (HINT3 in docs/quality.md), so the result is never below a floor: the deployment's
default threshold (Settings.min_answer_score), unless the request gives another ``minThreshold``.
Calibration therefore raises the threshold for knowledge bases where off-topic questions score high
(large, varied ones) and keeps the default elsewhere. The tenant's own questions (FAQ questions,
titles, or examples it gives) are run too, and the share that would still be answered is reported: if
calibration would silence the knowledge base itself, the report says so.
"""

from __future__ import annotations

import math
import time
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from pydantic.alias_generators import to_camel

from shared.knowledge.config import RetrievalConfig
from shared.knowledge.probes import OFF_TOPIC
from shared.knowledge.service import KnowledgeService

MIN_THRESHOLD = 0.05
MAX_THRESHOLD = 0.95
# A probe is a question: blank ones are refused (422), not searched.
Probe = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2000)]
# Added above the quantile's score so that the quantile itself is declined (scores are rounded to 1e-4).
STEP = 0.0001


class CalibrationRequest(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")

    # Questions the tenant must not answer; default: kefu's generic off-topic probes (English + Chinese).
    off_topic: list[Probe] | None = Field(default=None, min_length=5, max_length=2000)
    # Questions the tenant must answer; default: questions taken from its own knowledge.
    in_scope: list[Probe] | None = Field(default=None, min_length=1, max_length=2000)
    # Share of off-topic questions to decline.
    target_decline: float = Field(default=0.9, ge=0.5, le=0.99)
    # The threshold is never set below this; None: the deployment default (Settings.min_answer_score).
    min_threshold: float | None = Field(default=None, ge=0.0, le=MAX_THRESHOLD)
    apply: bool = True


class CalibrationReport(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)

    threshold: float
    previous_threshold: float
    # The probes alone would have given this; the threshold is it or the floor, whichever is higher.
    probe_threshold: float
    floor: float
    off_topic_questions: int
    off_topic_decline_rate: float
    in_scope_questions: int
    in_scope_answer_rate: float | None
    knowledge_version: str
    applied: bool
    warnings: list[str] = Field(default_factory=list)


def threshold_for_decline(scores: list[float], target_decline: float) -> float:
    """The lowest threshold under which at least ``target_decline`` of ``scores`` fall."""
    if not scores:
        raise ValueError("no scores to calibrate on")
    ordered = sorted(scores)
    index = max(0, math.ceil(target_decline * len(ordered)) - 1)
    return min(MAX_THRESHOLD, max(MIN_THRESHOLD, round(ordered[index] + STEP, 4)))


def _best_scores(
    service: KnowledgeService, tenant_id: str, config: RetrievalConfig, questions: list[str]
) -> list[float]:
    scores = []
    for question in questions:
        outcome = service.search(tenant_id, config, question, 1, include_below_threshold=True)
        scores.append(outcome.best_score or 0.0)
    return scores


def calibrate(
    service: KnowledgeService,
    tenant_id: str,
    config: RetrievalConfig,
    request: CalibrationRequest,
    in_scope_limit: int = 200,
) -> tuple[CalibrationReport, RetrievalConfig]:
    """Measure and return the report and the config with the new threshold (stored by the caller)."""
    probes = [q for q in (request.off_topic or list(OFF_TOPIC)) if q.strip()]
    own = request.in_scope or service.index.sample_questions(tenant_id, in_scope_limit)
    version = service.index.version(tenant_id)
    off_scores = _best_scores(service, tenant_id, config, probes)
    probe_threshold = threshold_for_decline(off_scores, request.target_decline)
    floor = request.min_threshold if request.min_threshold is not None else service.default_threshold
    threshold = max(probe_threshold, floor)
    in_scores = _best_scores(service, tenant_id, config, [q for q in own if q.strip()])
    warnings = []
    answer_rate = sum(s >= threshold for s in in_scores) / len(in_scores) if in_scores else None
    if answer_rate is None:
        warnings.append("the knowledge base has no questions to check the threshold against (is it empty?)")
    elif answer_rate < 0.9:
        warnings.append(
            f"only {answer_rate:.0%} of the knowledge base's own questions score above the threshold: the "
            "off-topic examples look like the knowledge itself; check them or lower targetDecline"
        )
    report = CalibrationReport(
        threshold=threshold,
        previous_threshold=service.threshold_for(config),
        probe_threshold=probe_threshold,
        floor=floor,
        off_topic_questions=len(off_scores),
        off_topic_decline_rate=round(sum(s < threshold for s in off_scores) / len(off_scores), 4),
        in_scope_questions=len(in_scores),
        in_scope_answer_rate=None if answer_rate is None else round(answer_rate, 4),
        knowledge_version=version,
        applied=request.apply,
        warnings=warnings,
    )
    updated = config.model_copy(
        update={
            "min_answer_score": threshold,
            "calibrated_at": int(time.time() * 1000),
            "calibration_decline_rate": report.off_topic_decline_rate,
        }
    )
    return report, updated
