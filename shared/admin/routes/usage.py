"""A tenant's monthly usage against its quotas (shared/chat/quotas.py)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query

from shared.admin.deps import ExistingTenant
from shared.chat.quotas import UsageLedger, month_of, quota_for
from shared.config_section import CamelModel
from shared.wiring import default_quota, usage_ledger

_MONTH = r"^\d{4}-(0[1-9]|1[0-2])$"

router = APIRouter(prefix="/v1/tenants/{tenant_id}/usage", tags=["usage"])


class SourceUsageOut(CamelModel):
    answers: int
    input_tokens: int
    output_tokens: int


class QuotaOut(CamelModel):
    questions_per_month: int  # 0: unlimited
    tokens_per_month: int


class UsageOut(CamelModel):
    tenant_id: str
    month: str
    questions: int
    answers: int
    input_tokens: int
    output_tokens: int
    # "model" (tokens spent, counted against the quota), "cache" (a reused answer), "shared" (an
    # identical question answered at the same time).
    by_source: dict[str, SourceUsageOut]
    quota: QuotaOut


def _ledger() -> UsageLedger:
    return usage_ledger()


@router.get("", response_model=UsageOut, response_model_by_alias=True)
def get_usage(
    tenant: ExistingTenant,
    ledger: Annotated[UsageLedger, Depends(_ledger)],
    month: Annotated[str | None, Query(pattern=_MONTH, description="YYYY-MM (UTC); default: this month")] = None,
) -> UsageOut:
    """Questions, answers and tokens of one calendar month (UTC), by where answers came from, with the
    quotas in force (0: unlimited)."""
    month = month or month_of(datetime.now(UTC))
    usage = ledger.usage(tenant.tenant_id, month)
    quota = quota_for(tenant.config.quota, default_quota())
    return UsageOut(
        tenant_id=tenant.tenant_id,
        month=month,
        questions=usage.questions,
        answers=usage.answers,
        input_tokens=usage.input_tokens,
        output_tokens=usage.output_tokens,
        by_source={
            source: SourceUsageOut(answers=u.answers, input_tokens=u.input_tokens, output_tokens=u.output_tokens)
            for source, u in usage.by_source.items()
        },
        quota=QuotaOut(questions_per_month=quota.questions, tokens_per_month=quota.tokens),
    )
