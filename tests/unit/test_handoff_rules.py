"""Agent hours, trigger phrases and the handoff settings' validation."""

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from shared.handoff.hours import describe, is_open, next_open
from shared.handoff.triggers import asks_for_human
from shared.tenant_config import TenantConfig
from shared.tenant_config.handoff import AgentHours, HandoffConfig, LocalizedText

SHANGHAI_WEEKDAYS = AgentHours(
    timezone="Asia/Shanghai",
    weekly={d: ["09:00-12:00", "13:00-18:00"] for d in ("mon", "tue", "wed", "thu", "fri")},  # type: ignore[misc]
)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


@pytest.mark.parametrize(
    ("moment", "open_"),
    [
        (utc(2026, 3, 2, 2, 0), True),  # Monday 10:00 in Shanghai
        (utc(2026, 3, 2, 4, 30), False),  # 12:30: lunch
        (utc(2026, 3, 2, 9, 59), True),  # 17:59
        (utc(2026, 3, 2, 10, 0), False),  # 18:00: closed (end is exclusive)
        (utc(2026, 3, 7, 2, 0), False),  # Saturday
    ],
)
def test_open_hours_are_read_in_the_tenants_time_zone(moment: datetime, open_: bool) -> None:
    assert is_open(SHANGHAI_WEEKDAYS, moment) is open_


def test_no_hours_means_always_open() -> None:
    assert is_open(None, utc(2026, 3, 7, 3, 0))
    assert next_open(None, utc(2026, 3, 7, 3, 0)) == utc(2026, 3, 7, 3, 0)


def test_next_opening_skips_lunch_nights_and_weekends() -> None:
    assert next_open(SHANGHAI_WEEKDAYS, utc(2026, 3, 2, 4, 30)) == utc(2026, 3, 2, 5, 0)  # 13:00
    assert next_open(SHANGHAI_WEEKDAYS, utc(2026, 3, 6, 11, 0)) == utc(2026, 3, 9, 1, 0)  # Fri night -> Mon 09:00
    assert next_open(AgentHours(), utc(2026, 3, 6, 11, 0)) is None  # no day has hours


def test_daylight_saving_days_keep_wall_clock_hours() -> None:
    berlin = AgentHours(timezone="Europe/Berlin", weekly={"mon": ["09:00-17:00"]})
    # 2026-03-30 is the first Monday of summer time (UTC+2): opens 07:00 UTC, not 08:00.
    assert next_open(berlin, utc(2026, 3, 29, 12, 0)) == utc(2026, 3, 30, 7, 0)


def test_times_are_described_in_the_visitors_language() -> None:
    moment = utc(2026, 3, 9, 1, 0)
    assert describe(moment, SHANGHAI_WEEKDAYS, "en-GB") == "Mon 09:00 (Asia/Shanghai)"
    assert describe(moment, SHANGHAI_WEEKDAYS, "zh-CN") == "周一 09:00（Asia/Shanghai）"


@pytest.mark.parametrize(
    "weekly",
    [{"mon": ["9-18"]}, {"mon": ["18:00-09:00"]}, {"mon": ["09:00-25:00"]}, {"someday": ["09:00-10:00"]}],
)
def test_malformed_hours_are_refused(weekly: dict) -> None:
    with pytest.raises(ValidationError):
        AgentHours(weekly=weekly)


def test_unknown_time_zone_is_refused_with_a_hint() -> None:
    with pytest.raises(ValidationError, match="IANA"):
        AgentHours(timezone="Mars/Olympus")


@pytest.mark.parametrize(
    "text",
    [
        "转人工",
        "我要转 人工",
        "请帮我找人工客服",
        "Can I talk to a human?",
        "I want to SPEAK TO  A PERSON",
        "live agent pls",
    ],
)
def test_phrases_that_ask_for_a_person(text: str) -> None:
    assert asks_for_human(text)


@pytest.mark.parametrize(
    "text", ["Is this a human-readable format?", "人工智能是什么？", "How long does delivery take?", "human resources"]
)
def test_ordinary_questions_do_not_hand_off(text: str) -> None:
    assert not asks_for_human(text)


def test_tenants_add_their_own_phrases() -> None:
    assert asks_for_human("I need a Kefu person now", ["kefu person"])


def test_handoff_settings_are_camel_case_in_the_tenant_config() -> None:
    config = TenantConfig.model_validate(
        {
            "handoff": {
                "noAnswerThreshold": 3,
                "hours": {"timezone": "Asia/Shanghai", "weekly": {"sat": ["10:00-14:00"]}},
                "queuedText": {"en": "Hold on", "zh": "请稍候"},
            }
        }
    )
    assert config.handoff.no_answer_threshold == 3 and config.handoff.hours is not None
    assert config.handoff.queued_text.pick("zh-TW") == "请稍候" and config.handoff.queued_text.pick(None) == "Hold on"
    dumped = config.model_dump(by_alias=True)["handoff"]
    assert {"noAnswerThreshold", "handoffOnNegativeFeedback", "agentCapacity", "cannedReplies"} <= set(dumped)
    with pytest.raises(ValidationError):
        HandoffConfig.model_validate({"noAnswerThreshold": -1})
    assert LocalizedText(en="a", zh="b").pick("ZH") == "b"
