"""Conversation ownership: queue, assignment (round-robin, capacity, presence), agent actions, reopen."""

from datetime import timedelta

import pytest

from shared.errors import Conflict, Forbidden, NotFound
from shared.handoff.texts import notice_language, notice_text
from shared.state.records import Conversation
from shared.tenant_config.handoff import AgentHours, HandoffConfig
from tests.unit.handoff_support import TENANT, Desk


@pytest.fixture
def desk() -> Desk:
    return Desk()


def test_handoff_queues_tells_the_visitor_and_the_agents(desk: Desk) -> None:
    desk.configure(auto_assign=False)
    desk.agent("a_1", "Alice")
    conversation = desk.conversation()

    queued = desk.handoff().request(conversation, "visitor_request", preview="Where is my chair?")

    assert queued.status == "queued" and queued.waiting_since and queued.handoff_reason == "visitor_request"
    assert desk.types("v-tab") == ["conversation.status", "notice"]
    assert desk.frames("v-tab", "notice")[0]["code"] == "queued"
    [update] = desk.frames("tab-a_1", "queue.updated")
    assert [c["conversationId"] for c in update["added"]] == ["c_1"] and update["removed"] == []
    assert update["added"][0]["preview"] == "Where is my chair?"
    assert desk.events() == ["handoff:visitor_request"]


def test_a_second_request_changes_nothing(desk: Desk) -> None:
    desk.configure(auto_assign=False)
    desk.agent("a_1", "Alice")
    conversation = desk.conversation()
    first = desk.handoff().request(conversation, "visitor_request")
    desk.clear()
    again = desk.handoff().request(conversation, "visitor_request")
    assert again.waiting_since == first.waiting_since
    assert [f["code"] for f in desk.frames("v-tab", "notice")] == ["already_waiting"]
    assert desk.events() == ["handoff:visitor_request"]


def test_disabled_handoff_keeps_the_bot(desk: Desk) -> None:
    desk.configure(enabled=False)
    conversation = desk.conversation()
    desk.handoff().request(conversation, "visitor_request")
    assert desk.status() == "bot"
    assert desk.frames("v-tab", "notice")[0]["code"] == "unavailable"


def test_auto_assignment_is_round_robin_among_online_agents_with_room(desk: Desk) -> None:
    desk.agent("a_1", "Alice")
    desk.agent("a_2", "Bob")
    desk.agent("a_3", "Carol", online=False)
    owners = []
    for i in range(4):
        conversation = desk.conversation(f"c_{i}", visitor_id=f"visitor-{i:03d}", tab=f"v-{i}")
        owners.append(desk.handoff().request(conversation, "no_answer").assignee_id)
    assert owners == ["a_1", "a_2", "a_1", "a_2"]
    assert desk.types("v-0") == ["conversation.status", "notice", "conversation.status", "agent.joined"]
    assert desk.frames("v-0", "agent.joined")[0]["agent"] == {"agentId": "a_1", "name": "Alice"}
    [assigned] = [
        f for f in desk.frames("tab-a_1", "conversation.assigned") if f["conversation"]["conversationId"] == "c_0"
    ]
    assert assigned["by"] == "auto" and assigned["conversation"]["assignee"]["agentId"] == "a_1"
    assert desk.frames("tab-a_3") == []


def test_agents_at_capacity_or_away_are_skipped_and_the_rest_waits(desk: Desk) -> None:
    alice = desk.agent("a_1", "Alice", capacity=1)
    bob = desk.agent("a_2", "Bob")
    desk.handoff().set_away(bob, True)
    first = desk.handoff().request(desk.conversation("c_1"), "visitor_request")
    second = desk.handoff().request(desk.conversation("c_2", visitor_id="visitor-bbb", tab="v-2"), "visitor_request")
    assert first.assignee_id == alice.agent_id
    assert second.status == "queued"


def test_an_agent_who_filled_up_meanwhile_is_passed_over_for_the_next(desk: Desk) -> None:
    desk.agent("a_1", "Alice", capacity=1)
    desk.agent("a_2", "Bob")
    desk.store.agents["a_2"].last_assigned_at = 10  # Alice first in round-robin
    stale = desk.store.list_agents("t_1")  # what a concurrent handoff read before Alice got a conversation
    desk.store.agents["a_1"].load = 1
    desk.store.list_agents = lambda tenant_id: stale  # type: ignore[method-assign]

    assigned = desk.handoff().request(desk.conversation(), "visitor_request")

    assert assigned.assignee_id == "a_2"
    assert (desk.store.agents["a_1"].load, desk.store.agents["a_2"].load) == (1, 1)


