"""Per-tenant human-handoff settings (part of TenantConfig): agent hours, triggers, capacity, texts."""

from __future__ import annotations

import re
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, field_validator

from shared.config_section import ConfigSection

Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_SPAN = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-4]):([0-5]\d)$")


def parse_span(span: str) -> tuple[int, int]:
    """``"09:00-18:00"`` -> minutes since midnight (540, 1080). ``24:00`` may close a day."""
    match = _SPAN.match(span)
    if match is None:
        raise ValueError(f"{span!r} is not HH:MM-HH:MM")
    start = int(match[1]) * 60 + int(match[2])
    end = int(match[3]) * 60 + int(match[4])
    if end > 24 * 60 or end <= start:
        raise ValueError(f"{span!r} must end after it starts, on the same day")
    return start, end


class AgentHours(ConfigSection):
    """When people answer. Days left out are closed."""

    timezone: str = "UTC"
    weekly: dict[Weekday, list[str]] = Field(
        default_factory=dict, examples=[{"mon": ["09:00-12:00", "13:00-18:00"], "sat": ["10:00-14:00"]}]
    )

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r} (use an IANA name such as Asia/Shanghai)") from None
        return value

    @field_validator("weekly")
    @classmethod
    def _valid_spans(cls, value: dict[Weekday, list[str]]) -> dict[Weekday, list[str]]:
        for spans in value.values():
            for span in spans:
                parse_span(span)
        return value


class CannedReply(ConfigSection):
    title: str = Field(min_length=1, max_length=80)
    text: str = Field(min_length=1, max_length=2000)


class LocalizedText(ConfigSection):
    """A text in English and Chinese; the visitor's page language picks one."""

    en: str = Field(min_length=1, max_length=500)
    zh: str = Field(min_length=1, max_length=500)

    def pick(self, language: str | None) -> str:
        return self.zh if (language or "").lower().startswith("zh") else self.en


def _default_queued() -> LocalizedText:
    return LocalizedText(
        en="Connecting you with a member of our team. Someone will reply here shortly.",
        zh="正在为您转接人工客服，请稍候，客服会在这里回复您。",
    )


def _default_offline() -> LocalizedText:
    return LocalizedText(
        en=(
            "Our team is offline right now and back from {next_open}. Leave your contact details and a message, "
            "and we'll get back to you. Our assistant can keep helping meanwhile."
        ),
        zh=(
            "人工客服当前不在线，将于 {next_open} 起恢复服务。"
            "您可以留下联系方式和留言，我们会尽快联系您；在此期间智能助手会继续为您解答。"
        ),
    )


def _default_no_agents() -> LocalizedText:
    return LocalizedText(
        en=(
            "Sorry, no one from our team is available right now. Leave your contact details and a message, "
            "and we'll get back to you. Our assistant can keep helping meanwhile."
        ),
        zh=(
            "抱歉，目前没有人工客服可以接待。"
            "您可以留下联系方式和留言，我们会尽快联系您；在此期间智能助手会继续为您解答。"
        ),
    )


def _default_still_waiting() -> LocalizedText:
    return LocalizedText(
        en=(
            "Thanks for waiting: everyone on our team is still busy. Stay here and someone will reply, "
            "or leave your contact details and we'll get back to you."
        ),
        zh="感谢您的耐心等待，客服仍在忙碌中。您可以继续在此等候，也可以留下联系方式，我们会尽快联系您。",
    )


def _default_canned() -> list[CannedReply]:
    return [
        CannedReply(title="Greeting", text="Hi, this is {agent}. I'm looking into this for you now."),
        CannedReply(title="问候", text="您好，我是客服{agent}，正在为您查看，请稍等。"),
        CannedReply(title="Anything else?", text="Is there anything else I can help you with?"),
        CannedReply(title="还有问题吗", text="请问还有其他可以帮您的吗？"),
    ]


class HandoffConfig(ConfigSection):
    """How conversations move from the bot to people and back."""

    enabled: bool = True
    # None: people answer around the clock.
    hours: AgentHours | None = None
    # Hand off after this many bot answers in a row without a good source; 0 never.
    no_answer_threshold: int = Field(default=2, ge=0, le=20)
    handoff_on_negative_feedback: bool = True
    # Extra phrases (besides the built-in ones such as 转人工 / "talk to a human") that ask for a person.
    phrases: list[str] = Field(default_factory=list, max_length=50)
    # Give queued conversations to online agents automatically (round-robin, within capacity).
    auto_assign: bool = True
    agent_capacity: int = Field(default=5, ge=1, le=100)
    # Agents read conversations in the queue, assigned to them, or with an open ticket; true: every
    # conversation of the tenant (bot-only ones too).
    agents_see_all: bool = False
    # A queued visitor who waits longer than this is told so once (and offered to leave a message); 0 never.
    queue_notice_after_seconds: int = Field(default=300, ge=0, le=86_400)
    queued_text: LocalizedText = Field(default_factory=_default_queued)
    # When nobody can take a visitor's request outside agent hours; ``{next_open}`` is replaced with the
    # next opening time in the tenant's time zone.
    offline_text: LocalizedText = Field(default_factory=_default_offline)
    # When nobody can take a visitor's request now (inside agent hours, or with no hours set).
    no_agents_text: LocalizedText = Field(default_factory=_default_no_agents)
    still_waiting_text: LocalizedText = Field(default_factory=_default_still_waiting)
    canned_replies: list[CannedReply] = Field(default_factory=_default_canned, max_length=100)
