"""Monthly quotas per tenant: visitor questions and model tokens (docs/protocol.md "Limits").

Counted where the work happens: the message function counts a question before anything is stored or
queued, and refuses it with ``quota_exceeded`` once the month's questions or tokens are spent; the
generate function adds each answer's tokens (from the usage it already records) afterwards, so the
token quota is checked on the next question (an answer in flight is never cut for it).

The counters live in the DynamoDB ``limits`` table beside the rate counters, one item per tenant and
calendar month (UTC): the question is one conditional atomic ``ADD`` (exact at any concurrency: the
condition refuses it once a limit is reached, and a refused question is not counted), an answer one
unconditional ``ADD`` per item. A question the counter cannot be written for goes through uncounted.
Not the tenants table: its item holds the configuration every
function reads (and caches), and hot counters there would make every question rewrite it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from shared.errors import Throttled
from shared.observability import logger
from shared.tenant_config.quota import QuotaConfig

# Where an answer's text came from (AnswerRecord.source): only "model" spends model tokens.
ANSWER_SOURCES = ("model", "cache", "shared")
# Usage items are kept this long after their month (the admin API shows last year's months too).
_KEEP = timedelta(days=400)


class QuotaExceeded(Throttled):
    code = "quota_exceeded"


@dataclass(frozen=True)
class MonthlyQuota:
    """The quotas in force for one tenant (0: unlimited)."""

    questions: int = 0
    tokens: int = 0


def quota_for(plan: QuotaConfig | None, default: MonthlyQuota) -> MonthlyQuota:
    """A tenant's plan over the deployment's defaults."""
    questions = plan.questions_per_month if plan is not None else None
    tokens = plan.tokens_per_month if plan is not None else None
    return MonthlyQuota(
        questions=default.questions if questions is None else questions,
        tokens=default.tokens if tokens is None else tokens,
    )


@dataclass
class SourceUsage:
    answers: int = 0
    input_tokens: int = 0
    output_tokens: int = 0


@dataclass
class MonthUsage:
    questions: int = 0
    answers: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    by_source: dict[str, SourceUsage] = field(default_factory=dict)

    @property
    def tokens(self) -> int:
        return self.input_tokens + self.output_tokens


def month_of(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m")


class UsageLedger(ABC):
    """Per-tenant monthly counters shared by every function instance."""

    @abstractmethod
    def count_question(self, tenant_id: str, month: str, quota: MonthlyQuota) -> None:
        """Count one question, or raise QuotaExceeded (and count nothing) when a quota is spent."""

    @abstractmethod
    def add_answer(self, tenant_id: str, month: str, source: str, input_tokens: int, output_tokens: int) -> None:
        """Count one answer and its tokens (tokens count against the quota only from the model)."""

    @abstractmethod
    def usage(self, tenant_id: str, month: str) -> MonthUsage: ...


def quota_refusal(quota: MonthlyQuota, usage: MonthUsage) -> QuotaExceeded:
    """The error naming the quota that is spent."""
    if quota.questions and usage.questions >= quota.questions:
        return QuotaExceeded(
            f"this assistant's monthly quota of {quota.questions} questions is used up; please contact the site"
        )
    return QuotaExceeded(
        f"this assistant's monthly quota of {quota.tokens} model tokens is used up; please contact the site"
    )


def _expiry(month: str) -> datetime:
    return datetime.strptime(month, "%Y-%m").replace(tzinfo=UTC) + _KEEP


class DynamoUsageLedger(UsageLedger):
    """Counters in the limits table (``UsageCounterModel``)."""

    def count_question(self, tenant_id: str, month: str, quota: MonthlyQuota) -> None:
        from pynamodb.exceptions import UpdateError

        from shared.state.tables import UsageCounterModel as Usage

        condition: Any = None
        if quota.questions:
            condition = Usage.questions.does_not_exist() | (Usage.questions < quota.questions)
        if quota.tokens:
            under = Usage.tokens.does_not_exist() | (Usage.tokens < quota.tokens)
            condition = under if condition is None else condition & under
        item = Usage(f"usage:{tenant_id}:{month}")
        try:
            item.update(actions=[Usage.questions.add(1), Usage.expires_at.set(_expiry(month))], condition=condition)
        except UpdateError as exc:
            if getattr(exc, "cause_response_code", None) == "ConditionalCheckFailedException":
                raise quota_refusal(quota, self.usage(tenant_id, month)) from None
            # The counter could not be written: let the question through uncounted (as the rate limits
            # do) rather than refuse a visitor for our own failure; storing the message says the rest.
            logger.warning("could not count the question against the quota", extra={"error": str(exc)[:300]})

    def add_answer(self, tenant_id: str, month: str, source: str, input_tokens: int, output_tokens: int) -> None:
        from shared.state.tables import UsageCounterModel as Usage

        expires = Usage.expires_at.set(_expiry(month))
        tokens = [Usage.input_tokens.add(input_tokens), Usage.output_tokens.add(output_tokens)]
        total = [Usage.tokens.add(input_tokens + output_tokens)] if source == "model" else []
        Usage(f"usage:{tenant_id}:{month}").update(actions=[Usage.answers.add(1), *tokens, *total, expires])
        Usage(f"usage:{tenant_id}:{month}:source:{source}").update(actions=[Usage.answers.add(1), *tokens, expires])

    def usage(self, tenant_id: str, month: str) -> MonthUsage:
        from shared.state.tables import UsageCounterModel as Usage

        keys = [f"usage:{tenant_id}:{month}"] + [f"usage:{tenant_id}:{month}:source:{s}" for s in ANSWER_SOURCES]
        items = {item.counter_key: item for item in Usage.batch_get(keys, consistent_read=True)}
        total = items.get(keys[0])
        result = MonthUsage(
            questions=int(total.questions or 0) if total else 0,
            answers=int(total.answers or 0) if total else 0,
            input_tokens=int(total.input_tokens or 0) if total else 0,
            output_tokens=int(total.output_tokens or 0) if total else 0,
        )
        for source, key in zip(ANSWER_SOURCES, keys[1:], strict=True):
            if (item := items.get(key)) is not None:
                result.by_source[source] = SourceUsage(
                    int(item.answers or 0), int(item.input_tokens or 0), int(item.output_tokens or 0)
                )
        return result
