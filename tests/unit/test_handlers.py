"""Each Lambda handler through its dependencies argument, on in-memory fakes: the event is parsed at
the edge, the use case called, errors mapped, and every log line carries the correlation id and the
tenant_id / connection_id keys. (The retrieve handler's own suite is test_retrieve_handler.py.)"""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError

from functions.admin import handler as admin
from functions.connect import handler as connect
from functions.generate import handler as generate
from functions.message import handler as message
from shared.admin import deps
from shared.chat.generation import Generator
from shared.chat.intake import Intake
from shared.observability import logger
from shared.settings import get_settings
from shared.state.records import Connection, Conversation, StoredMessage, Tenant
from shared.wire.jobs import GenerateJob
from tests import events
from tests.unit.fakes import (
    FakeAnswerModel,
    FakePush,
    FakeQueue,
    InMemoryContextCache,
    InMemoryStateStore,
)
from tests.unit.test_connections import TOKENS, admission
from tests.unit.test_generation import make

SHOP = Tenant(tenant_id="t_1", name="Shop", widget_key="wk_right", created_at=1)


@pytest.fixture
def log_lines() -> Iterator[Callable[[], list[dict[str, Any]]]]:
    """Powertools' JSON log lines written during the test (its handler's stream, swapped)."""
    stream = io.StringIO()
    previous = logger.registered_handler.setStream(stream)  # type: ignore[attr-defined]
    try:
        yield lambda: [json.loads(line) for line in stream.getvalue().splitlines() if line.startswith("{")]
    finally:
        logger.registered_handler.setStream(previous)  # type: ignore[attr-defined]


@pytest.fixture
def store() -> InMemoryStateStore:
    store = InMemoryStateStore()
    store.put_tenant(SHOP)
    return store


# --- connect ---


def test_connect_admits_a_visitor_and_logs_with_its_keys(
    store: InMemoryStateStore, log_lines: Callable[[], list[dict[str, Any]]]
) -> None:
    event = events.connect_event({"tenant": "t_1", "key": "wk_right"})
    connection_id = event["requestContext"]["connectionId"]

    assert connect.handler(event, events.lambda_context(), admission=admission(store)) == {"statusCode": 200}

    stored = store.get_connection(connection_id)
    assert stored is not None and stored.tenant_id == "t_1" and stored.role == "visitor"
    [connected] = [line for line in log_lines() if line["message"] == "connected"]
    assert connected["tenant_id"] == "t_1" and connected["connection_id"] == connection_id
    assert connected["correlation_id"] == event["requestContext"]["requestId"]


def test_connect_refuses_a_wrong_widget_key_with_a_reason_and_stores_nothing(store: InMemoryStateStore) -> None:
    event = events.connect_event({"tenant": "t_1", "key": "wk_wrong"})

    response = connect.handler(event, events.lambda_context(), admission=admission(store))

    assert response["statusCode"] in (401, 403) and "key" in response["body"]
    assert store.connections == {}


def test_disconnect_forgets_the_connection(store: InMemoryStateStore) -> None:
    conn = events.connection()
    doors = admission(store)
    connect.handler(
        events.connect_event({"tenant": "t_1", "key": "wk_right"}, conn=conn), events.lambda_context(), admission=doors
    )
    assert store.get_connection(conn.connection_id) is not None

    assert connect.handler(events.disconnect_event(conn=conn), events.lambda_context(), admission=doors) == {
        "statusCode": 200
    }
    assert store.get_connection(conn.connection_id) is None


# --- message ---


def _visitor(store: InMemoryStateStore, conn: Any) -> None:
    store.put_connection(
        Connection(
            connection_id=conn.connection_id,
            tenant_id="t_1",
            visitor_id="visitor-aaa",
            connected_at=1,
            domain_name=conn.domain_name,
            stage=conn.stage,
        )
    )


