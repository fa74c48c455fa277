"""Handoff only to people who exist: who is on duty, what happens with nobody (the bot keeps the
conversation, the visitor may leave a message: a ticket for agents), the queue served oldest first and
fairly when agents come online or get room, and the notice to visitors who wait too long."""

from datetime import timedelta

import pytest

from shared.handoff import desk as desk_module
from shared.state.records import now_ms
from shared.tenant_config.handoff import AgentHours, HandoffConfig
from tests.unit.fakes import FakeAnswerModel
from tests.unit.handoff_support import Desk
from tests.unit.test_handoff_gate import gate, generator, visitor_message

SHANGHAI_WEEKDAYS = AgentHours(timezone="Asia/Shanghai", weekly={"mon": ["09:00-18:00"], "tue": ["09:00-18:00"]})


@pytest.fixture
def desk() -> Desk:
    desk = Desk()
    desk.visitor_tab("v-tab")
    return desk


def say(desk: Desk, text: str, cmid: str, tab: str = "v-tab", **extra: str) -> dict:
    desk.send(tab, action="sendMessage", clientMessageId=cmid, text=text, **extra)
    return [f for f in desk.frames(tab, "ack") if f["clientMessageId"] == cmid][-1]


def notices(desk: Desk, tab: str = "v-tab") -> list[dict]:
    return desk.frames(tab, "notice")


# --- nobody on duty: no handoff ---


def test_with_no_agents_unanswered_questions_never_hand_off_and_the_bot_keeps_answering(desk: Desk) -> None:
    desk.configure(no_answer_threshold=2)
    desk.conversation()
    unknown = FakeAnswerModel(["Sorry, I could not find that."])
    for i in range(3):
        job = visitor_message(desk, f"000000000000{i}-aaaa")
        assert generator(desk, unknown, [], gate(desk)).answer(job) == "answered"
    assert desk.status() == "bot"
    assert desk.types("v-tab").count("answer.end") == 3
    assert notices(desk) == [] and desk.frames("v-tab", "conversation.status") == []
    # The count keeps growing: once someone is on duty, the next unanswered question hands off.
    desk.agent("a_1", "Alice")
    generator(desk, unknown, [], gate(desk)).answer(visitor_message(desk, "0000000000009-aaaa"))
    assert desk.status() == "assigned"


@pytest.mark.parametrize("absent", ["offline", "away", "disabled"])
def test_agents_offline_away_or_disabled_are_nobody(desk: Desk, absent: str) -> None:
    alice = desk.agent("a_1", "Alice", online=absent != "offline")
    if absent == "away":
        desk.handoff().set_away(alice, True)
    if absent == "disabled":
        desk.store.agents["a_1"].disabled = True
    ack = say(desk, "How long does delivery take?", "cmid-0001")
    answer_id = desk.bot_answer(ack)
    desk.send("v-tab", action="feedback", messageId=answer_id, rating="down")
    assert desk.status(ack["conversationId"]) == "bot"
    assert [f["rating"] for f in desk.frames("v-tab", "feedback.saved")] == ["down"]
    assert notices(desk) == []


def test_an_explicit_request_with_nobody_is_told_honestly_and_the_bot_keeps_answering(desk: Desk) -> None:
    conversation_id = say(desk, "Where is my order?", "cmid-0001")["conversationId"]
    desk.queue.jobs.clear()

    desk.send("v-tab", action="requestHuman", conversationId=conversation_id)

    [notice] = notices(desk)
    assert notice["code"] == "no_agents" and notice["leaveMessage"] is True
    assert "no one from our team is available" in notice["text"]
    assert desk.status(conversation_id) == "bot"
    assert desk.frames("v-tab", "conversation.status") == []
    say(desk, "How long does delivery take?", "cmid-0002", conversationId=conversation_id)
    assert [job.text for job in desk.queue.jobs] == ["How long does delivery take?"]
    assert desk.events(conversation_id) == ["no_agents:visitor_request"]


def test_asking_in_words_with_nobody_gets_the_chinese_notice_on_a_chinese_page(desk: Desk) -> None:
    desk.visitor_tab("zh-tab", visitor_id="visitor-zh1", language="zh-CN")
    desk.send("zh-tab", action="sendMessage", clientMessageId="cmid-zh01", text="转人工")
    [notice] = notices(desk, "zh-tab")
    assert notice["code"] == "no_agents" and "没有人工客服" in notice["text"]


def test_the_tenants_own_text_is_used(desk: Desk) -> None:
    desk.configure(no_agents_text={"en": "Nobody's here, sorry! Leave your e-mail.", "zh": "现在没人。"})
    desk.send("v-tab", action="requestHuman")
    assert notices(desk)[0]["text"] == "Nobody's here, sorry! Leave your e-mail."


