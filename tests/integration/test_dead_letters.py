"""The generate queue's dead-letter queue on moto's SQS: a job the generate function kept failing on
lands there (RedrivePolicy), the admin API and `kefu dead-letters` list it, and a redrive puts it back
into its conversation's message group."""

from __future__ import annotations

import io
import json
import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from fastapi.testclient import TestClient

from local.services import MotoServer
from shared import cli
from shared.admin import deps
from shared.admin.app import create_app
from shared.admin.routes import dead_letters as routes
from shared.settings import get_settings
from shared.wire.dead_letters import DeadLetters
from shared.wire.jobs import GenerateJob, SqsGenerationQueue, message_group

CREDENTIALS = {"region_name": "us-east-1", "aws_access_key_id": "local", "aws_secret_access_key": "local"}


@pytest.fixture
def queues(moto_server: MotoServer) -> Iterator[tuple[Any, str, str]]:
    """A FIFO job queue whose RedrivePolicy sends a job to a FIFO DLQ after 2 receives (as local.run)."""
    sqs = boto3.client("sqs", endpoint_url=moto_server.url, **CREDENTIALS)
    suffix = uuid.uuid4().hex[:8]
    fifo = {"FifoQueue": "true", "ContentBasedDeduplication": "false"}
    dlq = sqs.create_queue(QueueName=f"generate-dlq-{suffix}.fifo", Attributes=fifo)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    redrive = json.dumps({"deadLetterTargetArn": arn, "maxReceiveCount": "2"})
    jobs = sqs.create_queue(
        QueueName=f"generate-{suffix}.fifo", Attributes={**fifo, "VisibilityTimeout": "30", "RedrivePolicy": redrive}
    )["QueueUrl"]
    yield sqs, jobs, dlq


def job(conversation: str, text: str) -> GenerateJob:
    return GenerateJob(
        tenant_id="t_1",
        conversation_id=conversation,
        message_id=f"17000-{uuid.uuid4().hex[:8]}",
        connection_id="conn",
        callback_url="https://example/stage",
        text=text,
    )


def crash_on(sqs: Any, queue: str, times: int) -> None:
    """What the event source mapping does with a job whose invocation crashes: receive it, and
    leave it (its visibility ends at once here instead of after the timeout)."""
    for _ in range(times):
        received = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, VisibilityTimeout=0)
        assert received.get("Messages"), "the job should still be in the queue"


def test_a_job_that_keeps_crashing_lands_in_the_dlq_is_listed_and_redriven(queues: tuple[Any, str, str]) -> None:
    sqs, jobs, dlq = queues
    crashing = job("c_one", "where is my parcel?")
    SqsGenerationQueue(sqs, jobs).enqueue(crashing)
    crash_on(sqs, jobs, times=2)
    # The third receive finds it over maxReceiveCount: SQS moves it to the dead-letter queue.
    assert not sqs.receive_message(QueueUrl=jobs, MaxNumberOfMessages=10, VisibilityTimeout=0).get("Messages")

    letters = DeadLetters(sqs, jobs)
    assert letters.url() == dlq
    listed = letters.peek(10)
    assert [(letter.conversation_id, letter.message_id, letter.text_preview) for letter in listed] == [
        ("c_one", crashing.message_id, "where is my parcel?")
    ]
    assert len(letters.peek(10)) == 1  # listing leaves it there, visible

    moved = letters.redrive(10)
    assert [letter.message_id for letter in moved] == [crashing.message_id]
    assert letters.peek(10) == []
    back = sqs.receive_message(QueueUrl=jobs, MaxNumberOfMessages=10, MessageSystemAttributeNames=["All"])["Messages"]
    assert len(back) == 1 and GenerateJob.model_validate_json(back[0]["Body"]) == crashing
    # Back in its conversation's order (the group it was sent with).
    assert back[0]["Attributes"]["MessageGroupId"] == message_group(crashing, 4)


def test_admin_api_and_cli_list_and_redrive(queues: tuple[Any, str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    sqs, jobs, dlq = queues
    for index in range(3):
        sqs.send_message(
            QueueUrl=dlq,
            MessageBody=job(f"c_{index}", f"question {index}").model_dump_json(),
            MessageGroupId=f"c_{index}",
            MessageDeduplicationId=f"d{index}",
        )
    monkeypatch.setenv("KEFU_ADMIN_KEY", "ak_test")
    get_settings.cache_clear()
    deps._admin_key.cache_clear()
    app = create_app()
    app.dependency_overrides[routes._dead_letters] = lambda: DeadLetters(sqs, jobs)
    auth = {"Authorization": "Bearer ak_test"}
    monkeypatch.setattr(cli, "_client", lambda target, timeout: TestClient(app, base_url=target.url, headers=auth))

    def kefu(*argv: str) -> tuple[int, str]:
        out = io.StringIO()
        code = cli.main(["--admin-url", "http://admin.test", "--admin-key", "ak_test", *argv], out=out, err=out)
        return code, out.getvalue()

    try:
        with TestClient(app) as client:
            assert client.get("/v1/dead-letters").status_code == 401
            body = client.get("/v1/dead-letters", headers={"Authorization": "Bearer ak_test"}).json()
        assert body["count"] == 3 and sorted(j["conversationId"] for j in body["jobs"]) == ["c_0", "c_1", "c_2"]
        code, listing = kefu("dead-letters")
        assert code == 0 and "3 job(s) in the dead-letter queue" in listing and "question 1" in listing
        code, redriven = kefu("dead-letters", "--redrive")
        assert code == 0 and "sent 3 job(s) back" in redriven
        code, empty = kefu("dead-letters")
        assert code == 0 and "0 job(s)" in empty
    finally:
        get_settings.cache_clear()
        deps._admin_key.cache_clear()
