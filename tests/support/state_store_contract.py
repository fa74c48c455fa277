"""The StateStore port's contract: one suite of behaviour that every adapter must show.

Run against the in-memory fake (tests/unit/test_state_store_contract.py) and the DynamoDB adapter on
moto's server (tests/integration/test_state_store_contract.py), so the fake the unit tests lean on
cannot drift from the store that runs in production. A subclass supplies the ``store`` fixture (an
empty store)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from shared.state.records import (
    AdminKeyRecord,
    Agent,
    AgentEdit,
    AnswerUsage,
    ChannelNotice,
    ChannelRef,
    Citation,
    Connection,
    Conversation,
    StatusChange,
    StoredMessage,
    Tenant,
    Ticket,
    answer_id_for,
    new_message_id,
)
from shared.state.store import StateStore

OPEN = frozenset({"bot", "queued", "assigned"})


def visitor_message(conversation_id: str, text: str, cmid: str, at: int, tenant_id: str = "t_1") -> StoredMessage:
    return StoredMessage(
        conversation_id=conversation_id,
        message_id=new_message_id(at),
        tenant_id=tenant_id,
        role="visitor",
        text=text,
        created_at=at,
        client_message_id=cmid,
    )


def bot_answer(question: StoredMessage, text: str, at: int) -> StoredMessage:
    return StoredMessage(
        conversation_id=question.conversation_id,
        message_id=answer_id_for(question.message_id),
        tenant_id=question.tenant_id,
        role="bot",
        text=text,
        created_at=at,
    )


def conversation(conversation_id: str, tenant_id: str = "t_1", **fields: object) -> Conversation:
    return Conversation(
        conversation_id=conversation_id, tenant_id=tenant_id, visitor_id="v1", created_at=1, updated_at=1, **fields
    )


def agent(agent_id: str, tenant_id: str = "t_1", created_at: int = 1) -> Agent:
    return Agent(
        agent_id=agent_id, tenant_id=tenant_id, name=agent_id.title(), key_hash="ab" * 32, created_at=created_at
    )


def connection(connection_id: str, tenant_id: str = "t_1", **fields: object) -> Connection:
    base: dict[str, object] = {"visitor_id": "v1", "connected_at": 5, "domain_name": "d", "stage": "s"}
    return Connection(connection_id=connection_id, tenant_id=tenant_id, **{**base, **fields})  # type: ignore[arg-type]


def assign_to(agent_id: str, capacity: int | None = None, expected: str | None = None) -> StatusChange:
    return StatusChange(
        status="assigned",
        from_statuses=frozenset({"queued", "assigned"}),
        expected_assignee_id=expected,
        assignee_id=agent_id,
        assignee_name=agent_id.title(),
        capacity=capacity,
    )


def queue(waiting_since: int) -> StatusChange:
    return StatusChange(status="queued", from_statuses=frozenset({"bot"}), waiting_since=waiting_since, reason="asked")


class StateStoreContract:
    # --- tenants ---

    def test_a_tenant_round_trips_with_every_field_and_cleared_fields_stay_cleared(self, store: StateStore) -> None:
        tenant = Tenant(
            tenant_id="t_identity",
            name="Shop",
            widget_key="wk_new",
            created_at=1,
            previous_widget_key="wk_old",
            previous_widget_key_until=123_456,
            suspended=True,
            suspended_reason="unpaid",
            identity_secret="is_secret",
            admin_keys={"k_1": AdminKeyRecord(name="ops", key_hash="ab" * 32, created_at=7)},
        )
        tenant.config.widget.allowed_origins = ["https://shop.example.com"]
        tenant.config.handoff.agents_see_all = True
        tenant.config.retrieval.keyword_weight = 0.3
        store.put_tenant(tenant)
        assert store.get_tenant("t_identity") == tenant
        assert store.tenant_config("t_identity") == tenant.config
        cleared = tenant.model_copy(
            update={
                "suspended": False,
                "suspended_reason": None,
                "previous_widget_key": None,
                "previous_widget_key_until": None,
                "admin_keys": {},
            }
        )
        store.put_tenant(cleared)
        assert store.get_tenant("t_identity") == cleared
        assert store.get_tenant("t_unknown") is None and store.tenant_config("t_unknown") is None

    def test_a_read_tenant_is_a_copy(self, store: StateStore) -> None:
        store.put_tenant(Tenant(tenant_id="t_1", name="Shop", widget_key="wk", created_at=1))
        read = store.get_tenant("t_1")
        assert read is not None
        read.name = "changed in memory only"
        assert store.get_tenant("t_1").name == "Shop"  # type: ignore[union-attr]

    # --- agents ---

    def test_agents_are_listed_per_tenant_oldest_first_and_deleted(self, store: StateStore) -> None:
        for agent_id, tenant_id, at in (("a_2", "t_1", 20), ("a_1", "t_1", 10), ("a_9", "t_2", 5)):
            store.put_agent(agent(agent_id, tenant_id, at))
        assert [a.agent_id for a in store.list_agents("t_1")] == ["a_1", "a_2"]
        assert store.get_agent("a_9") == agent("a_9", "t_2", 5)
        store.delete_agent("a_1")
        store.delete_agent("a_1")  # already gone: nothing to do
        assert store.get_agent("a_1") is None and [a.agent_id for a in store.list_agents("t_1")] == ["a_2"]

    def test_away_and_profile_edits_change_only_their_fields(self, store: StateStore) -> None:
        store.put_agent(agent("a_1"))
        store.set_agent_away("a_1", True)
        edited = store.update_agent("a_1", AgentEdit(name="Alice B.", capacity=3))
        assert edited is not None and (edited.name, edited.capacity, edited.away) == ("Alice B.", 3, True)
        assert store.get_agent("a_1") == edited
        store.set_agent_away("a_1", False)
        assert store.get_agent("a_1").away is False  # type: ignore[union-attr]
        assert store.update_agent("a_missing", AgentEdit(name="x")) is None

    # --- connections ---

    def test_connections_round_trip_and_are_forgotten_only_when_old_enough(self, store: StateStore) -> None:
        store.put_connection(connection("abc=", source_ip="203.0.113.9"))
        store.set_connection_conversation("abc=", "c_1")
        assert store.get_connection("abc=") == connection("abc=", source_ip="203.0.113.9", conversation_id="c_1")
        store.delete_connection("abc=", connected_before=5)  # connected at 5: too young to forget
        assert store.get_connection("abc=") is not None
        store.delete_connection("abc=", connected_before=6)
        assert store.get_connection("abc=") is None
        store.delete_connection("abc=", connected_before=6)  # already gone: nothing to do
        store.set_connection_conversation("abc=", "c_2")  # after a disconnect: no resurrected item
        assert store.get_connection("abc=") is None

    def test_a_connection_is_claimed_for_one_new_conversation_only(self, store: StateStore) -> None:
        store.put_connection(connection("race="))
        assert store.claim_connection_conversation("race=", "c_first", None)
        assert not store.claim_connection_conversation("race=", "c_second", None)  # it points elsewhere now
        assert store.get_connection("race=").conversation_id == "c_first"  # type: ignore[union-attr]
        assert store.claim_connection_conversation("race=", "c_next", "c_first")  # from what it points at
        assert not store.claim_connection_conversation("gone=", "c_x", None)  # no connection: nothing claimed
        assert store.get_connection("gone=") is None

    def test_connections_are_found_by_conversation_and_agents_by_tenant(self, store: StateStore) -> None:
        store.put_connection(connection("tab1=", conversation_id="c_1"))
        store.put_connection(connection("tab2=", conversation_id="c_1"))
        store.put_connection(connection("other=", conversation_id="c_2"))
        store.put_connection(connection("agent1=", role="agent", agent_id="a_1", visitor_id="a_1"))
        store.put_connection(connection("agent2=", tenant_id="t_2", role="agent", agent_id="a_2", visitor_id="a_2"))
        assert sorted(c.connection_id for c in store.conversation_connections("c_1")) == ["tab1=", "tab2="]
        assert [c.connection_id for c in store.agent_connections("t_1")] == ["agent1="]
        assert store.conversation_connections("c_none") == [] and store.agent_connections("t_none") == []

    def test_a_channel_customer_round_trips_and_is_found_by_conversation(self, store: StateStore) -> None:
        ref = ChannelRef(kind="wecom_kf", channel_id="ch_1", customer_id="wkKF1/wm_user")
        customer = connection("channel:ch_1:wkKF1/wm_user", conversation_id="c_1", channel=ref)
        assert store.add_connection(customer)
        assert not store.add_connection(customer.model_copy(update={"conversation_id": None}))  # one exists
        assert store.get_connection(customer.connection_id) == customer
        assert [c.channel for c in store.conversation_connections("c_1")] == [ref]

    # --- conversations and their ownership ---

    def test_a_channel_conversation_round_trips_and_its_notice_is_set_and_cleared(self, store: StateStore) -> None:
        ref = ChannelRef(kind="wechat_oa", channel_id="ch_1", customer_id="o_user")
        store.put_conversation(conversation("c_ch", channel=ref))
        notice = ChannelNotice(status="window_closed", reason="the 48-hour reply window has passed", at=7)
        store.set_channel_notice("c_ch", notice)
        assert store.get_conversation("c_ch") == conversation("c_ch", channel=ref, channel_notice=notice)
        store.set_channel_notice("c_ch", None)
        store.set_channel_notice("c_ch", None)  # nothing to clear: no error
        assert store.get_conversation("c_ch") == conversation("c_ch", channel=ref)
        store.set_channel_notice("c_none", notice)  # no such conversation: nothing is created
        assert store.get_conversation("c_none") is None

    def test_a_conversation_round_trips(self, store: StateStore) -> None:
        stored = conversation("c_1", visitor_page="https://shop.example/p", visitor_language="zh-CN")
        store.put_conversation(stored)
        assert store.get_conversation("c_1") == stored and store.get_conversation("c_none") is None

    def test_status_changes_apply_only_from_the_expected_state_and_count_the_agents_load(
        self, store: StateStore
    ) -> None:
        store.put_agent(agent("a_1"))
        store.put_agent(agent("a_2"))
        store.put_conversation(conversation("c_1", no_answer_streak=2))
        queued = store.change_status(conversation("c_1"), queue(waiting_since=100))
        assert queued is not None and queued.status == "queued" and queued.waiting_since == 100
        assert queued.no_answer_streak == 0 and queued.handoff_reason == "asked"
        assert store.change_status(conversation("c_1"), queue(waiting_since=200)) is None  # not "bot" any more

        assigned = store.change_status(conversation("c_1"), assign_to("a_1", capacity=1))
        assert assigned is not None and (assigned.assignee_id, assigned.assignee_name) == ("a_1", "A_1")
        assert store.get_agent("a_1").load == 1  # type: ignore[union-attr]
        # Taken over by a_2 while a_1 holds it: one load moves.
        moved = store.change_status(conversation("c_1"), assign_to("a_2", expected="a_1"))
        assert moved is not None and moved.assignee_id == "a_2"
        assert (store.get_agent("a_1").load, store.get_agent("a_2").load) == (0, 1)  # type: ignore[union-attr]
        # Someone who no longer holds it cannot hand it back.
        back = StatusChange(status="bot", from_statuses=frozenset({"assigned"}), expected_assignee_id="a_1")
        assert store.change_status(conversation("c_1"), back) is None
        released = store.change_status(
            conversation("c_1"), StatusChange(status="bot", from_statuses=OPEN, expected_assignee_id="a_2")
        )
        assert released is not None and released.status == "bot" and released.assignee_id is None
        assert released.last_assignee_id == "a_2"  # who handed it back keeps reading it
        assert store.get_agent("a_2").load == 0  # type: ignore[union-attr]
        assert store.get_conversation("c_1") == released

    def test_an_agent_at_capacity_gets_no_more_conversations(self, store: StateStore) -> None:
        store.put_agent(agent("a_1"))
        for conversation_id in ("c_1", "c_2"):
            store.put_conversation(conversation(conversation_id))
            store.change_status(conversation(conversation_id), queue(waiting_since=1))
        assert store.change_status(conversation("c_1"), assign_to("a_1", capacity=1)) is not None
        assert store.change_status(conversation("c_2"), assign_to("a_1", capacity=1)) is None
        assert store.get_agent("a_1").load == 1  # type: ignore[union-attr]
        assert store.get_conversation("c_2").status == "queued"  # type: ignore[union-attr]
        assert store.change_status(conversation("c_none"), assign_to("a_1")) is None  # no such conversation

    def test_the_queue_is_longest_waiting_first_and_assignments_are_per_agent(self, store: StateStore) -> None:
        store.put_agent(agent("a_1"))
        for conversation_id, since, tenant_id in (("c_late", 300, "t_1"), ("c_early", 100, "t_1"), ("c_x", 50, "t_2")):
            store.put_conversation(conversation(conversation_id, tenant_id))
            store.change_status(conversation(conversation_id, tenant_id), queue(waiting_since=since))
        assert [c.conversation_id for c in store.queued_conversations("t_1")] == ["c_early", "c_late"]
        assert [c.conversation_id for c in store.queued_conversations("t_1", limit=1)] == ["c_early"]
        store.change_status(conversation("c_late"), assign_to("a_1"))
        assert [c.conversation_id for c in store.assigned_conversations("a_1")] == ["c_late"]
        assert [c.conversation_id for c in store.queued_conversations("t_1")] == ["c_early"]

    def test_the_still_waiting_notice_is_claimed_once_per_wait(self, store: StateStore) -> None:
        store.put_conversation(conversation("c_1"))
        store.change_status(conversation("c_1"), queue(waiting_since=100))
        assert not store.mark_wait_notified("c_1", 99, at=150)  # another wait
        assert store.mark_wait_notified("c_1", 100, at=150)
        assert not store.mark_wait_notified("c_1", 100, at=160)
        assert store.get_conversation("c_1").wait_notified_at == 150  # type: ignore[union-attr]
        assert not store.mark_wait_notified("c_none", 100, at=150)

    def test_tickets_are_left_listed_oldest_first_and_closed_once(self, store: StateStore) -> None:
        for conversation_id, at in (("c_new", 20), ("c_old", 10)):
            store.put_conversation(conversation(conversation_id))
            left = store.leave_ticket(
                conversation(conversation_id), Ticket(contact="a@b.c", text="call me", created_at=at)
            )
            assert left is not None and left.ticket is not None and left.ticket.status == "open"
        assert [c.conversation_id for c in store.open_tickets("t_1")] == ["c_old", "c_new"]
        closed = store.close_ticket("c_old", "a_1", at=30)
        assert closed is not None and closed.ticket is not None
        assert (closed.ticket.status, closed.ticket.closed_by, closed.ticket.closed_at) == ("closed", "a_1", 30)
        assert store.close_ticket("c_old", "a_1", at=31) is None  # closed already
        assert [c.conversation_id for c in store.open_tickets("t_1")] == ["c_new"]
        assert store.leave_ticket(conversation("c_none"), Ticket(contact="x@y.z", created_at=1)) is None

    def test_the_no_answer_streak_counts_and_resets(self, store: StateStore) -> None:
        store.put_conversation(conversation("c_1"))
        assert [store.record_grounding("c_1", grounded) for grounded in (False, False, True, False)] == [1, 2, 0, 1]
        assert store.get_conversation("c_1").no_answer_streak == 1  # type: ignore[union-attr]

    def test_the_preview_and_the_read_watermarks(self, store: StateStore) -> None:
        store.put_conversation(conversation("c_1"))
        store.set_preview("c_1", "where is my parcel?", at=500)
        read = store.get_conversation("c_1")
        assert read is not None and (read.preview, read.updated_at) == ("where is my parcel?", 500)
        assert store.advance_read("c_1", "visitor", "0000000000002-bbbb")
        assert not store.advance_read("c_1", "visitor", "0000000000001-aaaa")  # never back
        assert not store.advance_read("c_1", "visitor", "0000000000002-bbbb")  # already there
        assert store.advance_read("c_1", "agent", "0000000000001-aaaa")
        read = store.get_conversation("c_1")
        assert read is not None
        assert (read.visitor_read_until, read.agent_read_until) == ("0000000000002-bbbb", "0000000000001-aaaa")

    # --- messages ---

    def test_a_visitor_message_is_stored_once_per_client_id(self, store: StateStore) -> None:
        first = store.add_visitor_message(visitor_message("c_1", "hello", "cmid-1", 1000), "v1")
        again = store.add_visitor_message(visitor_message("c_1", "hello", "cmid-1", 2000), "v1")
        assert again == first
        other_visitor = store.add_visitor_message(visitor_message("c_2", "hello", "cmid-1", 3000), "v2")
        assert other_visitor.message_id != first.message_id
        assert store.list_messages("c_1") == [first]
        assert store.find_by_client_id("t_1", "v1", "cmid-1") == first
        assert store.find_by_client_id("t_1", "v1", "cmid-x") is None
        agents = store.add_client_message(visitor_message("c_1", "agent says", "cmid-1", 4000), "agent:a_1")
        assert agents.text == "agent says"  # another sender: its own client ids

    def test_concurrent_resends_store_one_message(self, store: StateStore) -> None:
        attempts = [visitor_message("c_1", "same", "cmid-race", 1000 + i) for i in range(6)]
        with ThreadPoolExecutor(max_workers=6) as pool:
            results = list(pool.map(lambda m: store.add_visitor_message(m, "v1"), attempts))
        assert len({r.message_id for r in results}) == 1
        assert len(store.list_messages("c_1")) == 1

    def test_an_answer_is_stored_at_most_once_and_sorts_after_its_question(self, store: StateStore) -> None:
        question = store.add_visitor_message(visitor_message("c_1", "q1", "cmid-1", 1000), "v1")
        later = store.add_visitor_message(visitor_message("c_1", "q2", "cmid-2", 1001), "v1")
        answer = bot_answer(question, "a1", 1500).model_copy(
            update={
                "citations": [Citation(document_id="d", title="T", snippet="s", url=None)],
                "usage": AnswerUsage(
                    source="model",
                    provider="openai",
                    model="qwen",
                    input_tokens=812,
                    output_tokens=64,
                    first_token_ms=41,
                    total_ms=930,
                ),
            }
        )
        assert store.add_answer(answer) is True
        assert store.add_answer(answer.model_copy(update={"text": "again"})) is False
        assert [m.text for m in store.list_messages("c_1")] == ["q1", "a1", "q2"]
        assert [m.text for m in store.recent_messages("c_1", 2)] == ["a1", "q2"]
        assert store.get_message("c_1", answer.message_id) == answer  # usage included
        assert store.list_messages("c_1")[0].usage is None  # questions carry none
        assert later.message_id > answer.message_id
        assert store.get_message("c_1", "0000000000009-none") is None

    def test_recent_messages_are_the_dialogue_only(self, store: StateStore) -> None:
        question = store.add_visitor_message(visitor_message("c_1", "q1", "cmid-1", 1000), "v1")
        store.add_answer(bot_answer(question, "a1", 1100))
        note = StoredMessage(
            conversation_id="c_1",
            message_id=new_message_id(1200),
            tenant_id="t_1",
            role="note",
            text="n",
            created_at=1200,
        )
        store.add_message(note)
        assert [m.text for m in store.recent_messages("c_1", 10)] == ["q1", "a1"]
        assert [m.text for m in store.list_messages("c_1")] == ["q1", "a1", "n"]
        assert store.recent_messages("c_1", 0) == []

    def test_feedback_is_kept_on_bot_answers_only(self, store: StateStore) -> None:
        question = store.add_visitor_message(visitor_message("c_1", "q1", "cmid-1", 1000), "v1")
        answer = bot_answer(question, "a1", 1100)
        store.add_answer(answer)
        assert store.set_feedback("c_1", answer.message_id, "up")
        assert store.get_message("c_1", answer.message_id).feedback == "up"  # type: ignore[union-attr]
        assert not store.set_feedback("c_1", question.message_id, "down")  # a visitor's own message
        assert not store.set_feedback("c_1", "0000000000009-none", "down")

    def test_messages_are_paged_both_ways(self, store: StateStore) -> None:
        stored = [
            store.add_visitor_message(visitor_message("c_1", f"m{i}", f"cmid-{i}", 1000 + i), "v1") for i in range(5)
        ]
        newest, more = store.messages_page("c_1", limit=2)
        assert [m.text for m in newest] == ["m3", "m4"] and more
        older, more = store.messages_page("c_1", before=newest[0].message_id, limit=2)
        assert [m.text for m in older] == ["m1", "m2"] and more
        oldest, more = store.messages_page("c_1", before=older[0].message_id, limit=2)
        assert [m.text for m in oldest] == ["m0"] and not more
        after, more = store.messages_page("c_1", after=stored[1].message_id, limit=2)
        assert [m.text for m in after] == ["m2", "m3"] and more
        last, more = store.messages_page("c_1", after=stored[3].message_id, limit=2)
        assert [m.text for m in last] == ["m4"] and not more
        assert store.messages_page("c_none") == ([], False)