def test_in_agent_hours_a_busy_agent_on_duty_means_the_visitor_waits_in_the_queue(desk: Desk) -> None:
    desk.configure(hours=SHANGHAI_WEEKDAYS)
    desk.now = desk.now.replace(hour=3)  # Monday 11:00 in Shanghai: open
    desk.agent("a_1", "Alice", capacity=1)
    desk.store.agents["a_1"].load = 1  # busy
    desk.send("v-tab", action="requestHuman")
    assert [n["code"] for n in notices(desk)] == ["queued"]
    assert desk.frames("v-tab", "conversation.status")[0]["status"] == "queued"


def test_outside_agent_hours_a_busy_agent_is_not_on_duty(desk: Desk) -> None:
    desk.configure(hours=SHANGHAI_WEEKDAYS)
    desk.now = desk.now.replace(hour=11)  # Monday 19:00 in Shanghai: closed
    desk.agent("a_1", "Alice", capacity=1)
    desk.store.agents["a_1"].load = 1
    desk.send("v-tab", action="requestHuman")
    [notice] = notices(desk)
    assert notice["code"] == "offline" and notice["leaveMessage"] is True and "Tue 09:00" in notice["text"]
    assert desk.frames("v-tab", "conversation.status") == []


def test_agent_hours_with_nobody_connected_are_nobody(desk: Desk) -> None:
    desk.configure(hours=SHANGHAI_WEEKDAYS)
    desk.now = desk.now.replace(hour=3)  # open
    desk.agent("a_1", "Alice", online=False)
    desk.send("v-tab", action="requestHuman")
    assert [n["code"] for n in notices(desk)] == ["no_agents"]


# --- leaving a message: the agents' ticket ---


def test_a_left_message_becomes_a_ticket_agents_see_and_close(desk: Desk) -> None:
    desk.send("v-tab", action="requestHuman")
    conversation_id = notices(desk)[0]["conversationId"]
    desk.send(
        "v-tab",
        action="leaveMessage",
        conversationId=conversation_id,
        name="Wang Li",
        contact="wang@example.com",
        text="Please call me about order 42",
    )
    ticket = desk.store.conversations[conversation_id].ticket
    assert ticket is not None and ticket.status == "open" and ticket.contact == "wang@example.com"
    assert notices(desk)[-1]["code"] == "message_left" and "wang@example.com" in notices(desk)[-1]["text"]
    assert desk.status(conversation_id) == "bot"

    # An agent who logs in later sees it.
    desk.agent("a_1", "Alice")
    desk.send("tab-a_1", action="agentSync")
    [listed] = desk.frames("tab-a_1", "agent.state")[0]["tickets"]
    assert listed["conversationId"] == conversation_id and listed["name"] == "Wang Li"
    assert listed["text"] == "Please call me about order 42" and listed["visitor"]["language"] == "en"
    desk.send("tab-a_1", action="history", conversationId=conversation_id)
    events = [m["event"] for m in desk.frames("tab-a_1", "history")[0]["messages"] if m["role"] == "event"]
    assert events == ["no_agents:visitor_request", "ticket"]

    desk.send("tab-a_1", action="closeTicket", conversationId=conversation_id)
    assert desk.frames("tab-a_1", "tickets.updated")[-1]["tickets"] == []
    closed = desk.store.conversations[conversation_id].ticket
    assert closed is not None and closed.status == "closed" and closed.closed_by == "a_1"
    desk.send("tab-a_1", action="closeTicket", conversationId=conversation_id)
    assert desk.frames("tab-a_1", "error")[-1]["code"] == "conflict"


def test_agents_online_hear_of_a_new_ticket_at_once(desk: Desk) -> None:
    desk.agent("a_1", "Alice")
    desk.store.agents["a_1"].away = True  # away: not on duty, but still sees the console
    desk.send("v-tab", action="leaveMessage", contact="+86 138 0000 0000")
    [update] = desk.frames("tab-a_1", "tickets.updated")
    assert [t["contact"] for t in update["tickets"]] == ["+86 138 0000 0000"]


def test_agents_get_the_ticket_news_even_while_the_index_lags(desk: Desk) -> None:
    desk.agent("a_1", "Alice")
    desk.store.agents["a_1"].away = True
    desk.send("v-tab", action="leaveMessage", contact="first@example.com")
    first = desk.store.open_tickets("t_1")
    desk.visitor_tab("v-2", visitor_id="visitor-bbb")
    desk.store.open_tickets = lambda tenant_id, limit=50: first  # type: ignore[method-assign]  # not the new one yet
    desk.send("v-2", action="leaveMessage", contact="second@example.com")
    assert [t["contact"] for t in desk.frames("tab-a_1", "tickets.updated")[-1]["tickets"]] == [
        "first@example.com",
        "second@example.com",
    ]
    both = [*first, *(c for c in desk.store.conversations.values() if c.conversation_id != first[0].conversation_id)]
    desk.store.open_tickets = lambda tenant_id, limit=50: both  # type: ignore[method-assign]  # lists a closed one
    desk.send("tab-a_1", action="closeTicket", conversationId=first[0].conversation_id)
    assert [t["contact"] for t in desk.frames("tab-a_1", "tickets.updated")[-1]["tickets"]] == ["second@example.com"]


