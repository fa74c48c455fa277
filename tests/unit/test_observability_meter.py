"""The answer meter's EMF record: metrics whose dimension sets do not grow with tenants."""

from __future__ import annotations

import json

import pytest

from shared.observability import AnswerRecord, PowertoolsAnswerMeter


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
