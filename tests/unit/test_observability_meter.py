"""The answer meter's EMF record: metrics whose dimension sets do not grow with tenants."""

from __future__ import annotations

import json

import pytest

from shared.observability import CHANNEL_SENDS_FAILED, AnswerRecord, PowertoolsAnswerMeter, count_failed_channel_send


def _record(tenant: str, provider: str = "openai:gpu-box") -> AnswerRecord:
    return AnswerRecord(
        tenant_id=tenant,
        conversation_id="c_1",
        message_id="m_1",
        source="model",
        provider=provider,
        model="qwen",
        input_tokens=120,
        output_tokens=30,
        first_frame_ms=40.0,
        duration_ms=900.0,
        frames=6,
        failed_attempts=1,
        fallback=True,
    )


def _emitted(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, *tenants: str) -> list[dict]:
    monkeypatch.delenv("POWERTOOLS_METRICS_DISABLED", raising=False)
    monkeypatch.delenv("POWERTOOLS_DEV", raising=False)
    capsys.readouterr()
    for tenant in tenants:
        PowertoolsAnswerMeter().record(_record(tenant))
    return [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.strip()]


def test_tenant_is_a_property_not_a_dimension(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given answers of two tenants / When metered
    first, second = _emitted(capsys, monkeypatch, "t_alpha", "t_beta")
    for emf, tenant in ((first, "t_alpha"), (second, "t_beta")):
        [directive] = emf["_aws"]["CloudWatchMetrics"]
        # Then the dimension set is service + provider only, the same for every tenant
        assert [sorted(names) for names in directive["Dimensions"]] == [["provider", "service"]]
        assert emf["provider"] == "openai"
        # and the tenant (with the conversation, message, model) is a property of the log record
        assert (emf["tenant"], emf["conversationId"], emf["messageId"], emf["model"]) == (tenant, "c_1", "m_1", "qwen")
        # and the metric names are the ones dashboards and queries use
        names = {metric["Name"] for metric in directive["Metrics"]}
        assert names == {
            "AnswerFirstFrameMs",
            "AnswerDurationMs",
            "AnswerFrames",
            "InputTokens",
            "OutputTokens",
            "ModelFailedAttempts",
            "ModelFallbacks",
        }
        assert emf["InputTokens"] == [120.0] and emf["OutputTokens"] == [30.0]


def test_a_failed_channel_send_is_one_metric_whatever_the_tenant(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("POWERTOOLS_METRICS_DISABLED", raising=False)
    monkeypatch.delenv("POWERTOOLS_DEV", raising=False)
    capsys.readouterr()
    count_failed_channel_send("t_alpha", "ch_1", "wechat_oa", "window_closed", "c_1")
    count_failed_channel_send("t_beta", "ch_2", "wecom_kf", "not_delivered", None)
    first, second = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.strip()]
    for emf, tenant, status in ((first, "t_alpha", "window_closed"), (second, "t_beta", "not_delivered")):
        [directive] = emf["_aws"]["CloudWatchMetrics"]
        assert directive["Namespace"] == "Kefu"
        assert directive["Dimensions"] == [["service"]] and emf["service"] == "kefu"  # what the alarm watches
        assert [metric["Name"] for metric in directive["Metrics"]] == [CHANNEL_SENDS_FAILED]
        assert emf[CHANNEL_SENDS_FAILED] == [1.0]
        assert (emf["tenant"], emf["status"]) == (tenant, status)  # properties, not dimensions
