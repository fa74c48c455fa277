"""Agent hours: is someone answering now, and when next."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from shared.tenant_config.handoff import WEEKDAYS, AgentHours, parse_span

_NAMES = {
    "en": ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"),
    "zh": ("周一", "周二", "周三", "周四", "周五", "周六", "周日"),
}


def _spans(hours: AgentHours, day: int) -> list[tuple[int, int]]:
    return sorted(parse_span(span) for span in hours.weekly.get(WEEKDAYS[day], []))


def is_open(hours: AgentHours | None, now: datetime) -> bool:
    """``now`` must be timezone-aware. No hours means always open."""
    if hours is None:
        return True
    local = now.astimezone(ZoneInfo(hours.timezone))
    minute = local.hour * 60 + local.minute
    return any(start <= minute < end for start, end in _spans(hours, local.weekday()))


def next_open(hours: AgentHours | None, now: datetime) -> datetime | None:
    """The next moment people answer (``now`` if open now); None if the week has no hours at all."""
    if hours is None or is_open(hours, now):
        return now
    zone = ZoneInfo(hours.timezone)
    local = now.astimezone(zone)
    midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
    minute_now = local.hour * 60 + local.minute
    for offset in range(8):
        day = midnight + timedelta(days=offset)
        for start, _ in _spans(hours, day.weekday()):
            if offset == 0 and start <= minute_now:
                continue
            # Wall-clock time of that day in the zone (DST days included).
            return datetime(day.year, day.month, day.day, start // 60, start % 60, tzinfo=zone)
    return None


def describe(moment: datetime, hours: AgentHours, language: str | None) -> str:
    """A short local time for visitors: ``Mon 09:00 (Asia/Shanghai)`` / ``周一 09:00（Asia/Shanghai）``."""
    local = moment.astimezone(ZoneInfo(hours.timezone))
    chinese = (language or "").lower().startswith("zh")
    name = _NAMES["zh" if chinese else "en"][local.weekday()]
    if chinese:
        return f"{name} {local:%H:%M}（{hours.timezone}）"
    return f"{name} {local:%H:%M} ({hours.timezone})"
