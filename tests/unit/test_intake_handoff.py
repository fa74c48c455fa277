"""Frames through the message function's logic: visitors' messages while people own the conversation,
the widget's buttons and receipts, history, and the agent console's actions."""

import json

import pytest

from shared.errors import BadRequest, UnknownAction
from shared.handoff.views import alias
from shared.wire.protocol import parse_client_frame
from tests.unit.handoff_support import Desk


@pytest.fixture
def desk() -> Desk:
    desk = Desk()
    desk.configure(auto_assign=False)
    desk.agent("a_1", "Alice")
    desk.agent("a_2", "Bob")
    desk.visitor_tab("v-tab")
    return desk


def say(desk: Desk, text: str, cmid: str, tab: str = "v-tab", **extra: str) -> dict:
    desk.send(tab, action="sendMessage", clientMessageId=cmid, text=text, **extra)
    return [f for f in desk.frames(tab, "ack") if f["clientMessageId"] == cmid][-1]


def taken_by_alice(desk: Desk) -> str:
    conversation_id = say(desk, "转人工", "cmid-0001")["conversationId"]
    desk.send("tab-a_1", action="accept", conversationId=conversation_id)
    desk.clear()
    desk.queue.jobs.clear()
    return conversation_id


def test_asking_for_a_person_in_words_hands_off_instead_of_answering(desk: Desk) -> None:
    ack = say(desk, "Can I talk to a human please?", "cmid-0001")
    assert desk.queue.jobs == []
    assert desk.status(ack["conversationId"]) == "queued"
    assert desk.types("v-tab") == ["ack", "conversation.status", "notice"]  # the ack comes first
    queue = desk.frames("tab-a_1", "queue.updated")[-1]["added"]
    assert queue[0]["preview"] == "Can I talk to a human please?"
    assert queue[0]["visitor"]["page"] == "https://shop.example/chair"


def test_the_button_hands_off_even_before_the_first_message(desk: Desk) -> None:
    desk.send("v-tab", action="requestHuman")
    [status] = desk.frames("v-tab", "conversation.status")
    assert status["status"] == "queued"
    assert desk.store.connections["v-tab"].conversation_id == status["conversationId"]


def test_while_queued_messages_are_stored_and_acked_but_never_queued_for_the_bot(desk: Desk) -> None:
    conversation_id = say(desk, "转人工", "cmid-0001")["conversationId"]
    say(desk, "hello? anyone?", "cmid-0002")
    assert desk.queue.jobs == []
    assert [m.text for m in desk.store.list_messages(conversation_id) if m.role == "visitor"] == [
        "转人工",
        "hello? anyone?",
    ]
    assert desk.store.conversations[conversation_id].preview == "hello? anyone?"


def test_while_assigned_visitor_messages_go_to_the_agents_tabs_only(desk: Desk) -> None:
    conversation_id = taken_by_alice(desk)
    desk.agent_tab("a_1", "alice-second-tab")
    say(desk, "my order is 123", "cmid-0002")
    assert desk.queue.jobs == []
    for tab in ("tab-a_1", "alice-second-tab"):
        [forwarded] = desk.frames(tab, "visitor.message")
        assert forwarded["text"] == "my order is 123" and forwarded["conversationId"] == conversation_id
    assert desk.frames("tab-a_2") == []


def test_agent_messages_reach_the_visitor_and_a_resend_is_not_duplicated(desk: Desk) -> None:
    conversation_id = taken_by_alice(desk)
    desk.agent_tab("a_1", "alice-second-tab")
    frame = {
        "action": "agentMessage",
        "conversationId": conversation_id,
        "clientMessageId": "agent-0001",
        "text": "Hi!",
    }
    desk.send("tab-a_1", **frame)
    desk.send("tab-a_1", **frame)  # resent after a reconnect

    acks = desk.frames("tab-a_1", "ack")
    assert len(acks) == 2 and acks[0]["messageId"] == acks[1]["messageId"]
    [delivered] = desk.frames("v-tab", "agent.message")
    assert delivered["text"] == "Hi!" and delivered["agent"] == {"agentId": "a_1", "name": "Alice"}
    assert len(desk.frames("alice-second-tab", "agent.message")) == 1
    assert [m.text for m in desk.store.list_messages(conversation_id) if m.role == "agent"] == ["Hi!"]