def test_an_agent_with_room_again_gets_the_longest_waiting(desk: Desk) -> None:
    alice = desk.agent("a_1", "Alice", capacity=1)
    desk.handoff().request(desk.conversation("c_1"), "visitor_request")
    desk.handoff().request(desk.conversation("c_2", visitor_id="visitor-bbb", tab="v-2"), "visitor_request")
    desk.handoff().request(desk.conversation("c_3", visitor_id="visitor-ccc", tab="v-3"), "visitor_request")
    assert [desk.status(c) for c in ("c_1", "c_2", "c_3")] == ["assigned", "queued", "queued"]

    desk.handoff().resolve(alice, "c_1")

    assert [desk.status(c) for c in ("c_1", "c_2", "c_3")] == ["resolved", "assigned", "queued"]


def test_outside_agent_hours_with_nobody_online_the_bot_keeps_it_and_the_visitor_learns_when(desk: Desk) -> None:
    desk.configure(hours=AgentHours(timezone="Asia/Shanghai", weekly={"mon": ["09:00-18:00"], "tue": ["09:00-18:00"]}))
    desk.agent("a_1", "Alice", online=False)
    desk.now = desk.now.replace(hour=11)  # Monday 19:00 in Shanghai: closed until Tuesday 09:00

    kept = desk.handoff().request(desk.conversation(), "visitor_request")

    assert kept.status == "bot" and desk.status() == "bot"
    [notice] = desk.frames("v-tab", "notice")
    assert notice["code"] == "offline" and "Tue 09:00 (Asia/Shanghai)" in notice["text"]
    assert notice["nextOpenAt"] == int((desk.now + timedelta(hours=14)).timestamp() * 1000)
    assert notice["leaveMessage"] is True
    assert desk.frames("v-tab", "conversation.status") == []
    assert desk.events() == ["no_agents:visitor_request"]


def test_outside_agent_hours_an_online_agent_with_room_still_takes_it(desk: Desk) -> None:
    desk.configure(hours=AgentHours(timezone="Asia/Shanghai", weekly={"mon": ["09:00-18:00"]}))
    desk.agent("a_1", "Alice")
    desk.now = desk.now.replace(hour=11)  # Monday 19:00 in Shanghai
    assigned = desk.handoff().request(desk.conversation(), "visitor_request")
    assert assigned.status == "assigned" and assigned.assignee_id == "a_1"


def test_chinese_visitors_get_chinese_notices(desk: Desk) -> None:
    desk.configure(auto_assign=False)
    conversation = desk.conversation().model_copy(update={"visitor_language": "zh-CN"})
    desk.store.put_conversation(conversation)
    desk.handoff().request(conversation, "visitor_request")
    assert "人工客服" in desk.frames("v-tab", "notice")[0]["text"]


def test_accept_takes_a_queued_conversation_once(desk: Desk) -> None:
    desk.configure(auto_assign=False)
    alice, bob = desk.agent("a_1", "Alice"), desk.agent("a_2", "Bob")
    desk.handoff().request(desk.conversation(), "visitor_request")

    desk.handoff().accept(alice, "c_1")
    with pytest.raises(Conflict, match="already taken by Alice"):
        desk.handoff().accept(bob, "c_1")

    assert desk.store.conversations["c_1"].assignee_id == "a_1"
    assert desk.events() == ["handoff:visitor_request", "assigned"]


def test_accept_of_a_bot_conversation_or_another_tenants_is_refused(desk: Desk) -> None:
    alice = desk.agent("a_1", "Alice")
    desk.conversation()
    with pytest.raises(Conflict, match="not in the queue"):
        desk.handoff().accept(alice, "c_1")
    foreign = desk.conversation("c_x").model_copy(update={"tenant_id": "t_other"})
    desk.store.put_conversation(foreign)
    with pytest.raises(NotFound):
        desk.handoff().accept(alice, "c_x")


