from __future__ import annotations

import json

import pytest

from shared.observability import AnswerRecord, PowertoolsAnswerMeter


def record(grounded: bool) -> AnswerRecord:
    return AnswerRecord(
        tenant_id="t",
        conversation_id="c1",
        message_id="m1",
        source="model",
        provider="openai",
        model="qwen",
        input_tokens=10,
        output_tokens=5,
        first_frame_ms=12.0,
        duration_ms=80.0,
        frames=3,
        grounded=grounded,
    )


def emitted_metrics(capsys: pytest.CaptureFixture[str]) -> set[str]:
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    [emf] = lines
    return {metric["Name"] for directive in emf["_aws"]["CloudWatchMetrics"] for metric in directive["Metrics"]}


def test_an_answer_without_a_good_source_is_counted_per_tenant(capsys: pytest.CaptureFixture[str]) -> None:
    PowertoolsAnswerMeter().record(record(grounded=False))

    assert "AnswersWithoutSource" in emitted_metrics(capsys)


def test_a_grounded_answer_is_not_counted_as_one_without_a_source(capsys: pytest.CaptureFixture[str]) -> None:
    PowertoolsAnswerMeter().record(record(grounded=True))

    metrics = emitted_metrics(capsys)
    assert "AnswerDurationMs" in metrics and "AnswersWithoutSource" not in metrics
