"""Calibrating a tenant's "no good answer" threshold from its own knowledge, on every upload.

Scores are absolute (scoring.py), but how high an off-topic question scores depends on the tenant's
knowledge: a FAQ about one narrow thing leaves small talk far below its questions; a large or
repetitive one gives every question some partial match. Calibration measures that for the tenant,
through the same search path the bot uses (same weight, entry model, reranker), on two kinds of
questions it must not answer, in the languages of the tenant's knowledge:

- kefu's generic off-topic probes (probes.py: small talk, general knowledge, other domains);
- near misses of the tenant's own domain: each generic probe with one salient word of one of the
  tenant's questions or titles ("宽带 今天天气怎么样", "refund tell me a joke"). Real out-of-scope
  traffic mentions the shop's words without asking anything its knowledge answers; these probes
  score like it (docs/quality.md compares their 90th percentile with real out-of-scope questions).

The threshold declines ``target_decline`` of both together (default 0.9), with no deployment floor
over it. ``kefu calibrate --target-decline`` (or the admin API) moves the trade-off and is kept with
the tenant, so the next upload recalibrates with it. The report gives the expected decline rate (on
the probes) and the expected answer rate on the tenant's own questions reworded (every third word or
character dropped: a paraphrase made from them) and as written. The tenant may give its own examples
(``offTopic``, ``inScope``): those are used instead and, since they are not stored, switch automatic
recalibration off until a calibration without them.
"""

from __future__ import annotations

import math
import re
import time
from typing import Annotated

from pydantic import Field, StringConstraints

from shared.config_section import CamelModel, ConfigSection
from shared.knowledge.probes import OFF_TOPIC_EN, OFF_TOPIC_ZH
from shared.knowledge.search import KnowledgeService
from shared.knowledge.text import has_cjk, tokenize
from shared.tenant_config.retrieval import DEFAULT_TARGET_DECLINE, RetrievalConfig

MIN_THRESHOLD = 0.05
MAX_THRESHOLD = 0.95
# A probe is a question: blank ones are refused (422), not searched.
Probe = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2000)]
# Added above the quantile's score so that the quantile itself is declined (scores are rounded to 1e-4).
STEP = 0.0001


class CalibrationRequest(ConfigSection):

    # Questions the tenant must not answer; default: kefu's generic off-topic probes (English + Chinese).
    off_topic: list[Probe] | None = Field(default=None, min_length=5, max_length=2000)
    # Questions the tenant must answer; default: questions taken from its own knowledge.
    in_scope: list[Probe] | None = Field(default=None, min_length=1, max_length=2000)
    # Share of off-topic questions to decline; None: the tenant's stored choice, else 0.9.
    target_decline: float | None = Field(default=None, ge=0.5, le=0.99)
    # The threshold is never set below this (none by default: the tenant's own knowledge decides).
    min_threshold: float | None = Field(default=None, ge=0.0, le=MAX_THRESHOLD)
    apply: bool = True


class TradeoffPoint(CamelModel):
    target_decline: float
    threshold: float
    paraphrase_answer_rate: float | None


class CalibrationReport(CamelModel):
    threshold: float
    previous_threshold: float
    target_decline: float
    # The off-topic questions alone gave this; the threshold is it or minThreshold, whichever is higher.
    probe_threshold: float
    floor: float | None
    languages: list[str]
    off_topic_questions: int
    off_topic_decline_rate: float
    # Of those, the near misses made from the tenant's own words (none with offTopic examples).
    near_miss_questions: int
    near_miss_decline_rate: float | None
    in_scope_questions: int
    # The tenant's questions as written (or its inScope examples) that would be answered...
    in_scope_answer_rate: float | None
    # ...and reworded (a word or character in three dropped): closer to how visitors ask.
    paraphrase_answer_rate: float | None
    # The expected answer rate at other decline targets (what moving the trade-off would do).
    tradeoff: list[TradeoffPoint] = Field(default_factory=list)
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


def knowledge_languages(questions: list[str]) -> list[str]:
    """ "zh" and/or "en": the languages the tenant's questions are written in (English when unsure)."""
    chinese = sum(has_cjk(q) for q in questions)
    latin = sum(bool(_LATIN_WORD.search(q)) and not has_cjk(q) for q in questions)
    languages = [lang for lang, count in (("zh", chinese), ("en", latin)) if count >= max(1, 0.1 * len(questions))]
    return languages or ["en"]


_LATIN_WORD = re.compile(r"[A-Za-z]{3,}")


def generic_probes(languages: list[str]) -> list[str]:
    return [q for lang in languages for q in (OFF_TOPIC_ZH if lang == "zh" else OFF_TOPIC_EN)]


def salient_word(question: str) -> str | None:
    """The question's longest BM25 word (its most specific one, usually a noun of the domain)."""
    words = [t for t in tokenize(question) if ":" not in t and len(t) >= 2]
    return max(words, key=len) if words else None


