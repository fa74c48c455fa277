"""Monthly quotas per tenant (issue 11): questions are counted before anything is stored, refused with
``quota_exceeded`` once a quota is spent; answers add their tokens; other tenants are unaffected."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from shared.chat.intake import Intake
from shared.chat.quotas import (
    MonthlyQuota,
    MonthUsage,
    QuotaConfig,
    SourceUsage,
    UsageLedger,
    quota_for,
    quota_refusal,
)
from shared.model.answer_cache_memory import InMemoryAnswerCache
from shared.state.records import Connection, Tenant
from shared.tenant_config import TenantConfig, TenantConfigCache
from tests.unit.fakes import FakePush, FakeQueue, InMemoryContextCache, InMemoryStateStore
from tests.unit.test_generation import CountingModel, RecordingMeter, cached_generator, first_question_store, job_in

MARCH = datetime(2026, 3, 31, 23, 59, tzinfo=UTC)
APRIL = datetime(2026, 4, 1, 0, 1, tzinfo=UTC)


class FakeUsageLedger(UsageLedger):
    """In memory, with DynamoUsageLedger's semantics (a refused question is not counted)."""

    def __init__(self) -> None:
        self.months: dict[tuple[str, str], MonthUsage] = {}
        self.tokens: dict[tuple[str, str], int] = {}

    def _month(self, tenant_id: str, month: str) -> MonthUsage:
        return self.months.setdefault((tenant_id, month), MonthUsage())

    def count_question(self, tenant_id: str, month: str, quota: MonthlyQuota) -> None:
        usage = self._month(tenant_id, month)
        spent_tokens = self.tokens.get((tenant_id, month), 0)
        if (quota.questions and usage.questions >= quota.questions) or (quota.tokens and spent_tokens >= quota.tokens):
            raise quota_refusal(quota, usage)
        usage.questions += 1

    def add_answer(self, tenant_id: str, month: str, source: str, input_tokens: int, output_tokens: int) -> None:
        usage = self._month(tenant_id, month)
        usage.answers += 1
        usage.input_tokens += input_tokens
        usage.output_tokens += output_tokens
        by_source = usage.by_source.setdefault(source, SourceUsage())
        by_source.answers += 1
        by_source.input_tokens += input_tokens
        by_source.output_tokens += output_tokens
        if source == "model":
            self.tokens[(tenant_id, month)] = self.tokens.get((tenant_id, month), 0) + input_tokens + output_tokens

    def usage(self, tenant_id: str, month: str) -> MonthUsage:
        return self._month(tenant_id, month)


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def setup(
    plans: dict[str, QuotaConfig], default: MonthlyQuota, clock: Clock
) -> tuple[Intake, InMemoryStateStore, FakePush, FakeQueue, FakeUsageLedger]:
    store, push, queue, ledger = InMemoryStateStore(), FakePush(), FakeQueue(), FakeUsageLedger()
    for tenant in ("t_1", "t_2"):
        config = TenantConfig(quota=plans.get(tenant, QuotaConfig()))
        store.put_tenant(Tenant(tenant_id=tenant, name=tenant, widget_key="wk", created_at=1, config=config))
        store.put_connection(
            Connection(
                connection_id=f"conn-{tenant}",
                tenant_id=tenant,
                visitor_id=f"visitor-{tenant}",
                connected_at=1,
                domain_name="d",
                stage="s",
            )
        )
    intake = Intake(
        store=store,
        cache=InMemoryContextCache(),
        queue=queue,
        push=push,
        callback_url="https://d/s",
        max_message_chars=8192,
        clock=clock,
        tenant_configs=TenantConfigCache(store.tenant_config, ttl_seconds=0),
        usage=ledger,
        default_quota=default,
    )
    return intake, store, push, queue, ledger


def send(n: int) -> str:
    return json.dumps({"action": "sendMessage", "clientMessageId": f"cmid-{n:06d}", "text": "Where is my order?"})


def errors(push: FakePush, connection_id: str) -> list[dict]:
    return [f for to, f in push.frames if to == connection_id and f["type"] == "error"]


def test_a_tenant_over_its_monthly_questions_is_refused_before_anything_is_stored_until_the_month_turns() -> None:
    clock = Clock(MARCH)
    intake, store, push, queue, ledger = setup({"t_1": QuotaConfig(questions_per_month=3)}, MonthlyQuota(), clock)
    for n in range(3):
        intake.handle("conn-t_1", send(n))
    stored = len(store.messages)
    intake.handle("conn-t_1", send(3))
    [refused] = errors(push, "conn-t_1")
    assert refused["code"] == "quota_exceeded" and refused["clientMessageId"] == "cmid-000003"
    assert "3 questions" in refused["message"]
    assert len(store.messages) == stored and len(queue.jobs) == 3
    assert ledger.usage("t_1", "2026-03").questions == 3  # the refused question is not counted
    intake.handle("conn-t_2", send(4))  # another tenant (no plan, unlimited default) is not affected
    assert not errors(push, "conn-t_2") and len(queue.jobs) == 4
    clock.now = APRIL  # a new month, a new quota
    intake.handle("conn-t_1", send(5))
    assert len(errors(push, "conn-t_1")) == 1 and len(queue.jobs) == 5


def test_the_deployment_default_applies_where_a_tenant_has_no_plan_and_zero_is_unlimited() -> None:
    default = MonthlyQuota(questions=2, tokens=0)
    intake, _, push, queue, _ = setup({"t_2": QuotaConfig(questions_per_month=0)}, default, Clock(MARCH))
    for n in range(3):
        intake.handle("conn-t_1", send(n))
        intake.handle("conn-t_2", send(100 + n))
    assert [e["code"] for e in errors(push, "conn-t_1")] == ["quota_exceeded"]
    assert not errors(push, "conn-t_2") and len(queue.jobs) == 5
    assert quota_for(None, default) == default
    assert quota_for(QuotaConfig(tokens_per_month=7), default) == MonthlyQuota(questions=2, tokens=7)


def test_answers_add_their_tokens_by_source_and_a_spent_token_quota_refuses_the_next_question() -> None:
    ledger = FakeUsageLedger()
    store, answers, meter = first_question_store("c1", "c2"), InMemoryAnswerCache(60), RecordingMeter()
    model = CountingModel(["Yes, ", "within ", "30 days."])  # 120 input and 3 output tokens
    generator = cached_generator(store, model, FakePush(), answers, meter)
    generator = generator.__class__(**{**generator.__dict__, "usage": ledger})
    generator.answer(job_in("c1"))
    generator.answer(job_in("c2"))  # the same question: the cached answer, no tokens
    generator.answer(job_in("c1"))  # a redelivered job: stored once, counted once
    month = datetime.now(UTC).strftime("%Y-%m")
    usage = ledger.usage("t", month)
    assert (usage.answers, usage.input_tokens, usage.output_tokens) == (2, 120, 3)
    assert usage.by_source["model"] == SourceUsage(1, 120, 3) and usage.by_source["cache"] == SourceUsage(1, 0, 0)

    quota = MonthlyQuota(questions=0, tokens=123)
    try:
        ledger.count_question("t", month, quota)
    except Exception as exc:  # the model tokens (123) reached the quota
        assert getattr(exc, "code", None) == "quota_exceeded" and "123 model tokens" in str(exc)
    else:
        raise AssertionError("a spent token quota let a question through")
    ledger.count_question("t", month, MonthlyQuota(questions=0, tokens=124))
