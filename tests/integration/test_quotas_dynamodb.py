"""Monthly usage counters in the DynamoDB limits table (moto server): many message function
instances counting at once never let a tenant past its quota, and the admin API reads them back."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from shared.chat.quotas import DynamoUsageLedger, MonthlyQuota, QuotaExceeded
from shared.settings import Settings

pytestmark = pytest.mark.integration


def test_concurrent_questions_stop_exactly_at_the_quota(settings: Settings) -> None:
    from shared.state.tables import bind_models

    bind_models(settings)
    quota = MonthlyQuota(questions=25, tokens=0)
    ledgers = [DynamoUsageLedger() for _ in range(4)]  # four containers

    def ask(n: int) -> bool:
        try:
            ledgers[n % 4].count_question("t_q", "2026-03", quota)
            return True
        except QuotaExceeded as exc:
            assert "25 questions" in exc.message
            return False

    with ThreadPoolExecutor(8) as pool:
        admitted = list(pool.map(ask, range(40)))
    assert admitted.count(True) == 25
    assert ledgers[0].usage("t_q", "2026-03").questions == 25  # refused questions are not counted
    assert ledgers[0].usage("t_q", "2026-04").questions == 0  # months are separate
    assert ledgers[0].usage("t_other", "2026-03").questions == 0  # and tenants


def test_answers_count_tokens_by_source_and_model_tokens_spend_the_token_quota(settings: Settings) -> None:
    from shared.state.tables import UsageCounterModel, bind_models

    bind_models(settings)
    ledger = DynamoUsageLedger()
    quota = MonthlyQuota(questions=0, tokens=1000)
    ledger.count_question("t_tok", "2026-03", quota)
    ledger.add_answer("t_tok", "2026-03", "cache", 0, 0)
    ledger.add_answer("t_tok", "2026-03", "model", 900, 99)
    ledger.count_question("t_tok", "2026-03", quota)  # 999 model tokens: still under
    ledger.add_answer("t_tok", "2026-03", "model", 1, 0)
    with pytest.raises(QuotaExceeded, match="1000 model tokens"):
        ledger.count_question("t_tok", "2026-03", quota)
    usage = ledger.usage("t_tok", "2026-03")
    assert (usage.questions, usage.answers, usage.input_tokens, usage.output_tokens) == (2, 3, 901, 99)
    assert usage.by_source["model"].answers == 2 and usage.by_source["model"].output_tokens == 99
    assert usage.by_source["cache"].answers == 1 and "shared" not in usage.by_source
    item = UsageCounterModel.get("usage:t_tok:2026-03")
    assert item.expires_at is not None and item.expires_at.year == 2027  # kept about 13 months


def test_a_counter_that_cannot_be_written_lets_the_question_through(settings: Settings) -> None:
    from shared.state.tables import bind_models

    bind_models(settings.model_copy(update={"limits_table": "no-such-table"}))
    try:
        DynamoUsageLedger().count_question("t_down", "2026-03", MonthlyQuota(questions=1, tokens=1))
    finally:
        bind_models(settings)