def test_transfer_moves_the_conversation_and_tells_everyone(desk: Desk) -> None:
    desk.configure(auto_assign=False)
    alice, _ = desk.agent("a_1", "Alice"), desk.agent("a_2", "Bob")
    desk.handoff().request(desk.conversation(), "visitor_request")
    desk.handoff().accept(alice, "c_1")
    desk.clear()

    desk.handoff().transfer(alice, "c_1", "a_2")

    assert desk.store.conversations["c_1"].assignee_id == "a_2"
    [notice] = desk.frames("v-tab", "notice")
    assert notice["code"] == "transferred" and "Bob" in notice["text"] and notice["agent"]["name"] == "Bob"
    assert desk.frames("tab-a_2", "conversation.assigned")[0]["by"] == "transfer"
    assert desk.frames("tab-a_1", "conversation.updated")[0]["conversation"]["assignee"]["agentId"] == "a_2"
    with pytest.raises(Forbidden):
        desk.handoff().resolve(alice, "c_1")  # no longer hers


def test_only_the_holder_resolves_or_returns_to_the_bot(desk: Desk) -> None:
    desk.configure(auto_assign=False)
    alice, bob = desk.agent("a_1", "Alice"), desk.agent("a_2", "Bob")
    desk.handoff().request(desk.conversation(), "visitor_request")
    desk.handoff().accept(alice, "c_1")
    with pytest.raises(Forbidden):
        desk.handoff().return_to_bot(bob, "c_1")
    desk.clear()
    desk.handoff().return_to_bot(alice, "c_1")
    assert desk.status() == "bot" and desk.store.conversations["c_1"].assignee_id is None
    assert [f["code"] for f in desk.frames("v-tab", "notice")] == ["returned_to_bot"]
    assert desk.frames("v-tab", "conversation.status")[0]["status"] == "bot"


def test_who_handed_a_conversation_back_keeps_reading_it_until_someone_else_holds_it(desk: Desk) -> None:
    desk.configure(auto_assign=False)
    alice, bob = desk.agent("a_1", "Alice"), desk.agent("a_2", "Bob")
    desk.handoff().request(desk.conversation(), "visitor_request")
    desk.handoff().accept(alice, "c_1")
    desk.handoff().return_to_bot(alice, "c_1")

    assert desk.handoff().visible(alice, "c_1").status == "bot"  # her console follows the bot's answers
    with pytest.raises(NotFound):
        desk.handoff().visible(bob, "c_1")

    desk.handoff().request(desk.store.conversations["c_1"], "visitor_request")
    desk.handoff().accept(bob, "c_1")
    desk.handoff().resolve(bob, "c_1")
    assert desk.handoff().visible(bob, "c_1").status == "resolved"
    with pytest.raises(NotFound):
        desk.handoff().visible(alice, "c_1")


def test_a_queued_conversation_can_be_resolved_by_any_agent(desk: Desk) -> None:
    desk.configure(auto_assign=False)
    bob = desk.agent("a_2", "Bob")
    desk.handoff().request(desk.conversation(), "visitor_request")
    desk.handoff().resolve(bob, "c_1")
    assert desk.status() == "resolved"
    [removed] = desk.frames("tab-a_2", "queue.updated")[-1]["removed"]
    assert removed == {"conversationId": "c_1", "updatedAt": desk.store.conversations["c_1"].updated_at}


def test_presence_follows_connections_and_the_away_flag(desk: Desk) -> None:
    alice = desk.agent("a_1", "Alice")
    desk.agent("a_2", "Bob", online=False)
    desk.agent_tab("a_1", "second-tab")
    team = {p.agent_id: p.presence for p in desk.handoff().team("t_1")}
    assert team == {"a_1": "online", "a_2": "offline"}
    desk.handoff().set_away(alice, True)
    assert desk.handoff().presence(desk.store.agents["a_1"]).presence == "away"
    # Both of Alice's tabs hear about it.
    assert desk.frames("tab-a_1", "presence") and desk.frames("second-tab", "presence")


def test_colleagues_see_an_agent_go_offline_when_their_last_tab_closes(desk: Desk) -> None:
    desk.agent("a_1", "Alice")
    desk.agent("a_2", "Bob")
    desk.agent_tab("a_1", "second-tab")

    desk.store.delete_connection("tab-a_1")
    # The index may still list the closed tab: it is left out by id.
    assert not desk.handoff().agent_left("t_1", "a_1", "tab-a_1")
    assert desk.frames("tab-a_2", "presence") == []

    desk.store.delete_connection("second-tab")
    assert desk.handoff().agent_left("t_1", "a_1", "second-tab")
    [frame] = desk.frames("tab-a_2", "presence")
    assert frame["agent"]["agentId"] == "a_1" and frame["agent"]["presence"] == "offline"


