"""The deploy-time writer of the visitor-token key (infra/constructs/identity.py): its inline code run
against moto's SSM in process, with a stand-in for the ``cfnresponse`` module Lambda provides to inline
Python code (the stand-in records what would be sent to CloudFormation)."""

from __future__ import annotations

import sys
import types
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from infra.constructs.identity import WRITER_CODE

NAME = "/kefu/dev/visitor-token-key"


class RecordingCfnResponse(types.ModuleType):
    SUCCESS = "SUCCESS"
    FAILED = "FAILED"

    def __init__(self) -> None:
        super().__init__("cfnresponse")
        self.sent: list[dict[str, Any]] = []

    def send(self, event: Any, context: Any, status: str, data: Any, physical_id: str, reason: str = "") -> None:
        self.sent.append({"status": status, "physical_id": physical_id, "reason": reason})


@pytest.fixture
def writer(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Any, RecordingCfnResponse]]:
    for variable, value in (
        ("AWS_DEFAULT_REGION", "us-east-1"),
        ("AWS_ACCESS_KEY_ID", "t"),
        ("AWS_SECRET_ACCESS_KEY", "t"),
    ):
        monkeypatch.setenv(variable, value)
    response = RecordingCfnResponse()
    monkeypatch.setitem(sys.modules, "cfnresponse", response)
    with mock_aws():
        namespace: dict[str, Any] = {}
        exec(compile(WRITER_CODE, "index.py", "exec"), namespace)  # noqa: S102 - the function's own code
        yield namespace["handler"], response


def _event(request: str) -> dict[str, Any]:
    return {"RequestType": request, "ResourceProperties": {"Name": NAME, "Description": "signing key"}}


def test_create_puts_a_random_secure_string(writer: tuple[Any, RecordingCfnResponse]) -> None:
    handler, response = writer
    handler(_event("Create"), None)
    assert response.sent == [{"status": "SUCCESS", "physical_id": NAME, "reason": ""}]
    parameter = boto3.client("ssm").get_parameter(Name=NAME, WithDecryption=True)["Parameter"]
    assert parameter["Type"] == "SecureString"
    assert len(parameter["Value"]) >= 64  # 48 random bytes, URL-safe base64


def test_create_keeps_a_key_left_by_an_earlier_stack(writer: tuple[Any, RecordingCfnResponse]) -> None:
    handler, response = writer
    boto3.client("ssm").put_parameter(Name=NAME, Type="SecureString", Value="kept-from-the-retained-prod-stack")
    handler(_event("Create"), None)
    assert response.sent[-1]["status"] == "SUCCESS"
    assert boto3.client("ssm").get_parameter(Name=NAME, WithDecryption=True)["Parameter"]["Value"] == (
        "kept-from-the-retained-prod-stack"
    )


def test_update_leaves_the_key_and_delete_removes_it(writer: tuple[Any, RecordingCfnResponse]) -> None:
    handler, response = writer
    handler(_event("Create"), None)
    before = boto3.client("ssm").get_parameter(Name=NAME, WithDecryption=True)["Parameter"]["Value"]
    handler(_event("Update"), None)
    assert boto3.client("ssm").get_parameter(Name=NAME, WithDecryption=True)["Parameter"]["Value"] == before
    handler(_event("Delete"), None)
    handler(_event("Delete"), None)  # already gone: still a success (a retried delete)
    assert [sent["status"] for sent in response.sent] == ["SUCCESS"] * 4
    assert not boto3.client("ssm").describe_parameters()["Parameters"]


def test_a_failure_is_reported_to_cloudformation(writer: tuple[Any, RecordingCfnResponse]) -> None:
    handler, response = writer
    handler({"RequestType": "Create", "ResourceProperties": {"Name": "", "Description": "x"}}, None)
    [sent] = response.sent
    assert sent["status"] == "FAILED" and sent["reason"]
