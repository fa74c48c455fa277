"""Property tests of the frame parser and the message intake (issue 11's security suite, in part):
whatever a client sends, the answer is a frame or a typed refusal, never an exception that would
become a Lambda error ("Internal server error", an alarm)."""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.chat.intake import Intake
from shared.errors import BadRequest
from shared.state.records import Connection, Tenant
from shared.wire.protocol import KNOWN_ACTIONS, MAX_FRAME_BYTES, parse_client_frame
from tests.unit.fakes import FakePush, FakeQueue, InMemoryContextCache, InMemoryStateStore

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=12), children, max_size=5),
    max_leaves=30,
)
FIELDS = ("clientMessageId", "text", "conversationId", "messageId", "rating", "typing", "before", "after", "limit")
FRAME = st.builds(
    lambda action, fields: {"action": action, **fields},
    st.sampled_from([*KNOWN_ACTIONS, "nope", ""]),
    st.dictionaries(st.sampled_from(FIELDS), JSON, max_size=4),
)
BODY = (
    st.text(max_size=300)
    | JSON.map(json.dumps)
    | FRAME.map(json.dumps)
    | st.integers(min_value=1, max_value=4000).map(lambda depth: "[" * depth + "]" * depth)
    | st.integers(min_value=1, max_value=3000).map(lambda depth: '{"a":' * depth + "1" + "}" * depth)
)


@settings(max_examples=300, deadline=None)
@given(BODY)
def test_any_body_is_a_frame_or_a_bad_request(body: str) -> None:
    try:
        parse_client_frame(body, 8192)
    except BadRequest:
        pass


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(BODY)
def test_the_intake_answers_every_body_on_the_senders_connection(body: str) -> None:
    store = InMemoryStateStore()
    store.put_tenant(Tenant(tenant_id="t_1", name="Shop", widget_key="wk", created_at=1))
    store.put_connection(
        Connection(
            connection_id="conn", tenant_id="t_1", visitor_id="visitor-1", connected_at=1, domain_name="d", stage="s"
        )
    )
    push = FakePush()
    intake = Intake(
        store=store,
        cache=InMemoryContextCache(),
        queue=FakeQueue(),
        push=push,
        callback_url="https://d/s",
        max_message_chars=8192,
    )
    intake.handle("conn", body)  # raises nothing
    errors = [frame for _, frame in push.frames if frame["type"] == "error"]
    if len(body.encode()) > MAX_FRAME_BYTES:
        assert errors and errors[0]["code"] == "message_too_large"
    for error in errors:
        assert error["code"] and error["message"]