def test_only_the_holder_may_write_to_the_visitor(desk: Desk) -> None:
    conversation_id = taken_by_alice(desk)
    desk.send("tab-a_2", action="agentMessage", conversationId=conversation_id, clientMessageId="agent-0002", text="x")
    [error] = desk.frames("tab-a_2", "error")
    assert error["code"] == "forbidden" and error["clientMessageId"] == "agent-0002"
    assert desk.frames("v-tab", "agent.message") == []


def test_internal_notes_never_reach_the_visitor(desk: Desk) -> None:
    conversation_id = taken_by_alice(desk)
    desk.send("tab-a_2", action="note", conversationId=conversation_id, clientMessageId="note-0001", text="VIP")
    assert desk.frames("v-tab") == []
    assert desk.frames("tab-a_1", "note")[0]["text"] == "VIP"  # the holder sees it
    desk.send("v-tab", action="history", conversationId=conversation_id)
    [page] = desk.frames("v-tab", "history")
    assert "note" not in {m["role"] for m in page["messages"]} and "conversation" not in page
    desk.send("tab-a_1", action="history", conversationId=conversation_id)
    [agent_page] = desk.frames("tab-a_1", "history")
    assert [m["text"] for m in agent_page["messages"] if m["role"] == "note"] == ["VIP"]
    # Agents see an alias derived from the visitor id, never the id itself.
    assert agent_page["conversation"]["visitor"]["alias"] == alias("visitor-aaa")
    assert "visitor-aaa" not in json.dumps(agent_page)


def test_typing_and_read_receipts_travel_both_ways(desk: Desk) -> None:
    conversation_id = taken_by_alice(desk)
    say(desk, "are you there?", "cmid-0002")
    visitor_message = desk.frames("tab-a_1", "visitor.message")[0]["messageId"]
    desk.send("v-tab", action="typing", typing=True, conversationId=conversation_id)
    desk.send("tab-a_1", action="typing", typing=True, conversationId=conversation_id)
    desk.send("tab-a_1", action="read", messageId=visitor_message, conversationId=conversation_id)
    desk.send("tab-a_1", action="read", messageId=visitor_message, conversationId=conversation_id)  # no news

    assert desk.frames("tab-a_1", "typing") == [
        {"type": "typing", "conversationId": conversation_id, "from": "visitor", "typing": True}
    ]
    assert desk.frames("v-tab", "typing")[0]["from"] == "agent" and desk.frames("v-tab", "typing")[0]["name"] == "Alice"
    assert [f["messageId"] for f in desk.frames("v-tab", "read")] == [visitor_message]
    assert desk.store.conversations[conversation_id].agent_read_until == visitor_message


def test_negative_feedback_hands_off_and_positive_does_not(desk: Desk) -> None:
    ack = say(desk, "How long does delivery take?", "cmid-0001")
    answer_id = desk.bot_answer(ack)
    desk.send("v-tab", action="feedback", messageId=answer_id, rating="up")
    assert desk.status(ack["conversationId"]) == "bot"
    desk.send("v-tab", action="feedback", messageId=answer_id, rating="down")
    assert desk.status(ack["conversationId"]) == "queued"
    assert desk.store.conversations[ack["conversationId"]].handoff_reason == "negative_feedback"
    assert [f["rating"] for f in desk.frames("v-tab", "feedback.saved")] == ["up", "down"]
    desk.send("v-tab", action="feedback", messageId=ack["messageId"], rating="down")  # not a bot answer
    assert desk.frames("v-tab", "error")[-1]["code"] == "not_found"


def test_a_resolved_conversation_reopened_by_the_visitor_goes_to_the_bot_without_looping(desk: Desk) -> None:
    desk.configure(no_answer_threshold=1)
    conversation_id = taken_by_alice(desk)
    desk.send("tab-a_1", action="resolve", conversationId=conversation_id)
    assert desk.status(conversation_id) == "resolved"
    desk.clear()

    say(desk, "One more question: do you ship abroad?", "cmid-0009")

    assert desk.status(conversation_id) == "bot"
    conversation = desk.store.conversations[conversation_id]
    assert conversation.assignee_id is None and conversation.no_answer_streak == 0
    [job] = desk.queue.jobs
    assert job.conversation_id == conversation_id
    assert desk.types("v-tab") == ["ack", "conversation.status"]
    assert desk.events(conversation_id)[-1] == "reopened"


