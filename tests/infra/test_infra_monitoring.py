"""Alarms: what they watch, and that every one of them notifies the alarm topic.

Prod creates every alarm (``alarms=full``); dev, the default profile, the essential two (each alarm bills
$0.10 a month idle: docs/cost.md); the hybrid profile asks for the full set with ``-c alarms=full``.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from infra.config import ConfigError, DeployConfig
from infra.constants import FUNCTIONS, WEBSOCKET_STAGE
from infra.constructs.monitoring import CHANNEL_SENDS_FAILED_THRESHOLD, OLDEST_JOB_AGE_SECONDS
from tests.infra.synthesis import Synth


def _alarms(synth: Synth) -> dict[str, dict[str, Any]]:
    return {r["Properties"]["AlarmName"]: r["Properties"] for r in synth.of_type("AWS::CloudWatch::Alarm").values()}


def _api_id(synth: Synth, protocol: str) -> str:
    [api_id] = [
        lid for lid, r in synth.of_type("AWS::ApiGatewayV2::Api").items() if r["Properties"]["ProtocolType"] == protocol
    ]
    return api_id


def test_every_alarm_notifies_the_topic_when_it_fires_and_recovers(dev: Synth) -> None:
    [(topic_id, topic)] = dev.of_type("AWS::SNS::Topic").items()
    assert topic["Properties"]["TopicName"] == "kefu-dev-alarms"
    alarms = _alarms(dev)
    assert alarms
    for name, alarm in alarms.items():
        assert alarm["AlarmActions"] == [{"Ref": topic_id}], name
        assert alarm["OKActions"] == [{"Ref": topic_id}], name
        assert alarm["TreatMissingData"] == "notBreaching", name  # idle is healthy
    # The topic takes publishes over TLS only, and CloudWatch may publish to it.
    [policy] = dev.of_type("AWS::SNS::TopicPolicy").values()
    statements = policy["Properties"]["PolicyDocument"]["Statement"]
    [deny] = [s for s in statements if s["Effect"] == "Deny"]
    assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    [allow] = [s for s in statements if s["Effect"] == "Allow"]
    assert allow["Principal"] == {"Service": "cloudwatch.amazonaws.com"} and allow["Action"] == "sns:Publish"
    assert allow["Resource"] == {"Ref": topic_id}
    assert "alarm:kefu-dev-*" in json.dumps(allow["Condition"]["ArnLike"]["aws:SourceArn"])
    assert allow["Condition"]["StringEquals"] == {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}
    assert dev.outputs["AlarmTopicArn"]["Value"] == {"Ref": topic_id}
    # No subscription unless asked for (context alarm_email).
    assert not dev.of_type("AWS::SNS::Subscription")


def test_errors_and_throttles_of_every_function(prod: Synth) -> None:
    alarms = _alarms(prod)
    for name in FUNCTIONS:
        for metric in ("Errors", "Throttles"):
            alarm = alarms[f"kefu-prod-{name}-{metric.lower()}"]
            assert (alarm["Namespace"], alarm["MetricName"], alarm["Statistic"]) == ("AWS/Lambda", metric, "Sum")
            assert alarm["Dimensions"] == [{"Name": "FunctionName", "Value": {"Ref": prod.function_id(name)}}]
            assert alarm["Threshold"] == 1


def test_queue_age_and_dead_letters(prod: Synth) -> None:
    queues = {r["Properties"]["QueueName"]: lid for lid, r in prod.of_type("AWS::SQS::Queue").items()}
    alarms = _alarms(prod)
    age = alarms["kefu-prod-generate-oldest-job"]
    assert (age["Namespace"], age["MetricName"], age["Statistic"]) == (
        "AWS/SQS",
        "ApproximateAgeOfOldestMessage",
        "Maximum",
    )
    assert age["Dimensions"] == [
        {"Name": "QueueName", "Value": {"Fn::GetAtt": [queues["kefu-prod-generate.fifo"], "QueueName"]}}
    ]
    assert age["Threshold"] == OLDEST_JOB_AGE_SECONDS and age["Period"] == 60
    dead = alarms["kefu-prod-generate-dead-letters"]
    assert dead["MetricName"] == "ApproximateNumberOfMessagesVisible"
    assert dead["Dimensions"][0]["Value"] == {"Fn::GetAtt": [queues["kefu-prod-generate-dlq.fifo"], "QueueName"]}


def test_api_gateway_failures_of_both_apis(prod: Synth) -> None:
    alarms = _alarms(prod)
    chat = alarms["kefu-prod-chat-execution-errors"]
    assert (chat["Namespace"], chat["MetricName"], chat["Statistic"]) == ("AWS/ApiGateway", "ExecutionError", "Sum")
    assert {d["Name"]: d["Value"] for d in chat["Dimensions"]} == {
        "ApiId": {"Ref": _api_id(prod, "WEBSOCKET")},
        "Stage": WEBSOCKET_STAGE,
    }
    admin = alarms["kefu-prod-admin-5xx"]
    assert (admin["Namespace"], admin["MetricName"], admin["Statistic"]) == ("AWS/ApiGateway", "5xx", "Sum")
    assert admin["Dimensions"] == [{"Name": "ApiId", "Value": {"Ref": _api_id(prod, "HTTP")}}]


def test_failed_channel_sends_alarm_on_the_channel_codes_metric(prod: Synth, dev: Synth) -> None:
    failed = _alarms(prod)["kefu-prod-channel-sends-failed"]
    # What shared/observability.py's count_failed_channel_send emits: one metric, no tenant dimension.
    assert (failed["Namespace"], failed["MetricName"], failed["Statistic"]) == ("Kefu", "ChannelSendsFailed", "Sum")
    assert failed["Dimensions"] == [{"Name": "service", "Value": "kefu"}]
    assert failed["Threshold"] == CHANNEL_SENDS_FAILED_THRESHOLD and failed["Period"] == 300
    assert "kefu-dev-channel-sends-failed" not in _alarms(dev)  # full only: the default stays at 2


def test_alarm_email_subscribes_to_the_topic(hybrid: Synth) -> None:
    [(topic_id, _)] = hybrid.of_type("AWS::SNS::Topic").items()
    [subscription] = hybrid.of_type("AWS::SNS::Subscription").values()
    assert subscription["Properties"] == {
        "Protocol": "email",
        "TopicArn": {"Ref": topic_id},
        "Endpoint": "oncall@example.com",
    }


def test_dev_keeps_the_essential_alarms(dev: Synth) -> None:
    # A visitor got no answer: jobs dead-lettered, or connect/message could not run.
    assert set(_alarms(dev)) == {"kefu-dev-generate-dead-letters", "kefu-dev-chat-execution-errors"}


def test_every_alarm_on_request_and_in_prod(prod: Synth, hybrid: Synth) -> None:
    for synth, env in ((prod, "prod"), (hybrid, "dev")):
        alarms = _alarms(synth)
        # errors + throttles, DLQ, age, 2 APIs, failed channel sends
        assert len(alarms) == 2 * len(FUNCTIONS) + 5, sorted(alarms)
        assert all(name.startswith(f"kefu-{env}-") for name in alarms)


@pytest.mark.parametrize(
    ("env", "alarms", "level"),
    [("dev", None, "essential"), ("prod", None, "full"), ("dev", "full", "full"), ("prod", "none", "none")],
)
def test_alarm_level(env: str, alarms: str | None, level: str) -> None:
    assert DeployConfig(env=env, alarms=alarms).alarm_level == level  # type: ignore[arg-type]


def test_an_unknown_alarm_level_is_refused() -> None:
    with pytest.raises(ConfigError, match="alarms"):
        DeployConfig(env="dev", alarms="some")  # type: ignore[arg-type]