def near_miss_probes(questions: list[str], probes: list[str]) -> list[str]:
    """Each probe with a salient word of one of the tenant's questions in the probe's language, in turn
    before and after it (a bilingual knowledge base gets Chinese near misses and English ones)."""
    words = {
        chinese: list(dict.fromkeys(w for w in map(salient_word, questions) if w and has_cjk(w) == chinese))
        for chinese in (True, False)
    }
    near = []
    for n, probe in enumerate(probes):
        pool = words[has_cjk(probe)] or words[not has_cjk(probe)]
        if pool:
            word = pool[n % len(pool)]
            near.append(f"{word} {probe}" if n % 2 else f"{probe} {word}")
    return near


_PIECE = re.compile(r"[\u3400-\u9fff]|[^\W_]+")


def reword(question: str) -> str:
    """A paraphrase made from a question: every third word (Chinese: character) dropped."""
    pieces = _PIECE.findall(question)
    kept = [piece for n, piece in enumerate(pieces) if n % 3 != 1 or len(pieces) < 3]
    return ("" if has_cjk(question) else " ").join(kept)


def _rate(scores: list[float], threshold: float, above: bool) -> float | None:
    if not scores:
        return None
    return round(sum((s >= threshold) == above for s in scores) / len(scores), 4)


TRADEOFF_TARGETS = (0.7, 0.8, 0.9, 0.95)


def calibrate(
    service: KnowledgeService,
    tenant_id: str,
    config: RetrievalConfig,
    request: CalibrationRequest,
    in_scope_limit: int = 200,
) -> tuple[CalibrationReport, RetrievalConfig]:
    """Measure and return the report and the config with the new threshold (stored by the caller)."""
    own = [q for q in (request.in_scope or service.index.sample_questions(tenant_id, in_scope_limit)) if q.strip()]
    knowledge_questions = own if request.in_scope is None else service.index.sample_questions(tenant_id, in_scope_limit)
    languages = knowledge_languages(knowledge_questions or own)
    target = request.target_decline or config.target_decline or DEFAULT_TARGET_DECLINE
    version = service.index.version(tenant_id)
    if request.off_topic:
        generic, near = [q for q in request.off_topic if q.strip()], []
    else:
        generic = generic_probes(languages)
        near = near_miss_probes(knowledge_questions, generic)
    generic_scores = _best_scores(service, tenant_id, config, generic)
    near_scores = _best_scores(service, tenant_id, config, near)
    off_scores = generic_scores + near_scores
    probe_threshold = threshold_for_decline(off_scores, target)
    floor = request.min_threshold
    threshold = max(probe_threshold, floor) if floor is not None else probe_threshold
    in_scores = _best_scores(service, tenant_id, config, own)
    reworded = [r for r in map(reword, own) if r.strip()] if request.in_scope is None else []
    paraphrase_scores = _best_scores(service, tenant_id, config, reworded)
    answer_rate = _rate(in_scores, threshold, above=True)
    warnings = []
    if answer_rate is None:
        warnings.append("the knowledge base has no questions to check the threshold against (is it empty?)")
    elif answer_rate < 0.9:
        warnings.append(
            f"only {answer_rate:.0%} of the knowledge base's own questions score above the threshold: the "
            "off-topic examples look like the knowledge itself; check them or lower targetDecline"
        )
    tradeoff = []
    for point in TRADEOFF_TARGETS:
        at = threshold_for_decline(off_scores, point)
        tradeoff.append(
            TradeoffPoint(target_decline=point, threshold=at, paraphrase_answer_rate=_rate(paraphrase_scores, at, True))
        )
    report = CalibrationReport(
        threshold=threshold,
        previous_threshold=service.threshold_for(config),
        target_decline=target,
        probe_threshold=probe_threshold,
        floor=floor,
        languages=languages,
        off_topic_questions=len(off_scores),
        off_topic_decline_rate=_rate(off_scores, threshold, above=False) or 0.0,
        near_miss_questions=len(near_scores),
        near_miss_decline_rate=_rate(near_scores, threshold, above=False),
        in_scope_questions=len(in_scores),
        in_scope_answer_rate=answer_rate,
        paraphrase_answer_rate=_rate(paraphrase_scores, threshold, above=True),
        tradeoff=tradeoff,
        knowledge_version=version,
        applied=request.apply,
        warnings=warnings,
    )
    custom = request.off_topic is not None or request.in_scope is not None or request.min_threshold is not None
    updated = config.model_copy(
        update={
            "min_answer_score": threshold,
            "calibrated_at": int(time.time() * 1000),
            "calibration_decline_rate": report.off_topic_decline_rate,
            "target_decline": target,
            # Examples and floors given once are not stored: an upload must not silently drop them.
            "auto_calibrate": not custom,
        }
    )
    return report, updated
