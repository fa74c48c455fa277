"""A channel message through the visitor intake (ChannelDesk) and frames for a channel customer through
the push port's channel destination (ChannelPush), over in-memory fakes. The platform is WeChat's API
as an httpx MockTransport that records what was sent (tests/e2e runs it against the fake servers)."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from shared.channels.base import STAFF_ENDED_SESSION, Channel, PlatformError, VisitorMessage
from shared.channels.directory import ChannelDirectory, ChannelRecord
from shared.channels.inbox import ChannelAdapters
from shared.channels.push import ChannelPush
from shared.channels.registry import build_channel
from shared.chat.channel_desk import ChannelDesk, NotQueued
from shared.chat.intake import Intake
from shared.handoff.notify import Notifier
from shared.state.records import ChannelNotice, Citation, StatusChange, StoredMessage
from shared.wire.protocol import AgentMessageFrame, AgentRef, AnswerDelta, AnswerEnd
from shared.wire.push import RoutedPush, channel_connection_id
from tests.support.channel_state_fake import FakeChannelState
from tests.unit.handoff_support import TENANT, Desk


@dataclass
class WeChatApi:
    """custom/send answers the next scripted errcode (0 when none is left)."""

    errcodes: list[int] = field(default_factory=list)
    sent: list[dict[str, Any]] = field(default_factory=list)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/cgi-bin/token":
            return httpx.Response(200, json={"access_token": "T1", "expires_in": 7200})
        code = self.errcodes.pop(0) if self.errcodes else 0
        if code == 0:
            self.sent.append(json.loads(request.content))
        return httpx.Response(200, json={"errcode": code, "errmsg": "ok" if code == 0 else "refused"})

    def texts(self) -> list[str]:
        return [s["text"]["content"] for s in self.sent]


@dataclass
class World:
    desk: Desk
    api: WeChatApi
    record: ChannelRecord
    channels: ChannelDesk
    push: RoutedPush
    state: FakeChannelState

    def message(self, text: str, msg_id: str, customer: str = "o_user", msg_type: str = "text") -> VisitorMessage:
        return VisitorMessage(self.record.channel_id, customer, msg_id, text, sent_at=0.0, msg_type=msg_type)

    def deliver(self, text: str, msg_id: str, customer: str = "o_user", msg_type: str = "text") -> None:
        message = self.message(text, msg_id, customer, msg_type)
        # As inbound.receive does before delivering: the message opens the customer's reply window.
        self.adapter().customer_acted(message)
        self.channels.deliver(self.record, message)

    def adapter(self) -> Channel:
        return self.push_adapters.for_record(self.record)

    @property
    def push_adapters(self) -> ChannelAdapters:
        return self._adapters

    _adapters: ChannelAdapters = field(init=False)
    # What the ChannelSendsFailed metric counted: (tenant, channel, kind, status, conversation).
    failed_sends: list[tuple[str, ...]] = field(init=False)

    def conversation_id(self, customer: str = "o_user") -> str:
        connection = self.desk.store.get_connection(channel_connection_id(self.record.channel_id, customer))
        assert connection is not None and connection.conversation_id is not None
        return connection.conversation_id


def agent_reply(conversation_id: str, message_id: str, text: str) -> AgentMessageFrame:
    agent = AgentRef(agent_id="a_1", name="Alice")
    return AgentMessageFrame(
        conversation_id=conversation_id, message_id=message_id, text=text, created_at=1, agent=agent
    )


@pytest.fixture
def world() -> World:
    desk = Desk()
    api = WeChatApi()
    state = FakeChannelState()
    directory = ChannelDirectory(state)
    fields = {"appId": "wx1", "token": "tok", "appSecret": "app-secret", "apiBaseUrl": "https://wechat.test"}
    record = directory.create(TENANT, "wechat_oa", fields)
    http = httpx.Client(transport=httpx.MockTransport(api))
    adapters = ChannelAdapters(
        lambda r: build_channel(r.kind, r.channel_id, r.fields, {"app-secret": "s"}.__getitem__, state, http)
    )
    failed: list[tuple[str, ...]] = []
    channel_push = ChannelPush(
        directory, adapters.for_record, desk.store, state, count_failed=lambda *sent: failed.append(sent)
    )
    push = RoutedPush(desk.push, lambda: channel_push)
    intake = Intake(
        store=desk.store,
        cache=desk.cache,
        queue=desk.queue,
        push=push,
        callback_url="https://d/s",
        max_message_chars=500,
        clock=lambda: desk.now,
    )
    world = World(desk, api, record, ChannelDesk(desk.store, intake, desk.queue, state), push, state)
    world._adapters = adapters
    world.failed_sends = failed
    return world


def test_a_channel_message_is_a_visitor_message_in_one_conversation_per_customer(world: World) -> None:
    world.deliver("几点开门？", "m1")
    world.deliver("周末呢？", "m2")
    world.deliver("你好", "m3", customer="o_other")
    conversation = world.desk.store.get_conversation(world.conversation_id())
    assert conversation is not None and conversation.channel is not None
    assert (conversation.channel.kind, conversation.channel.customer_id) == ("wechat_oa", "o_user")
    assert [m.text for m in world.desk.store.list_messages(conversation.conversation_id)] == ["几点开门？", "周末呢？"]
    assert world.conversation_id("o_other") != conversation.conversation_id
    jobs = world.desk.queue.jobs
    assert [job.text for job in jobs] == ["几点开门？", "周末呢？", "你好"]
    assert jobs[0].connection_id == channel_connection_id(world.record.channel_id, "o_user")
    assert world.api.sent == []  # acks are for widgets: nothing reached the platform


def test_first_messages_arriving_together_share_one_conversation(world: World) -> None:
    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(lambda i: world.deliver(f"问题{i}", f"m{i}"), range(4)))
    conversations = {job.conversation_id for job in world.desk.queue.jobs}
    assert len(world.desk.queue.jobs) == 4 and conversations == {world.conversation_id()}


def test_a_follow_or_an_image_is_not_a_question(world: World) -> None:
    world.deliver("", "event:o_user:1700000000")
    world.deliver("   ", "m-image")
    assert world.desk.store.conversations == {} and world.desk.queue.jobs == [] and world.api.sent == []


def test_a_media_message_is_answered_honestly_once_in_a_while(world: World) -> None:
    world.deliver("", "m-image", msg_type="image")
    world.deliver("", "m-voice", msg_type="voice")  # a second one minutes later: not told again
    [told] = world.api.texts()
    assert "文字" in told and "转人工" in told  # zh-CN on WeChat: type it, or ask for a person
    assert world.desk.queue.jobs == [] and world.desk.store.conversations == {}  # nothing to answer
    world.deliver("", "m-loc", customer="o_other", msg_type="location")  # another customer is told too
    assert len(world.api.texts()) == 2


def test_a_media_message_in_a_conversation_is_a_transcript_line_and_asks_no_answer(world: World) -> None:
    world.deliver("几点开门？", "m1")
    world.deliver("", "m2", msg_type="image")
    conversation_id = world.conversation_id()
    assert world.desk.events(conversation_id) == ["channel_media"]
    [line] = [m for m in world.desk.store.list_messages(conversation_id) if m.role == "event"]
    assert "an image" in line.text and "wechat_oa" in line.text
    assert [job.text for job in world.desk.queue.jobs] == ["几点开门？"]  # the image queued no answer
    assert "转人工" in world.api.texts()[-1]


def test_a_media_message_in_a_handed_off_conversation_reaches_the_agent(world: World) -> None:
    world.desk.agent("a_1", "Alice")
    world.deliver("转人工", "m1")
    conversation_id = world.conversation_id()
    assert world.desk.status(conversation_id) == "assigned"
    sent_before = len(world.api.texts())
    world.deliver("", "m2", msg_type="file")
    told = world.api.texts()[sent_before:]
    assert len(told) == 1 and "客服看不到" in told[0] and "转人工" not in told[0]  # people have it already
    assert "channel_media" in world.desk.events(conversation_id)
    [update] = world.desk.frames("tab-a_1", "conversation.updated")  # the console reloads the transcript
    assert update["conversation"]["conversationId"] == conversation_id
    assert update["conversation"]["preview"] == "[a file]"


def test_a_media_notice_the_platform_did_not_take_is_told_on_the_retry(world: World) -> None:
    world.api.errcodes = [-1]  # the platform is busy: the send fails, the platform's retry comes
    with pytest.raises(PlatformError):
        world.deliver("", "m-image", msg_type="image")
    world.deliver("", "m-image", msg_type="image")
    assert len(world.api.texts()) == 1


def _staff_ended(world: World, msg_id: str) -> None:
    extra = {"event": STAFF_ENDED_SESSION, "servicer": "zhangsan"}
    message = VisitorMessage(world.record.channel_id, "o_user", msg_id, "", 0.0, "event", "none", extra=extra)
    world.channels.deliver(world.record, message)


def test_a_session_the_platforms_staff_ended_goes_back_to_the_bot(world: World) -> None:
    world.deliver("几点开门？", "m1")
    conversation_id = world.conversation_id()
    store = world.desk.store
    conversation = store.get_conversation(conversation_id)
    assert conversation is not None
    # As a handoff to WeCom's own staff leaves it: queued in kefu, held by the platform.
    store.change_status(conversation, StatusChange(status="queued", from_statuses=frozenset({"bot"}), waiting_since=1))
    store.set_channel_notice(conversation_id, ChannelNotice(status="session_elsewhere", reason="zhangsan", at=1))
    _staff_ended(world, "evt1")
    conversation = store.get_conversation(conversation_id)
    assert conversation is not None and conversation.status == "bot" and conversation.channel_notice is None
    assert "returned_to_bot:platform" in world.desk.events(conversation_id)
    world.deliver("周末呢？", "m2")  # the bot answers again
    assert [job.text for job in world.desk.queue.jobs] == ["几点开门？", "周末呢？"]
    _staff_ended(world, "evt2")  # a late or repeated event changes nothing
    assert world.desk.status(conversation_id) == "bot"


def test_a_session_end_leaves_kefus_own_queue_alone(world: World) -> None:
    world.deliver("几点开门？", "m1")
    conversation_id = world.conversation_id()
    conversation = world.desk.store.get_conversation(conversation_id)
    assert conversation is not None
    # Waiting for kefu's agents, never handed to the platform's staff: their session ending is not ours.
    world.desk.store.change_status(
        conversation, StatusChange(status="queued", from_statuses=frozenset({"bot"}), waiting_since=1)
    )
    _staff_ended(world, "evt1")
    assert world.desk.status(conversation_id) == "queued" and world.desk.events(conversation_id) == []


def test_a_session_the_platforms_staff_ended_stays_with_the_kefu_agent_who_holds_it(world: World) -> None:
    world.desk.agent("a_1", "Alice")
    world.deliver("转人工", "m1")
    conversation_id = world.conversation_id()
    assert world.desk.status(conversation_id) == "assigned"
    world.desk.store.set_channel_notice(
        conversation_id, ChannelNotice(status="session_elsewhere", reason="zhangsan", at=1)
    )
    _staff_ended(world, "evt1")
    conversation = world.desk.store.get_conversation(conversation_id)
    assert conversation is not None and conversation.status == "assigned" and conversation.channel_notice is None
    assert "channel_session_ended" in world.desk.events(conversation_id)
    assert world.desk.frames("tab-a_1", "conversation.updated")


def test_the_same_platform_message_is_stored_and_queued_once(world: World) -> None:
    world.deliver("几点开门？", "m1")
    world.deliver("几点开门？", "m1")  # got past the first-sighting check (e.g. its record expired)
    assert len(world.desk.store.list_messages(world.conversation_id())) == 1
    # Not answered yet, so it is queued again, as the widget's resend is: the same job (SQS drops the
    # copy by its deduplication id, and the generate function's answered-check any later one).
    assert len({job.dedup_id() for job in world.desk.queue.jobs}) == 1


def test_a_message_stored_but_not_queued_is_refused_so_the_platform_retries(world: World) -> None:
    world.desk.queue.fail = True
    with pytest.raises(NotQueued):
        world.deliver("几点开门？", "m1")
    world.desk.queue.fail = False
    world.deliver("几点开门？", "m1")
    assert len(world.desk.queue.jobs) == 1
    assert world.api.sent == []


def test_asking_for_a_person_hands_off_and_the_notice_goes_out_through_the_channel(world: World) -> None:
    world.desk.agent("a_1", "Alice")
    world.deliver("转人工", "m1")
    conversation_id = world.conversation_id()
    assert world.desk.status(conversation_id) == "assigned"  # Alice is online: assigned at once
    assert world.desk.queue.jobs == []  # the bot stays silent
    assert world.api.texts(), world.api.texts()  # the handoff notices, in the customer's language
    assert world.desk.frames("tab-a_1")  # the agents were told on their WebSockets


def test_an_answer_goes_out_whole_with_citations_once(world: World) -> None:
    world.deliver("几点开门？", "m1")
    connection_id = channel_connection_id(world.record.channel_id, "o_user")
    conversation_id = world.conversation_id()
    delta = AnswerDelta(conversation_id=conversation_id, message_id="m.a", seq=0, text="每天")
    citation = Citation(document_id="d1", title="营业时间", snippet="…", url="https://shop.example/hours")
    end = AnswerEnd(conversation_id=conversation_id, message_id="m.a", text="每天九点开门。", citations=[citation])
    world.push.send(connection_id, delta.to_json())
    world.push.send(connection_id, end.to_json())
    world.push.send(connection_id, end.to_json())  # a redelivered job's end frame
    [sent] = world.api.texts()
    assert sent.startswith("每天九点开门。") and "营业时间" in sent and "https://shop.example/hours" in sent


def test_a_closed_window_is_stored_for_the_console_and_cleared_by_a_later_send(world: World) -> None:
    world.deliver("几点开门？", "m1")
    connection_id = channel_connection_id(world.record.channel_id, "o_user")
    conversation_id = world.conversation_id()
    world.api.errcodes = [45015]
    reply = agent_reply(conversation_id, "m2", "您好")
    world.push.send(connection_id, reply.to_json())  # refused: an outcome, not an exception
    conversation = world.desk.store.get_conversation(conversation_id)
    assert conversation is not None and conversation.channel_notice is not None
    assert conversation.channel_notice.status == "window_closed"
    assert "channel_window_closed" in world.desk.events(conversation_id)
    channel_id = world.record.channel_id
    assert world.failed_sends == [(TENANT, channel_id, "wechat_oa", "window_closed", conversation_id)]
    world.deliver("还在吗？", "m3")  # the customer writes again: the window reopens
    Notifier(world.desk.store, world.push).visitor(conversation_id, reply.model_copy(update={"message_id": "m4"}))
    assert world.api.texts() == ["您好"]
    assert world.desk.store.get_conversation(conversation_id).channel_notice is None  # type: ignore[union-attr]


def test_a_platform_that_fails_is_shown_to_the_agents(world: World) -> None:
    world.deliver("几点开门？", "m1")
    conversation_id = world.conversation_id()
    world.api.errcodes = [-1]  # WeChat's "system busy": no specific handling, the send failed
    reply = agent_reply(conversation_id, "m2", "您好")
    assert Notifier(world.desk.store, world.push).visitor(conversation_id, reply) == 0
    notice = world.desk.store.get_conversation(conversation_id).channel_notice  # type: ignore[union-attr]
    assert notice is not None and notice.status == "not_delivered" and "-1" in notice.reason
    assert [sent[3] for sent in world.failed_sends] == ["not_delivered"]  # counted once, for the alarm
    Notifier(world.desk.store, world.push).visitor(conversation_id, reply)
    assert world.api.texts() == ["您好"]  # sent on the next try (it was not marked sent)
    assert len(world.failed_sends) == 1  # a send that went through counts nothing
    assert world.desk.store.get_conversation(conversation_id).channel_notice is None  # type: ignore[union-attr]


def test_agent_frames_reach_the_channel_through_the_conversation(world: World) -> None:
    world.deliver("几点开门？", "m1")
    conversation_id = world.conversation_id()
    reply = agent_reply(conversation_id, "m9", "九点")
    assert Notifier(world.desk.store, world.push).visitor(conversation_id, reply) == 1
    assert world.api.texts() == ["九点"]


def test_a_deleted_channel_is_a_gone_connection(world: World) -> None:
    world.deliver("几点开门？", "m1")
    conversation_id = world.conversation_id()
    ChannelDirectory(world.state).delete(world.record)
    end = AnswerEnd(conversation_id=conversation_id, message_id="m.a", text="九点", citations=[])
    assert Notifier(world.desk.store, world.push).visitor(conversation_id, end) == 0
    assert world.api.sent == []
    assert isinstance(world.desk.store.list_messages(conversation_id)[0], StoredMessage)


@pytest.mark.parametrize("kefu_agent_online", [True, False])
def test_a_wecom_channel_set_to_hand_off_to_its_own_staff_transfers_the_session(kefu_agent_online: bool) -> None:
    desk = Desk()
    if kefu_agent_online:
        desk.agent("a_1", "Alice")
    state = FakeChannelState()
    directory = ChannelDirectory(state)
    fields = {
        "corpId": "ww1",
        "token": "tok",
        "encodingAesKey": "aes",
        "corpSecret": "corp",
        "apiBaseUrl": "https://wecom.test",
        "handoffToWecomServicer": "zhangsan",
    }
    record = directory.create(TENANT, "wecom_kf", fields)
    calls: list[tuple[str, dict[str, Any]]] = []

    def wecom(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/cgi-bin/gettoken":
            return httpx.Response(200, json={"access_token": "T", "expires_in": 7200})
        calls.append((request.url.path, json.loads(request.content)))
        transferred = any(path.endswith("/trans") for path, _ in calls)
        if request.url.path == "/cgi-bin/kf/send_msg" and transferred:
            return httpx.Response(200, json={"errcode": 95018, "errmsg": "invalid service state"})
        return httpx.Response(200, json={"errcode": 0, "errmsg": "ok"})

    http = httpx.Client(transport=httpx.MockTransport(wecom))
    secrets = {"aes": "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C", "corp": "s"}
    adapters = ChannelAdapters(
        lambda r: build_channel(r.kind, r.channel_id, r.fields, secrets.__getitem__, state, http)
    )
    push = RoutedPush(desk.push, lambda: ChannelPush(directory, adapters.for_record, desk.store, state))
    intake = Intake(desk.store, desk.cache, desk.queue, push, callback_url="https://d/s", max_message_chars=500)
    customer = "wkKF1/wm_user"
    message = VisitorMessage(record.channel_id, customer, "msg1", "转人工", sent_at=0.0)
    adapters.for_record(record).customer_acted(message)
    ChannelDesk(desk.store, intake, desk.queue).deliver(record, message)

    [(path, body)] = [call for call in calls if call[0].endswith("/trans")]
    assert (body["service_state"], body["servicer_userid"], body["external_userid"]) == (3, "zhangsan", "wm_user")
    connection = desk.store.get_connection(channel_connection_id(record.channel_id, customer))
    assert connection is not None and connection.conversation_id is not None
    conversation = desk.store.get_conversation(connection.conversation_id)
    assert conversation is not None and conversation.channel_notice is not None
    assert conversation.channel_notice.status == "session_elsewhere"
    assert "zhangsan" in conversation.channel_notice.reason
    if not kefu_agent_online:  # WeCom's staff took them: no "nobody is available" notice was sent
        assert not [call for call in calls if call[0] == "/cgi-bin/kf/send_msg"]


def test_a_webhook_delivery_says_what_it_carries() -> None:
    desk = Desk()
    state = FakeChannelState()
    directory = ChannelDirectory(state)
    record = directory.create(TENANT, "webhook", {"deliveryUrl": "https://app.example/kefu", "secret": "s"})
    delivered: list[dict[str, Any]] = []

    def app(request: httpx.Request) -> httpx.Response:
        delivered.append(json.loads(request.content))
        return httpx.Response(200)

    http = httpx.Client(transport=httpx.MockTransport(app))
    key = {"s": "k"}.__getitem__
    adapters = ChannelAdapters(lambda r: build_channel(r.kind, r.channel_id, r.fields, key, state, http))
    push = ChannelPush(directory, adapters.for_record, desk.store, state)
    connection_id = channel_connection_id(record.channel_id, "app-user-1")
    adapters.for_record(record).customer_acted(
        VisitorMessage(record.channel_id, "app-user-1", "c1", "hi", 0.0, conversation_hint="app-conv-9")
    )
    citation = Citation(document_id="d1", title="Returns", snippet="…")
    answer = AnswerEnd(conversation_id="c_1", message_id="m.a", text="30 days.", citations=[citation])
    push.send(connection_id, answer.to_json())
    push.send(connection_id, agent_reply("c_1", "m2", "I'll check.").to_json())
    assert [(d["type"], d["user"], d["conversation"], d["text"]) for d in delivered] == [
        ("answer", "app-user-1", "app-conv-9", "30 days."),
        ("agent_message", "app-user-1", "app-conv-9", "I'll check."),
    ]
    assert delivered[0]["citations"] == [{"title": "Returns", "url": None}]