def test_a_resent_message_is_not_queued_for_the_bot_once_people_own_the_conversation(desk: Desk) -> None:
    ack = say(desk, "How do I return this?", "cmid-0001")
    desk.queue.jobs.clear()
    desk.send("v-tab", action="requestHuman", conversationId=ack["conversationId"])
    again = say(desk, "How do I return this?", "cmid-0001")
    assert again["messageId"] == ack["messageId"] and desk.queue.jobs == []


def test_a_returning_visitor_gets_the_transcript_and_this_tab_is_attached(desk: Desk) -> None:
    conversation_id = taken_by_alice(desk)
    desk.send("tab-a_1", action="agentMessage", conversationId=conversation_id, clientMessageId="agent-0001", text="Hi")
    desk.visitor_tab("v-new-tab")  # the visitor reloads the page
    desk.send("v-new-tab", action="history", conversationId=conversation_id)
    [page] = desk.frames("v-new-tab", "history")
    assert page["status"] == "assigned" and page["agent"]["name"] == "Alice"
    assert [m["role"] for m in page["messages"]] == ["visitor", "event", "event", "agent"]
    desk.send("tab-a_1", action="agentMessage", conversationId=conversation_id, clientMessageId="agent-0002", text="?")
    assert [f["text"] for f in desk.frames("v-new-tab", "agent.message")] == ["?"]
    newest = page["messages"][-1]["messageId"]
    desk.send("v-new-tab", action="history", conversationId=conversation_id, after=newest)
    assert [m["text"] for m in desk.frames("v-new-tab", "history")[-1]["messages"]] == ["?"]


def test_history_of_someone_elses_conversation_is_not_found(desk: Desk) -> None:
    conversation_id = say(desk, "hi", "cmid-0001")["conversationId"]
    desk.visitor_tab("intruder", visitor_id="visitor-zzz")
    desk.send("intruder", action="history", conversationId=conversation_id)
    assert desk.frames("intruder", "error")[0]["code"] == "not_found"
    assert desk.store.connections["intruder"].conversation_id is None


def test_roles_are_kept_apart(desk: Desk) -> None:
    conversation_id = say(desk, "转人工", "cmid-0001")["conversationId"]
    desk.send("v-tab", action="accept", conversationId=conversation_id)
    desk.send("tab-a_1", action="sendMessage", clientMessageId="cmid-0002", text="hi")
    assert desk.frames("v-tab", "error")[0]["code"] == "forbidden"
    assert desk.frames("tab-a_1", "error")[0]["code"] == "forbidden"
    assert desk.status(conversation_id) == "queued"


def test_agent_sync_gives_the_console_everything(desk: Desk) -> None:
    say(desk, "转人工", "cmid-0001")
    desk.send("tab-a_1", action="agentSync")
    [state] = desk.frames("tab-a_1", "agent.state")
    assert state["agent"]["presence"] == "online" and state["agent"]["capacity"] == 5
    assert len(state["queue"]) == 1 and state["mine"] == [] and state["openNow"] is True
    assert {a["name"] for a in state["agents"]} == {"Alice", "Bob"}
    assert state["cannedReplies"][0]["title"]
    assert desk.frames("tab-a_2", "presence")[0]["agent"]["agentId"] == "a_1"


def test_a_deleted_agent_is_refused(desk: Desk) -> None:
    desk.store.delete_agent("a_1")
    desk.send("tab-a_1", action="agentSync")
    assert desk.frames("tab-a_1", "error")[0]["code"] == "forbidden"


@pytest.mark.parametrize(
    ("frame", "reason"),
    [
        ({"action": "feedback", "messageId": "m.a", "rating": "meh"}, "rating"),
        ({"action": "typing"}, "typing"),
        ({"action": "history", "limit": 1000}, "limit"),
        ({"action": "transfer", "conversationId": "c_1"}, "agentId"),
        ({"action": "agentMessage", "conversationId": "c_1", "clientMessageId": "agent-0001", "text": " "}, "blank"),
    ],
)
def test_bad_frames_name_the_field(frame: dict, reason: str) -> None:
    with pytest.raises(BadRequest, match=reason):
        parse_client_frame(json.dumps(frame), max_chars=100)