@pytest.mark.parametrize(
    "frame",
    [
        {"action": "leaveMessage", "contact": "   "},
        {"action": "leaveMessage"},
        {"action": "leaveMessage", "contact": "a@b.c", "text": "x" * 2001},
    ],
)
def test_a_bad_left_message_is_refused_and_nothing_is_stored(desk: Desk, frame: dict) -> None:
    desk.send("v-tab", **frame)
    assert desk.frames("v-tab", "error")[0]["code"] == "bad_request"
    assert desk.store.conversations == {}


def test_visitors_may_not_close_tickets_and_agents_may_not_leave_them(desk: Desk) -> None:
    desk.agent("a_1", "Alice")
    desk.send("v-tab", action="closeTicket", conversationId="c_1")
    desk.send("tab-a_1", action="leaveMessage", contact="a@b.c")
    assert desk.frames("v-tab", "error")[0]["code"] == "forbidden"
    assert desk.frames("tab-a_1", "error")[0]["code"] == "forbidden"


# --- the queue: oldest first, fair across agents ---


def queue_three_behind_a_busy_agent(desk: Desk) -> None:
    desk.agent("a_1", "Alice", capacity=1)
    desk.store.agents["a_1"].load = 1
    for i in (1, 2, 3):
        desk.handoff().request(desk.conversation(f"c_{i}", visitor_id=f"visitor-{i:03d}", tab=f"v-{i}"), "no_answer")
    assert [desk.status(f"c_{i}") for i in (1, 2, 3)] == ["queued"] * 3


def test_an_agent_who_logs_in_gets_the_oldest_queued_conversations(desk: Desk) -> None:
    queue_three_behind_a_busy_agent(desk)
    desk.agent("a_2", "Bob", capacity=2)

    desk.send("tab-a_2", action="agentSync")

    assert [desk.status(f"c_{i}") for i in (1, 2, 3)] == ["assigned", "assigned", "queued"]
    assigned = [f["conversation"]["conversationId"] for f in desk.frames("tab-a_2", "conversation.assigned")]
    assert assigned == ["c_1", "c_2"]
    [state] = desk.frames("tab-a_2", "agent.state")
    assert {c["conversationId"] for c in state["mine"]} == {"c_1", "c_2"}
    assert [c["conversationId"] for c in state["queue"]] == ["c_3"]
    assert desk.store.agents["a_2"].load == 2


def test_a_new_handoff_never_goes_ahead_of_older_queued_ones(desk: Desk) -> None:
    queue_three_behind_a_busy_agent(desk)
    # Alice gets room without anything draining the queue (say, a capacity raised by an admin).
    desk.store.agents["a_1"].capacity = 2

    newest = desk.handoff().request(desk.conversation("c_4", visitor_id="visitor-004", tab="v-4"), "visitor_request")

    assert newest.status == "queued"
    assert [desk.status(f"c_{i}") for i in (1, 2, 3, 4)] == ["assigned", "queued", "queued", "queued"]


def test_room_freed_by_a_resolve_goes_to_the_oldest(desk: Desk) -> None:
    queue_three_behind_a_busy_agent(desk)
    alice = desk.store.agents["a_1"]
    held = desk.conversation("c_0", status="assigned", visitor_id="visitor-000", tab="v-0")
    desk.store.conversations["c_0"] = held.model_copy(update={"assignee_id": "a_1", "assignee_name": "Alice"})
    desk.handoff().request(desk.conversation("c_4", visitor_id="visitor-004", tab="v-4"), "visitor_request")

    desk.handoff().resolve(alice, "c_0")

    assert [desk.status(f"c_{i}") for i in (1, 2, 3, 4)] == ["assigned", "queued", "queued", "queued"]
    assert desk.store.agents["a_1"].load == 1


def test_the_queue_is_shared_fairly_least_loaded_first(desk: Desk) -> None:
    queue_three_behind_a_busy_agent(desk)
    desk.store.agents["a_1"].capacity = 3  # Alice: 1 of 3, without anything draining the queue
    desk.agent("a_2", "Bob", capacity=5, online=False)  # Bob: 0 of 5

    desk.agent_tab("a_2", "tab-a_2")
    desk.send("tab-a_2", action="agentSync")

    # Oldest first, each to the least loaded (a tie goes to the one assigned least recently).
    owners = [desk.store.conversations[f"c_{i}"].assignee_id for i in (1, 2, 3)]
    assert owners == ["a_2", "a_1", "a_2"]
    assert (desk.store.agents["a_1"].load, desk.store.agents["a_2"].load) == (2, 2)


