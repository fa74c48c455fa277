"""docs/cost.md's arithmetic (local/cost/report.py, local/cost/idle.py) on small made-up templates and counts."""

from __future__ import annotations

from typing import Any

import pytest

from local.cost.idle import beyond_allowance, fixed_costs, idle_floor
from local.cost.report import first_deploy_table, free_tier_idle, per_conversation, render


def _template(*types: str, **props: dict[str, Any]) -> dict[str, Any]:
    return {
        "Resources": {
            f"R{index}": {"Type": cfn_type, "Properties": props.get(cfn_type.split("::")[-1], {})}
            for index, cfn_type in enumerate(types)
        }
    }


def test_usage_only_resources_cost_nothing_idle() -> None:
    template = _template(
        "AWS::Lambda::Function", "AWS::S3::Bucket", "AWS::DynamoDB::Table", Table={"BillingMode": "PAY_PER_REQUEST"}
    )
    assert idle_floor(template) == 0


def test_fixed_costs_add_up_and_the_free_tier_covers_ten_alarms() -> None:
    template = _template(*["AWS::CloudWatch::Alarm"] * 12, "AWS::SecretsManager::Secret")
    assert idle_floor(template) == pytest.approx(12 * 0.10 + 0.40)
    assert free_tier_idle(fixed_costs(template)) == pytest.approx(2 * 0.10 + 0.40)
    assert beyond_allowance(template, {"AWS::CloudWatch::Alarm": 10, "AWS::SecretsManager::Secret": 1}) == {
        "AWS::CloudWatch::Alarm": 12
    }


def test_a_gateway_vpc_endpoint_is_free_and_an_interface_one_is_not() -> None:
    gateway = _template("AWS::EC2::VPCEndpoint", VPCEndpoint={"VpcEndpointType": "Gateway"})
    interface = _template(
        "AWS::EC2::VPCEndpoint", VPCEndpoint={"VpcEndpointType": "Interface", "SubnetIds": ["a", "b"]}
    )
    assert idle_floor(gateway) == 0
    assert idle_floor(interface) == pytest.approx(2 * 0.01 * 730)


def _measured() -> dict[str, Any]:
    return {
        "machine": "Measured on a test.",
        "conversations": 2,
        "questionsPerConversation": 1,
        "answered": 2,
        "modelRequests": 2,
        "answerTokens": 10,
        "tokensPerSecond": 10,
        "seconds": 1.0,
        "coldStartMs": {"generate": 500.0},
        "usage": {
            "websocket": {"messagesIn": 2, "messagesOut": 20, "connectionMs": 2000, "connectionMinutes": 2},
            "lambda": {"kefu-generate": {"invocations": 2, "durationMs": 2000, "billedMs": 2000}},
            "aws": {"dynamodb": {"WRU": 20, "RRU": 10}, "sqs": {"SendMessage": 2, "ReceiveMessage (empty)": 99}},
        },
    }


def test_per_conversation_prices_the_counts_divided_by_conversations() -> None:
    lines = {line.unit: line for line in per_conversation(_measured(), {"generate": 1024}, cold=False)}
    assert lines["GB-s"].quantity == pytest.approx(1.0)  # 1 s at 1 GB per conversation
    assert lines["GB-s"].usd == pytest.approx(0.0000133334 + 0.20 / 1e6)
    assert lines["messages"].quantity == 11
    assert lines["WRU"].usd == pytest.approx(10 * 0.625 / 1e6)
    assert lines["requests"].quantity in (1, 0)  # SQS: the empty receives are the idle floor's
    cold = {line.unit: line for line in per_conversation(_measured(), {"generate": 1024}, cold=True)}
    assert cold["GB-s"].quantity == pytest.approx(1.5)


def test_the_document_shows_each_profile_and_the_goals() -> None:
    default = _template(
        "AWS::SecretsManager::Secret",
        "AWS::Lambda::Function",
        Function={"FunctionName": "kefu-dev-generate", "MemorySize": 1024},
    )
    profiles = {"default": default, "big": _template("AWS::EC2::NatGateway")}
    descriptions = {"default": "the default", "big": "with NAT"}
    document = render(profiles, descriptions, _measured(), "default")
    assert "| **default**: the default | $0.40 |" in document
    assert (
        "Idle ≤ $1.00/month for the default profile: **$0.40** at list price, $0.40 with the always-free tier: met."
        in document
    )
    assert "$32.85" in first_deploy_table(profiles, descriptions)


def test_the_per_upload_section_is_priced_from_the_counts_and_written_once(tmp_path: Any) -> None:
    from local.cost import uploads

    sample = {
        "what": "a file",
        "adminRequests": 4.0,
        "adminSeconds": 0.2,
        "usage": {
            "lambda": {"kefu-ingest": {"invocations": 3, "billedMs": 3000}},
            "aws": {"s3": {"GetObject": 3, "PutObject": 3, "DeleteObject": 3}, "dynamodb": {"WRU": 27, "RRU": 9}},
        },
    }
    priced = dict(uploads.lines(sample, runs=3))
    [ingest] = [usd for what, usd in priced.items() if what.startswith("Lambda ingest")]
    assert ingest == pytest.approx(1.0 * 2 * 0.0000133334 + 0.20 / 1e6)  # 1 s at 2 GB, one request
    [s3] = [what for what in priced if what.startswith("S3")]
    assert "2.0 PUT/LIST" in s3 and "1.0 GET" in s3  # the presigned POST is added to the metered PUT
    doc = tmp_path / "cost.md"
    doc.write_text("# Cost\n\n## Against the goals\n\ntext\n")
    results = {"machine": "Measured today on a machine.", "runs": 3, "samples": {"a": sample}}
    uploads.write(uploads.render(results), doc)
    uploads.write(uploads.render(results), doc)
    text = doc.read_text()
    assert text.count("## Per upload: measured") == 1 and text.count("<!-- bench:per-upload -->") == 1
    assert text.index("Per upload") < text.index("## Against the goals") and "**total**" in text


def test_make_cost_keeps_the_per_upload_section_it_does_not_measure() -> None:
    from local.cost.uploads import keep_section

    previous = "# Cost\n\n## Per upload: measured\n\n<!-- bench:per-upload -->\nrows\n<!-- /bench:per-upload -->\n\n"
    previous += "## Against the goals\n"
    rendered = "# Cost (new)\n\n## Against the goals\n\nnew text\n"
    kept = keep_section(previous, rendered)
    assert kept.startswith("# Cost (new)") and "rows" in kept and kept.index("rows") < kept.index("## Against")
    assert keep_section("no section here", rendered) == rendered