def test_message_stores_acks_and_queues_on_the_stage_it_came_from(store: InMemoryStateStore) -> None:
    conn = events.connection()
    _visitor(store, conn)
    push, queue, stages = FakePush(), FakeQueue(), []

    def intake_for(domain_name: str, stage: str) -> Intake:
        stages.append((domain_name, stage))
        url = f"https://{domain_name}/{stage}"
        return Intake(store, InMemoryContextCache(), queue, push, url, max_message_chars=100)

    body = {"action": "sendMessage", "clientMessageId": "cmid-0001", "text": "Where is my order?"}
    event = events.message_event(body, conn=conn)
    assert message.handler(event, events.lambda_context(), intake_for=intake_for) == {"statusCode": 200}

    assert stages == [(conn.domain_name, conn.stage)]
    assert push.types() == ["ack"] and [job.text for job in queue.jobs] == ["Where is my order?"]
    # Every line the invocation logs carries these (they stay until the next invocation clears them).
    keys = logger.get_current_keys()
    assert (keys["connection_id"], keys["tenant_id"]) == (conn.connection_id, "t_1")
    assert keys["correlation_id"] == event["requestContext"]["requestId"]


def test_a_bad_frame_gets_an_error_frame_not_a_failure(store: InMemoryStateStore) -> None:
    conn = events.connection()
    _visitor(store, conn)
    push = FakePush()

    def intake_for(domain_name: str, stage: str) -> Intake:
        return Intake(store, InMemoryContextCache(), FakeQueue(), push, "https://d/s", max_message_chars=100)

    response = message.handler(
        events.message_event("{not json", conn=conn), events.lambda_context(), intake_for=intake_for
    )

    assert response == {"statusCode": 200}
    [(connection_id, frame)] = push.frames
    assert connection_id == conn.connection_id and frame["type"] == "error" and frame["code"] == "bad_request"


# --- generate ---


def _question(store: InMemoryStateStore) -> GenerateJob:
    store.put_conversation(
        Conversation(conversation_id="c1", tenant_id="t_1", visitor_id="v", created_at=1, updated_at=1)
    )
    store.messages[("c1", "0000000000001-aaaa")] = StoredMessage(
        conversation_id="c1",
        message_id="0000000000001-aaaa",
        tenant_id="t_1",
        role="visitor",
        text="return?",
        created_at=1,
    )
    return GenerateJob(
        tenant_id="t_1",
        conversation_id="c1",
        message_id="0000000000001-aaaa",
        connection_id="conn-a",
        callback_url="https://d/s",
        text="return?",
    )


def _generator(store: InMemoryStateStore, push: FakePush, model: FakeAnswerModel) -> Generator:
    return make(store, model, push)  # test_generation's Generator on fakes


def test_generate_answers_each_record_and_logs_the_jobs_keys(
    store: InMemoryStateStore, log_lines: Callable[[], list[dict[str, Any]]]
) -> None:
    job, push = _question(store), FakePush()
    event = events.sqs_event(job.model_dump_json(), group_id="c1")

    response = generate.handler(
        event, events.lambda_context(), generator=_generator(store, push, FakeAnswerModel(["30 days."]))
    )

    assert response == {"batchItemFailures": []}
    assert push.types()[-1] == "answer.end" and push.frames[-1][1]["text"] == "30 days."
    [done] = [line for line in log_lines() if line["message"] == "job done"]
    assert done["outcome"] == "answered" and done["correlation_id"] == job.message_id
    assert (done["tenant_id"], done["connection_id"], done["conversation_id"]) == ("t_1", "conn-a", "c1")


def test_generate_reports_a_record_it_cannot_read_as_failed(store: InMemoryStateStore) -> None:
    job, push = _question(store), FakePush()
    event = events.sqs_event(job.model_dump_json(), {"not": "a job"}, group_id="c1")
    generator = _generator(store, push, FakeAnswerModel(["30 days."]))

    response = generate.handler(event, events.lambda_context(), generator=generator)

    assert push.types()[-1] == "answer.end"  # the good record was answered
    assert [failure["itemIdentifier"] for failure in response["batchItemFailures"]] == [
        event["Records"][1]["messageId"]
    ]


