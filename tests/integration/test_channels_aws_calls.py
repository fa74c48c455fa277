"""Every AWS call the channel code makes is one its function's role allows (infra/constructs/access.py).

The channels function's handler and the generate side run for real (the composition root in
shared/wiring.py, DynamoDB, SQS and Secrets Manager on moto's server, WeChat's and WeCom's APIs as the
stand-ins of tests/support) while every botocore call is recorded; each recorded call is then checked
against the grants the CDK stack gives that function. A new store call on these paths without its
grant fails here, before it fails in AWS with AccessDenied.

Paths: a WeChat message (the URL check, a message, its retry, "转人工" handed off with a notice sent
back through WeChat, then an image: the text-only reply and its transcript line), a WeCom callback (a
pull job queued); the generate queue's pull job (WeCom's ``sync_msg``, the pulled message stored and its
answer queued, a pulled image answered) and an answer pushed to a channel
customer (what generate does with ``answer.end``, and the message function with an agent's reply).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import boto3
import pytest
from botocore.client import BaseClient

from infra.constants import FunctionName
from infra.constructs.access import READS_CHANNEL_SECRETS, SENDS_JOBS, TABLE_ACCESS
from local.services import MotoServer
from shared import wiring
from shared.channels.base import InboundRequest
from shared.channels.secrets import SecretsManagerTenantSecrets
from shared.state.dynamodb import DynamoStateStore
from shared.state.records import Tenant, now_ms
from shared.wire.jobs import ChannelPullJob
from shared.wire.protocol import AnswerEnd
from shared.wire.push import channel_connection_id
from tests.events import channel_request_event, lambda_context
from tests.integration.conftest import fresh_tables
from tests.support.fake_wechat_platforms import FakeWeChatServer, FakeWeComServer, WeChatUser, WeComCallbacks

pytestmark = pytest.mark.integration

TENANT_ID = "t_calls"
PREFIX = "kefu/dev/channels"
APP_ID, TOKEN, APP_SECRET = "wx_calls", "tok123", "app-secret-value"
CORP_ID, CORP_SECRET, KF_TOKEN = "ww_calls", "corp-secret-value", "kfTok"
AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"


@dataclass
class Recorder:
    """botocore calls, by the function they are made for (``current``)."""

    current: FunctionName | None = None
    calls: dict[str, list[tuple[str, str, dict[str, Any]]]] = field(default_factory=dict)

    def record(self, service: str, operation: str, params: dict[str, Any]) -> None:
        if self.current is not None:
            self.calls.setdefault(self.current, []).append((service, operation, params))


TRANSACT_ACTIONS = {
    "Put": "PutItem",
    "Update": "UpdateItem",
    "Delete": "DeleteItem",
    "ConditionCheck": "ConditionCheckItem",
    "Get": "GetItem",
}


def _table(name: str) -> str:
    """``it-1234abcd-limits`` -> ``limits`` (the tables of fresh_tables)."""
    return name.rsplit("-", 1)[1]


def iam_actions(calls: list[tuple[str, str, dict[str, Any]]]) -> set[tuple[str, str]]:
    """(resource, IAM action) pairs the calls need: DynamoDB per table (and index), SQS, Secrets Manager."""
    needed: set[tuple[str, str]] = set()
    for service, operation, params in calls:
        if service == "dynamodb":
            if operation in ("TransactWriteItems", "TransactGetItems"):
                for item in params["TransactItems"]:
                    [(kind, spec)] = item.items()
                    action = TRANSACT_ACTIONS[kind]  # IAM authorizes each item of a transaction by its own action
                    needed.add((_table(spec["TableName"]), f"dynamodb:{action}"))
            elif operation == "BatchGetItem":
                needed |= {(_table(t), "dynamodb:BatchGetItem") for t in params["RequestItems"]}
            else:
                table = _table(params["TableName"])
                if params.get("IndexName"):
                    table = f"{table}/index/{params['IndexName']}"
                needed.add((table, f"dynamodb:{operation}"))
        elif service == "sqs":
            needed.add(("generate-queue", f"sqs:{operation}"))
        elif service == "secretsmanager":
            needed.add((params["SecretId"].rsplit("/", 2)[0], f"secretsmanager:{operation}"))
        else:
            needed.add((service, operation))
    return needed


def granted(function: FunctionName) -> set[tuple[str, str]]:
    """What the stack grants ``function`` on these resources (infra/constructs/access.py)."""
    grants: set[tuple[str, str]] = set()
    for table, access in TABLE_ACCESS[function].items():
        for action in access.actions:
            grants.add((table, action))
            grants |= {(f"{table}/index/{index}", action) for index in access.indexes}
    if function in SENDS_JOBS:
        grants |= {("generate-queue", "sqs:SendMessage"), ("generate-queue", "sqs:GetQueueUrl")}
    if function in READS_CHANNEL_SECRETS:
        grants.add((PREFIX, "secretsmanager:GetSecretValue"))
    return grants


@pytest.fixture
def world(moto_server: MotoServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Recorder, Any]]:
    settings = fresh_tables(moto_server)
    region = settings.aws_region
    sqs = boto3.client("sqs", endpoint_url=moto_server.url, region_name=region)
    queue_url = sqs.create_queue(QueueName=f"calls-{uuid.uuid4().hex[:8]}.fifo", Attributes={"FifoQueue": "true"})[
        "QueueUrl"
    ]
    env = {
        "KEFU_DYNAMODB_ENDPOINT": moto_server.url,
        "KEFU_SQS_ENDPOINT": moto_server.url,
        "KEFU_SECRETSMANAGER_ENDPOINT": moto_server.url,
        "KEFU_GENERATE_QUEUE_URL": queue_url,
        "KEFU_TENANT_SECRETS_PREFIX": PREFIX,
        # agents' consoles (none connected here) are reached through the WebSocket API's @connections
        "KEFU_CONNECTIONS_ENDPOINT": "http://127.0.0.1:9/chat",
        **{f"KEFU_{name.upper()}_TABLE": getattr(settings, f"{name}_table") for name in TABLE_NAMES},
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    wiring.forget_adapters()
    DynamoStateStore(wiring.get_settings()).put_tenant(
        Tenant(tenant_id=TENANT_ID, name="Calls", widget_key="wk_calls", created_at=now_ms())
    )
    secrets = SecretsManagerTenantSecrets(
        lambda: boto3.client("secretsmanager", endpoint_url=moto_server.url, region_name=region), PREFIX
    )
    for name, value in (("app-secret", APP_SECRET), ("corp-secret", CORP_SECRET), ("aes", AES_KEY)):
        secrets.put(TENANT_ID, name, value)

    recorder = Recorder()
    original = BaseClient._make_api_call

    def recording(client: BaseClient, operation: str, params: dict[str, Any]) -> Any:
        recorder.record(client.meta.service_model.service_name, operation, params)
        return original(client, operation, params)

    monkeypatch.setattr(BaseClient, "_make_api_call", recording)
    with FakeWeChatServer(APP_ID, APP_SECRET) as wechat, FakeWeComServer(CORP_ID, CORP_SECRET) as wecom:
        yield recorder, (wechat, wecom)
    wiring.forget_adapters()


TABLE_NAMES = ("tenants", "connections", "conversations", "messages", "agents", "limits")


def _call(request: InboundRequest, channel_id: str) -> dict[str, Any]:
    from functions.channels.handler import handler

    event = channel_request_event(
        channel_id, method=request.method, query=request.query, headers=request.headers, body=request.body
    )
    response: dict[str, Any] = handler(event, lambda_context())
    return response


def test_the_channel_paths_call_only_what_their_roles_allow(world: tuple[Recorder, Any]) -> None:
    recorder, (wechat, wecom) = world
    directory = wiring.channel_directory()
    oa = directory.create(
        TENANT_ID,
        "wechat_oa",
        {"appId": APP_ID, "token": TOKEN, "appSecret": "app-secret", "apiBaseUrl": f"http://127.0.0.1:{wechat.port}"},
    )
    kf = directory.create(
        TENANT_ID,
        "wecom_kf",
        {
            "corpId": CORP_ID,
            "token": KF_TOKEN,
            "encodingAesKey": "aes",
            "corpSecret": "corp-secret",
            "apiBaseUrl": f"http://127.0.0.1:{wecom.port}",
        },
    )
    user = WeChatUser(TOKEN, APP_ID, "o_calls")
    wechat.user_wrote("o_calls")

    # The channels function: WeChat's URL check, a message, WeChat's retry of it, 转人工; a WeCom callback.
    recorder.current = "channels"
    assert _call(user.url_check("e1"), oa.channel_id)["body"] == "e1"
    message = user.text("运费多少？")
    assert _call(message, oa.channel_id)["statusCode"] == 200
    assert _call(message, oa.channel_id)["statusCode"] == 200
    assert _call(user.text("转人工"), oa.channel_id)["statusCode"] == 200
    image = {"ToUserName": "gh", "FromUserName": "o_calls", "CreateTime": int(time.time()), "MsgType": "image"}
    assert _call(user.post({**image, "MsgId": 77_000_001}), oa.channel_id)["statusCode"] == 200  # told, noted
    callback_token = wecom.customer_wrote("kf_1", "wm_customer", "发票怎么开？")
    wecom.customer_wrote("kf_1", "wm_customer", "", msgtype="image")  # pulled by generate below
    callbacks = WeComCallbacks(KF_TOKEN, AES_KEY, CORP_ID)
    assert _call(callbacks.messages_waiting("kf_1", callback_token), kf.channel_id)["statusCode"] == 200

    # generate: the pull job WeCom's callback queued, and an answer pushed to the WeChat customer.
    wiring.forget_adapters()  # another function: its own container, nothing cached
    recorder.current = "generate"
    pulled = wiring.channel_inbox().pull(
        ChannelPullJob(tenant_id=TENANT_ID, channel_id=kf.channel_id, open_kfid="kf_1", token=callback_token)
    )
    assert len(pulled.delivered) == 2  # the question, and the image (its reply sent from generate)
    assert any("文字" in sent["text"]["content"] for sent in wecom.sent)
    assert any(sent["touser"] == "o_calls" and "文字" in sent["text"]["content"] for sent in wechat.sent)
    answer = AnswerEnd(conversation_id="c_calls", message_id="m_answer", text="3-5 天送达。", citations=[])
    wiring.channel_push().send(channel_connection_id(oa.channel_id, "o_calls"), answer.to_json())
    assert any("3-5" in sent["text"]["content"] for sent in wechat.sent)

    # message: an agent's reply to that customer, and one to a customer whose window is closed (the
    # refusal is stored on the conversation and in its transcript for the agents).
    wiring.forget_adapters()  # another function: its own container, nothing cached
    recorder.current = "message"
    push = wiring.channel_push()
    for customer, message_id in (("o_calls", "m_agent1"), ("o_window_closed", "m_agent2")):
        reply = {
            "type": "agent.message",
            "conversationId": "c_calls",
            "messageId": message_id,
            "text": "您好，我是小李。",
        }
        push.send(channel_connection_id(oa.channel_id, customer), json.dumps(reply))
    assert any(sent["touser"] == "o_calls" and "小李" in sent["text"]["content"] for sent in wechat.sent)
    assert not any(sent["touser"] == "o_window_closed" for sent in wechat.sent)

    # Then every call is granted, per function; and the paths did reach each kind of resource.
    for function, calls in recorder.calls.items():
        needed = iam_actions(calls)
        missing = needed - granted(function)  # type: ignore[arg-type]
        assert not missing, f"{function} calls what its role does not allow: {sorted(missing)}"
    channels = iam_actions(recorder.calls["channels"])
    assert {("limits", "dynamodb:GetItem"), ("limits", "dynamodb:PutItem")} <= channels
    assert ("generate-queue", "sqs:SendMessage") in channels
    assert (PREFIX, "secretsmanager:GetSecretValue") in channels
    generate = iam_actions(recorder.calls["generate"])
    assert ("generate-queue", "sqs:SendMessage") in generate  # the pulled message's answer job
    message = iam_actions(recorder.calls["message"])
    assert {(PREFIX, "secretsmanager:GetSecretValue"), ("limits", "dynamodb:PutItem")} <= message
    assert ("conversations", "dynamodb:UpdateItem") in message  # the closed window, noted