def test_gone_connections_are_forgotten_during_fan_out(desk: Desk) -> None:
    desk.configure(auto_assign=False)
    desk.agent("a_1", "Alice")
    desk.push.gone.add("tab-a_1")
    desk.handoff().request(desk.conversation(), "visitor_request")
    assert "tab-a_1" not in desk.store.connections


def test_a_handoff_flood_sends_each_agent_one_entry_per_change_not_the_whole_queue(desk: Desk) -> None:
    desk.configure(auto_assign=False)
    alice = desk.agent("a_1", "Alice")
    desk.agent("a_2", "Bob")
    for n in range(40):
        conversation = desk.conversation(f"c_{n:02d}", visitor_id=f"visitor-{n:04d}", tab=f"v-{n}")
        desk.handoff().request(conversation, "visitor_request", preview="x" * 150)
    updates = desk.frames("tab-a_2", "queue.updated")
    assert len(updates) == 40 and all(len(u["added"]) == 1 and u["removed"] == [] for u in updates)
    assert [u["added"][0]["conversationId"] for u in updates] == [f"c_{n:02d}" for n in range(40)]
    desk.clear()
    desk.handoff().accept(alice, "c_07")
    [taken] = desk.frames("tab-a_2", "queue.updated")
    assert taken["added"] == [] and [r["conversationId"] for r in taken["removed"]] == ["c_07"]
    assert taken["removed"][0]["updatedAt"] == desk.store.conversations["c_07"].updated_at


# --- notices in the visitor's language when the connection declared none (a chat page, a channel) ---


def _undeclared_visitor(desk: Desk) -> None:
    desk.visitor_tab("v-undeclared", visitor_id="visitor-bbb", language=None)


def test_a_visitor_who_declared_no_language_and_writes_chinese_is_told_in_chinese_that_nobody_is_online(
    desk: Desk,
) -> None:
    _undeclared_visitor(desk)
    desk.send("v-undeclared", action="sendMessage", clientMessageId="cmid-zh-0001", text="我想找人工客服聊一下退款")
    [notice] = desk.frames("v-undeclared", "notice")
    assert notice["code"] == "no_agents" and notice["text"] == HandoffConfig().no_agents_text.zh


def test_a_visitor_who_declared_no_language_and_writes_chinese_is_queued_in_chinese(desk: Desk) -> None:
    desk.configure(auto_assign=False)
    desk.agent("a_1", "Alice")
    _undeclared_visitor(desk)
    desk.send("v-undeclared", action="sendMessage", clientMessageId="cmid-zh-0001", text="转人工")
    [notice] = desk.frames("v-undeclared", "notice")
    assert notice["code"] == "queued" and notice["text"] == HandoffConfig().queued_text.zh
    [entry] = desk.frames("tab-a_1", "queue.updated")[-1]["added"]
    assert entry["visitor"]["language"] == "zh"  # agents see it too, not "?"

    # Later notices, with no text at hand, go by the visitor's last words kept for the agents.
    desk.send("v-undeclared", action="requestHuman")
    assert desk.frames("v-undeclared", "notice")[-1]["text"] == notice_text("already_waiting", "zh")


def test_english_words_in_an_undeclared_conversation_get_english_notices(desk: Desk) -> None:
    _undeclared_visitor(desk)
    desk.send("v-undeclared", action="sendMessage", clientMessageId="cmid-en-0001", text="Can I talk to a human? 谢谢")
    [notice] = desk.frames("v-undeclared", "notice")
    assert notice["text"] == HandoffConfig().no_agents_text.en


def test_a_declared_language_wins_over_the_words() -> None:
    declared = Conversation(
        conversation_id="c", tenant_id=TENANT, visitor_id="v", created_at=1, updated_at=1, visitor_language="en"
    )
    assert notice_language(declared, "转人工") == "en"
    undeclared = declared.model_copy(update={"visitor_language": None, "preview": "退款多久到账？"})
    assert notice_language(undeclared) == "zh"
    assert notice_language(undeclared, "How long do refunds take?") == "en"
    assert notice_language(undeclared.model_copy(update={"preview": None})) is None