def test_a_batch_with_nothing_answerable_fails_whole_for_the_queue_to_retry(store: InMemoryStateStore) -> None:
    event = events.sqs_event({"not": "a job"}, group_id="c1")
    generator = _generator(store, FakePush(), FakeAnswerModel([]))

    with pytest.raises(BatchProcessingError):
        generate.handler(event, events.lambda_context(), generator=generator)


# --- admin ---


def test_the_admin_function_serves_the_api_over_the_given_store(
    store: InMemoryStateStore, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("KEFU_ADMIN_KEY", "test-key")
    get_settings.cache_clear()
    deps._admin_key.cache_clear()
    monkeypatch.setitem(admin.app.dependency_overrides, deps._store, lambda: store)
    # Mangum runs the app on the thread's event loop, as in Lambda (earlier tests may have closed theirs).
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        bearer = {"authorization": "Bearer test-key"}
        created = admin.handler(
            events.http_api_event("POST", "/v1/tenants", headers=bearer, body={"name": "Books"}),
            events.lambda_context("kefu-admin"),
        )
        refused = admin.handler(events.http_api_event("GET", "/v1/tenants/t_1"), events.lambda_context("kefu-admin"))
    finally:
        asyncio.set_event_loop(None)
        loop.close()
        get_settings.cache_clear()
        deps._admin_key.cache_clear()

    assert created["statusCode"] == 201
    tenant_id = json.loads(created["body"])["tenantId"]
    assert store.get_tenant(tenant_id) is not None and store.get_tenant(tenant_id).name == "Books"  # type: ignore[union-attr]
    assert refused["statusCode"] == 401 and "Bearer" in json.loads(refused["body"])["error"]["message"]


def test_the_admin_functions_log_lines_carry_the_request_id_and_the_tenant(
    store: InMemoryStateStore, monkeypatch: pytest.MonkeyPatch, log_lines: Callable[[], list[dict[str, Any]]]
) -> None:
    monkeypatch.setenv("KEFU_ADMIN_KEY", "test-key")
    get_settings.cache_clear()
    deps._admin_key.cache_clear()

    def logging_store() -> InMemoryStateStore:
        logger.info("store opened")  # any line written while the request is served
        return store

    monkeypatch.setitem(admin.app.dependency_overrides, deps._store, logging_store)
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    event = events.http_api_event("GET", "/v1/tenants/t_1", headers={"authorization": "Bearer test-key"})
    try:
        response = admin.handler(event, events.lambda_context("kefu-admin"))
    finally:
        asyncio.set_event_loop(None)
        loop.close()
        get_settings.cache_clear()
        deps._admin_key.cache_clear()

    assert response["statusCode"] == 200
    [line] = [line for line in log_lines() if line["message"] == "store opened"]
    assert line["correlation_id"] == event["requestContext"]["requestId"] and line["tenant_id"] == "t_1"


def test_visitor_tokens_are_issued_by_the_given_admission() -> None:
    assert admission(InMemoryStateStore()).tokens() is TOKENS


HANDLERS = sorted((Path(__file__).parents[2] / "functions").glob("*/handler.py"))


@pytest.mark.parametrize("path", HANDLERS, ids=lambda path: path.parent.name)
def test_every_handler_stays_thin(path: Path) -> None:
    # A handler parses, calls a use case and maps errors (30 lines at most, decorators included);
    # anything longer belongs in shared/ where it is tested without the Lambda event.
    import ast

    [handler] = [node for node in ast.parse(path.read_text()).body if isinstance(node, ast.FunctionDef)]
    first = min([decorator.lineno for decorator in handler.decorator_list] + [handler.lineno])
    assert (handler.end_lineno or 0) - first + 1 <= 30