def test_switching_back_from_away_takes_the_oldest(desk: Desk) -> None:
    queue_three_behind_a_busy_agent(desk)
    bob = desk.agent("a_2", "Bob", capacity=1, online=False)
    desk.store.agents["a_2"].away = True
    desk.agent_tab("a_2", "tab-a_2")
    desk.handoff().set_away(bob.model_copy(update={"away": True}), False)
    assert desk.store.conversations["c_1"].assignee_id == "a_2"
    assert [desk.status(f"c_{i}") for i in (2, 3)] == ["queued", "queued"]


# --- waiting too long ---


def age(desk: Desk, conversation_id: str, seconds: int) -> None:
    conversation = desk.store.conversations[conversation_id]
    conversation.waiting_since = now_ms() - seconds * 1000


def test_a_visitor_waiting_past_the_limit_is_told_once(desk: Desk) -> None:
    desk.configure(queue_notice_after_seconds=300)
    queue_three_behind_a_busy_agent(desk)
    age(desk, "c_1", 301)
    age(desk, "c_2", 100)
    desk.clear()

    desk.send("v-1", action="sendMessage", clientMessageId="cmid-0001", text="hello?", conversationId="c_1")
    desk.send("v-1", action="sendMessage", clientMessageId="cmid-0002", text="still there?", conversationId="c_1")
    desk.handoff().check_waits("t_1")

    [notice] = notices(desk, "v-1")
    assert notice["code"] == "still_waiting" and notice["leaveMessage"] is True
    assert "still busy" in notice["text"]
    assert notices(desk, "v-2") == []
    assert desk.events("c_1").count("still_waiting") == 1


def test_any_agent_activity_checks_the_queue(desk: Desk) -> None:
    desk.configure(queue_notice_after_seconds=60)
    queue_three_behind_a_busy_agent(desk)
    for i in (1, 2, 3):
        age(desk, f"c_{i}", 61)
    desk.clear()
    desk.agent("a_9", "Zoe", online=False)
    desk.store.agents["a_9"].away = True
    desk.agent_tab("a_9", "tab-a_9")
    desk.send("tab-a_9", action="agentSync")
    assert [len(notices(desk, f"v-{i}")) for i in (1, 2, 3)] == [1, 1, 1]


def test_the_consoles_heartbeat_checks_the_queue_at_most_every_half_minute(
    desk: Desk, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(desk_module, "_waits_checked_at", {})
    clock = [1000.0]
    monkeypatch.setattr(desk_module.time, "monotonic", lambda: clock[0])
    desk.configure(queue_notice_after_seconds=60)
    queue_three_behind_a_busy_agent(desk)
    desk.send("tab-a_1", action="heartbeat")  # nobody waited long yet
    age(desk, "c_1", 61)
    clock[0] += 10
    desk.send("tab-a_1", action="heartbeat")  # checked 10 s ago: not again yet
    assert [n["code"] for n in notices(desk, "v-1")] == ["queued"]
    clock[0] += desk_module.WAIT_CHECK_SECONDS
    desk.send("tab-a_1", action="heartbeat")
    assert [n["code"] for n in notices(desk, "v-1")] == ["queued", "still_waiting"]
    assert desk.frames("tab-a_1", "error") == []
    desk.send("v-1", action="heartbeat")
    assert desk.frames("v-1", "error")[0]["code"] == "forbidden"


def test_a_new_wait_gets_a_new_notice_and_zero_means_never(desk: Desk) -> None:
    desk.configure(queue_notice_after_seconds=60)
    queue_three_behind_a_busy_agent(desk)
    age(desk, "c_1", 61)
    desk.handoff().check_waits("t_1")
    assert len(notices(desk, "v-1")) == 2  # queued, still_waiting
    desk.handoff().return_to_bot(desk.store.agents["a_1"], "c_1")
    desk.handoff().request(desk.store.conversations["c_1"], "visitor_request")
    age(desk, "c_1", 61)
    desk.handoff().check_waits("t_1")
    assert [n["code"] for n in notices(desk, "v-1")].count("still_waiting") == 2

    desk.configure(queue_notice_after_seconds=0)
    age(desk, "c_2", 10_000)
    assert desk.handoff().check_waits("t_1") == 0


def test_the_limit_defaults_to_five_minutes() -> None:
    assert timedelta(seconds=HandoffConfig().queue_notice_after_seconds) == timedelta(minutes=5)