def test_unknown_actions_list_the_known_ones() -> None:
    with pytest.raises(UnknownAction, match="requestHuman"):
        parse_client_frame(json.dumps({"action": "dance"}), max_chars=100)


def test_transfer_return_and_presence_through_the_console_actions(desk: Desk) -> None:
    conversation_id = taken_by_alice(desk)
    desk.send("tab-a_1", action="transfer", conversationId=conversation_id, agentId="a_2")
    assert desk.store.conversations[conversation_id].assignee_id == "a_2"
    assert desk.frames("v-tab", "notice")[-1]["code"] == "transferred"
    desk.send("tab-a_1", action="returnToBot", conversationId=conversation_id)  # no longer Alice's
    assert desk.frames("tab-a_1", "error")[-1]["code"] == "forbidden"
    desk.send("tab-a_2", action="transfer", conversationId=conversation_id, agentId="a_404")
    assert desk.frames("tab-a_2", "error")[-1]["code"] == "not_found"
    desk.send("tab-a_2", action="returnToBot", conversationId=conversation_id)
    assert desk.status(conversation_id) == "bot"
    desk.send("tab-a_2", action="setPresence", status="away")
    assert desk.store.agents["a_2"].away is True
    assert desk.frames("tab-a_1", "presence")[-1]["agent"]["presence"] == "away"


def test_big_queues_still_fit_one_frame(desk: Desk) -> None:
    for i in range(60):
        desk.visitor_tab(f"v-{i}", visitor_id=f"visitor-{i:04d}")
        desk.store.connections[f"v-{i}"].page = "https://shop.example/" + "p" * 480
        desk.send(f"v-{i}", action="sendMessage", clientMessageId=f"cmid-{i:05d}", text="转人工 " + "x" * 300)
    desk.send("tab-a_1", action="agentSync")
    [state] = desk.frames("tab-a_1", "agent.state")
    assert len(json.dumps(state, ensure_ascii=False, separators=(",", ":")).encode()) <= 28 * 1024
    assert 10 < len(state["queue"]) < 60  # the longest waiting kept, the rest on the next update
    waiting = [c["waitingSince"] for c in state["queue"]]
    assert waiting == sorted(waiting)


def test_agents_read_only_queued_conversations_and_their_own(desk: Desk) -> None:
    # A conversation only the bot has had: no agent was ever given it (issue 11, finding 3).
    bot_only = say(desk, "Where is my order?", "cmid-0001")["conversationId"]
    desk.clear()
    for agent_tab in ("tab-a_1", "tab-a_2"):
        desk.send(agent_tab, action="history", conversationId=bot_only)
        [error] = desk.frames(agent_tab, "error")
        assert error["code"] == "not_found"
        assert desk.frames(agent_tab, "history") == []
    # Queued: every agent may look before accepting; assigned: only the holder.
    desk.send("v-tab", action="requestHuman", conversationId=bot_only)
    desk.send("tab-a_2", action="history", conversationId=bot_only)
    assert len(desk.frames("tab-a_2", "history")) == 1
    desk.send("tab-a_1", action="accept", conversationId=bot_only)
    desk.clear()
    desk.send("tab-a_2", action="history", conversationId=bot_only)
    assert desk.frames("tab-a_2", "history") == [] and desk.frames("tab-a_2", "error")[0]["code"] == "not_found"
    desk.send("tab-a_1", action="history", conversationId=bot_only)
    assert len(desk.frames("tab-a_1", "history")) == 1


def test_a_tenant_may_let_agents_read_every_conversation(desk: Desk) -> None:
    desk.configure(auto_assign=False, agents_see_all=True)
    bot_only = say(desk, "Where is my order?", "cmid-0001")["conversationId"]
    desk.clear()
    desk.send("tab-a_2", action="history", conversationId=bot_only)
    assert len(desk.frames("tab-a_2", "history")) == 1
