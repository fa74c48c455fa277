"""Tenant isolation, generated from the admin API's route table and the protocol's action list (issue 11):
a new route or action is checked without anyone writing a test for it, and one the suite cannot check
fails it until it is given a request body, a field value or a place in ``PLATFORM_ONLY``.

Two tenants: ``t_a`` (the attacker's) and ``t_b`` (the victim, with an agent, a visitor, a conversation
in the queue, messages and a document whose texts are secrets). Every request and frame aims at
``t_b``'s objects from ``t_a``; afterwards ``t_b``'s state is unchanged, no secret of ``t_b`` is in any
answer, and nothing was sent to ``t_b``'s connections.

Credentials are listed in one place (``CREDENTIALS``), each with the tenants it may reach: per-tenant
admin keys join that list and are checked against every route."""

from __future__ import annotations

import json
import re
import typing
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from shared.admin import deps
from shared.admin.app import create_app
from shared.admin.keys import new_tenant_key
from shared.admin.routes import channels as channel_routes
from shared.admin.routes import dead_letters as dead_letter_routes
from shared.admin.routes import knowledge as knowledge_routes
from shared.admin.routes import usage as usage_routes
from shared.channels.directory import ChannelDirectory, ChannelRecord
from shared.chat.intake import Intake
from shared.handoff.agents import new_agent_key
from shared.ingest.service import IngestLimits, KnowledgeIngestion
from shared.ingest.uploads import UploadPolicy, Uploads
from shared.knowledge.base import Document
from shared.knowledge.local_index import LocalHybridIndex
from shared.knowledge.search import KnowledgeService
from shared.settings import get_settings
from shared.state.records import AdminKeyRecord, Agent, Connection, Conversation, StoredMessage, Tenant
from shared.state.uploads import UploadRecord
from shared.tenant_config import TenantConfig
from shared.tenant_config.handoff import HandoffConfig
from shared.wire.dead_letters import DeadLetter, DeadLetters
from shared.wire.protocol import AGENT_ACTIONS, VISITOR_ACTIONS, AgentFrame, VisitorFrame
from tests.support.channel_state_fake import FakeChannelState, FakeTenantSecrets
from tests.unit.admin_support import ADMIN_KEY
from tests.unit.fakes import (
    FakePush,
    FakeQueue,
    FakeUploadBucket,
    InMemoryContextCache,
    InMemoryStateStore,
    InMemoryUploadLedger,
)
from tests.unit.test_knowledge_local_index import FakeEmbedder
from tests.unit.test_quotas import FakeUsageLedger

ATTACKER, VICTIM = "t_a", "t_b"
# Texts only the victim's data holds: none may appear in anything the attacker gets.
SECRETS = (
    "VICTIM-QUESTION-7f3a",
    "VICTIM-AGENT-NAME-91c2",
    "VICTIM-DOC-TEXT-5d8e",
    "VICTIM-PAGE-0b4c",
    "VICTIM-APP-SECRET-3e1d",
    "wxVICTIMAPP42",
)
VICTIM_IDS = {
    "channel_id": "ch_victimchannel",
    "name": "victim-app-secret",
    "conversation_id": "c_victim",
    "agent_id": "a_victim",
    "document_id": "victim-doc",
    "message_id": "0000000000001-vvvv",
    "key_id": "k_victim",
    "upload_id": "up_victim",
}

# Routes that are not about one tenant: only the platform's credential reaches them.
PLATFORM_ONLY = {
    ("POST", "/v1/tenants"),
    ("GET", "/v1/dead-letters"),
    ("POST", "/v1/dead-letters/redrive"),
}
# Routes anyone may call (no tenant data: health, the API's own description).
PUBLIC = {("GET", "/health"), ("GET", "/docs"), ("GET", "/openapi.json")}

# What a valid request of each route that needs more than its path carries (a 422 would say nothing
# about isolation).
BODIES: dict[tuple[str, str], dict[str, Any]] = {
    ("PATCH", "/v1/tenants/{tenant_id}/config"): {"json": {"retrieval": {"keywordWeight": 0.4}}},
    ("POST", "/v1/tenants/{tenant_id}/knowledge"): {
        "json": {"documents": [{"id": "victim-doc", "title": "Overwrite", "text": "Attacker text here."}]}
    },
    ("POST", "/v1/tenants/{tenant_id}/knowledge/files"): {
        "files": [("files", ("victim-doc.md", b"# Overwrite\n\nAttacker text here.", "text/markdown"))]
    },
    ("POST", "/v1/tenants/{tenant_id}/knowledge/uploads"): {
        "json": {"filename": "victim-doc.md", "contentType": "text/markdown", "size": 40}
    },
    ("GET", "/v1/tenants/{tenant_id}/knowledge/search"): {"params": {"q": "VICTIM-DOC-TEXT-5d8e delivery"}},
    ("POST", "/v1/tenants/{tenant_id}/knowledge/calibrate"): {"json": {}},
    ("POST", "/v1/tenants/{tenant_id}/agents"): {"json": {"name": "Mallory"}},
    ("PATCH", "/v1/tenants/{tenant_id}/agents/{agent_id}"): {"json": {"name": "Mallory", "disabled": True}},
    ("POST", "/v1/tenants"): {"json": {"name": "Another"}},
    ("POST", "/v1/dead-letters/redrive"): {"json": {}},
    ("POST", "/v1/tenants/{tenant_id}/admin-keys"): {"json": {"name": "Mallory's key"}},
    ("POST", "/v1/tenants/{tenant_id}/widget-key"): {"json": {}},
    ("POST", "/v1/tenants/{tenant_id}/suspend"): {"json": {}},
    ("PUT", "/v1/tenants/{tenant_id}/secrets/{name}"): {"json": {"value": "attacker-value"}},
    ("POST", "/v1/tenants/{tenant_id}/channels"): {
        "json": {"kind": "webhook", "deliveryUrl": "https://evil.example/", "secret": "victim-app-secret"}
    },
    ("PATCH", "/v1/tenants/{tenant_id}/channels/{channel_id}"): {"json": {"enabled": False}},
}
# Routes whose second path parameter is a name the caller chooses inside its own tenant (an upsert),
# not an object of someone else's: the victim's name there must still leave the victim's data alone.
NAMED_BY_CALLER = {("PUT", "/v1/tenants/{tenant_id}/secrets/{name}")}


@dataclass(frozen=True)
class Credential:
    name: str
    headers: dict[str, str]
    reaches: frozenset[str] | None  # tenants it may act on; None: every tenant and the platform routes


def credentials(world: World) -> list[Credential]:
    """Everything that might be presented to the admin API. Per-tenant admin keys go here, with
    ``reaches=frozenset({their tenant})``: every check below then covers them."""
    return [
        Credential("the platform admin key", {"Authorization": f"Bearer {ADMIN_KEY}"}, None),
        Credential("no key", {}, frozenset()),
        Credential("a wrong key", {"Authorization": "Bearer not-the-key"}, frozenset()),
        Credential("the attacker's widget key", {"Authorization": "Bearer wk_attacker"}, frozenset()),
        Credential("the attacker's agent key", {"Authorization": f"Bearer {world.attacker_agent_key}"}, frozenset()),
        Credential("the admin key in the query", {}, frozenset()),  # never read from there
        Credential(
            "the attacker's tenant admin key",
            {"Authorization": f"Bearer {world.attacker_admin_key}"},
            frozenset({ATTACKER}),
        ),
    ]


# --- the world ---


@dataclass
class World:
    store: InMemoryStateStore
    knowledge: KnowledgeService
    push: FakePush
    queue: FakeQueue
    attacker_agent_key: str
    attacker_admin_key: str
    channel_state: FakeChannelState = field(default_factory=FakeChannelState)
    tenant_secrets: FakeTenantSecrets = field(default_factory=FakeTenantSecrets)
    upload_ledger: InMemoryUploadLedger = field(default_factory=InMemoryUploadLedger)
    upload_bucket: FakeUploadBucket = field(default_factory=FakeUploadBucket)

    def uploads(self) -> Uploads:
        policy = UploadPolicy(max_bytes=1_000_000, url_seconds=900, attempt_seconds=900)
        ingestion = KnowledgeIngestion(self.store, self.knowledge, IngestLimits.from_settings(get_settings()))
        return Uploads(self.upload_ledger, self.upload_bucket, self.store, policy, lambda: ingestion)

    def victim_state(self) -> str:
        """Everything of the victim's: it must be the same after any attack."""
        store = self.store
        parts: list[Any] = [store.tenants[VICTIM].model_dump(mode="json")]
        parts += [c.model_dump(mode="json") for c in store.conversations.values() if c.tenant_id == VICTIM]
        parts += [m.model_dump(mode="json") for m in store.messages.values() if m.tenant_id == VICTIM]
        parts += [a.model_dump(mode="json") for a in store.agents.values() if a.tenant_id == VICTIM]
        parts += [c.model_dump(mode="json") for c in store.connections.values() if c.tenant_id == VICTIM]
        parts += [c.model_dump(mode="json") for c in ChannelDirectory(self.channel_state).list(VICTIM)]
        parts.append(sorted((k[1], v) for k, v in self.tenant_secrets.values.items() if k[0] == VICTIM))
        parts += [r.model_dump(mode="json") for k, r in sorted(self.upload_ledger.records.items()) if k[0] == VICTIM]
        found = self.knowledge.index.search_hits(VICTIM, "VICTIM-DOC-TEXT-5d8e delivery", 4, keyword_weight=0.5)
        parts.append(sorted((p.document_id, p.text) for p in found.passages))
        return json.dumps(parts, sort_keys=True, default=str)


def build_world(tmp_path: Path) -> World:
    store = InMemoryStateStore()
    knowledge = KnowledgeService(LocalHybridIndex(tmp_path, FakeEmbedder()), default_threshold=0.0, default_k=4)
    open_hours = TenantConfig(handoff=HandoffConfig(auto_assign=False))
    keys: dict[str, str] = {}
    admin_keys: dict[str, str] = {}
    for tenant, suffix in ((ATTACKER, "attacker"), (VICTIM, "victim")):
        _, admin_keys[tenant], key_hash = new_tenant_key(tenant)
        own_key = {f"k_{suffix}": AdminKeyRecord(name=f"{suffix}'s key", key_hash=key_hash, created_at=1)}
        store.put_tenant(
            Tenant(
                tenant_id=tenant,
                name=tenant,
                widget_key=f"wk_{suffix}",
                created_at=1,
                config=open_hours,
                admin_keys=own_key,
            )
        )
        agent_id = f"a_{suffix}"
        keys[tenant], key_hash = new_agent_key(agent_id)
        name = "VICTIM-AGENT-NAME-91c2" if tenant == VICTIM else "Mallory"
        store.put_agent(Agent(agent_id=agent_id, tenant_id=tenant, name=name, key_hash=key_hash, created_at=1))
        for connection_id, role in ((f"agent-{suffix}", "agent"), (f"visitor-{suffix}", "visitor")):
            store.put_connection(
                Connection(
                    connection_id=connection_id,
                    tenant_id=tenant,
                    # Visitor ids are chosen by clients: the attacker takes the victim's, so only
                    # the tenant tells them apart.
                    visitor_id=agent_id if role == "agent" else "visitor-victim",
                    connected_at=1,
                    domain_name="d",
                    stage="s",
                    role=role,  # type: ignore[arg-type]
                    agent_id=agent_id if role == "agent" else None,
                    page="https://victim.example/VICTIM-PAGE-0b4c" if tenant == VICTIM else None,
                )
            )
    store.put_conversation(
        Conversation(
            conversation_id="c_victim",
            tenant_id=VICTIM,
            visitor_id="visitor-victim",
            created_at=1,
            updated_at=1,
            status="queued",
            waiting_since=1,
            preview="VICTIM-QUESTION-7f3a",
            visitor_page="https://victim.example/VICTIM-PAGE-0b4c",
        )
    )
    store.set_connection_conversation("visitor-victim", "c_victim")
    for message_id, role in (("0000000000001-vvvv", "visitor"), ("0000000000001-vvvv.a", "bot")):
        store.add_message(
            StoredMessage(
                conversation_id="c_victim",
                message_id=message_id,
                tenant_id=VICTIM,
                role=role,  # type: ignore[arg-type]
                text="VICTIM-QUESTION-7f3a where is my parcel?",
                created_at=1,
            )
        )
    document = Document(id="victim-doc", title="Delivery", text="VICTIM-DOC-TEXT-5d8e delivery takes two days.")
    knowledge.index.index(VICTIM, [document])
    world = World(
        store,
        knowledge,
        FakePush(),
        FakeQueue(),
        attacker_agent_key=keys[ATTACKER],
        attacker_admin_key=admin_keys[ATTACKER],
    )
    world.tenant_secrets.put(VICTIM, "victim-app-secret", "VICTIM-APP-SECRET-3e1d")
    key = f"uploads/{VICTIM}/up_victim/VICTIM-DOC-TEXT-5d8e.md"
    world.upload_ledger.create(
        UploadRecord(
            tenant_id=VICTIM,
            upload_id="up_victim",
            filename="VICTIM-DOC-TEXT-5d8e.md",
            content_type="text/markdown",
            size=10,
            key=key,
            created_at=1,
            updated_at=1,
            url_expires_at=2,
        ),
        ttl_seconds=86400,
    )
    channel = ChannelRecord(
        channel_id="ch_victimchannel",
        tenant_id=VICTIM,
        kind="wechat_oa",
        fields={"appId": "wxVICTIMAPP42", "token": "tok123", "appSecret": "victim-app-secret"},
        created_at=1,
        updated_at=1,
    )
    world.channel_state.put("chan:config:ch_victimchannel", channel.model_dump(mode="json"), 3600)
    world.channel_state.put_if_version(f"chan:tenant:{VICTIM}", {"ids": ["ch_victimchannel"]}, None, 3600)
    return world


@pytest.fixture
def world(tmp_path: Path) -> World:
    return build_world(tmp_path)


# --- the admin API, from its route table ---


def routes(app: FastAPI) -> list[tuple[str, str]]:
    """(method, path) of every route the app serves, routers included, schema or not."""
    found: list[tuple[str, str]] = []

    def walk(entries: list[Any], prefix: str) -> None:
        for entry in entries:
            if hasattr(entry, "original_router"):  # an included router (FastAPI >= 0.16x)
                walk(entry.original_router.routes, prefix + entry.include_context.prefix)
            elif isinstance(entry, APIRoute) or hasattr(entry, "methods"):
                found.extend((m, prefix + entry.path) for m in sorted(entry.methods or ()) if m != "HEAD")

    walk(list(app.routes), "")
    return sorted(set(found))


class EmptyDeadLetters(DeadLetters):
    """Fake: a dead-letter queue with nothing in it (SQS is not part of the unit suite)."""

    def __init__(self) -> None:
        super().__init__(client=None, queue_url="")

    def count(self) -> int:
        return 0

    def peek(self, limit: int) -> list[DeadLetter]:
        return []

    def redrive(self, limit: int) -> list[DeadLetter]:
        return []


@pytest.fixture
def app(world: World, monkeypatch: pytest.MonkeyPatch) -> Iterator[FastAPI]:
    monkeypatch.setenv("KEFU_ADMIN_KEY", ADMIN_KEY)
    get_settings.cache_clear()
    deps._admin_key.cache_clear()
    app = create_app()
    ledger = FakeUsageLedger()
    app.dependency_overrides[deps._store] = lambda: world.store
    app.dependency_overrides[deps._connection_push] = lambda: lambda connection: world.push
    app.dependency_overrides[knowledge_routes._knowledge] = lambda: world.knowledge
    app.dependency_overrides[knowledge_routes._uploads] = world.uploads
    app.dependency_overrides[usage_routes._ledger] = lambda: ledger
    app.dependency_overrides[dead_letter_routes._dead_letters] = EmptyDeadLetters
    app.dependency_overrides[channel_routes._directory] = lambda: ChannelDirectory(world.channel_state)
    app.dependency_overrides[channel_routes._secrets] = lambda: world.tenant_secrets
    yield app
    get_settings.cache_clear()
    deps._admin_key.cache_clear()


def request(client: TestClient, method: str, path: str, headers: dict[str, str], tenant: str) -> Any:
    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        assert name in VICTIM_IDS or name == "tenant_id", f"{method} {path}: add a victim's {name} to VICTIM_IDS"
        return tenant if name == "tenant_id" else VICTIM_IDS[name]

    url = re.sub(r"\{(\w+)(?::\w+)?\}", value, path)
    extra = dict(BODIES.get((method, path), {}))
    if not headers:  # a key in the query is never read
        extra["params"] = {**extra.get("params", {}), "key": ADMIN_KEY, "admin_key": ADMIN_KEY}
    return client.request(method, url, headers=headers, **extra)


def test_every_route_is_tenant_scoped_platform_only_or_public(app: FastAPI) -> None:
    unclassified = [(m, p) for m, p in routes(app) if "{tenant_id}" not in p and (m, p) not in PLATFORM_ONLY | PUBLIC]
    assert not unclassified, f"say who may call these (a {{tenant_id}} path, PLATFORM_ONLY or PUBLIC): {unclassified}"
    assert len(routes(app)) >= 18  # the walk found the routers' routes, not only the app's own


def test_every_route_refuses_credentials_that_do_not_reach_the_tenant(app: FastAPI, world: World) -> None:
    before = world.victim_state()
    checked = 0
    with TestClient(app) as client:
        for method, path in routes(app):
            if (method, path) in PUBLIC:
                continue
            for credential in credentials(world):
                if credential.reaches is None or (VICTIM in credential.reaches and "{tenant_id}" in path):
                    continue
                response = request(client, method, path, credential.headers, VICTIM)
                assert response.status_code in (401, 403), (
                    f"{credential.name}: {method} {path} -> {response.status_code}"
                )
                checked += 1
    assert checked >= 5 * 15 and world.victim_state() == before  # every route, not a few


def test_every_tenant_route_keeps_the_victims_objects_out_of_the_attackers_tenant(app: FastAPI, world: World) -> None:
    """The platform key on the attacker's tenant, with the victim's ids: 404 wherever an id is in the path;
    never a secret of the victim in an answer; the victim's state unchanged."""
    before = world.victim_state()
    platform = credentials(world)[0]
    tenant_routes = [(m, p) for m, p in routes(app) if "{tenant_id}" in p]
    for method, path in tenant_routes:
        required = _required_inputs(app, method, path)
        assert not required or (method, path) in BODIES, f"add a valid {required} for {method} {path} to BODIES"
    with TestClient(app) as client:
        for method, path in tenant_routes:
            response = request(client, method, path, platform.headers, ATTACKER)
            assert response.status_code < 500, f"{method} {path}: {response.status_code} {response.text[:200]}"
            if path.count("{") > 1 and (method, path) not in NAMED_BY_CALLER:
                assert response.status_code == 404, (
                    f"{method} {path} reached the victim's object: {response.text[:200]}"
                )
            leaked = [s for s in SECRETS if s in response.text]
            assert not leaked, f"{method} {path} answered with the victim's {leaked}"
            assert world.victim_state() == before, f"{method} {path} changed the victim's data"
    assert len(tenant_routes) >= 13
    assert not [to for to, _ in world.push.frames if to.endswith("victim")]


def _required_inputs(app: FastAPI, method: str, path: str) -> list[str]:
    """A required body or query parameter of the route, from the OpenAPI document."""
    operation = app.openapi()["paths"].get(re.sub(r":\w+\}", "}", path), {}).get(method.lower(), {})
    needed = ["body"] if operation.get("requestBody", {}).get("required") else []
    needed += [p["name"] for p in operation.get("parameters", []) if p["in"] == "query" and p.get("required")]
    return needed


# --- the WebSocket actions, from the protocol's frame sets ---

# A value for every field a client frame may carry, aimed at the victim where it names something.
FIELD_VALUES: dict[str, Any] = {
    "conversation_id": "c_victim",
    "message_id": "0000000000001-vvvv.a",
    "agent_id": "a_victim",
    "client_message_id": "cmid-attack-0001",
    "text": "give me the victim's data",
    "rating": "down",
    "typing": True,
    "status": "online",
    "contact": "mallory@example.com",
    "name": "Mallory",
    "before": "0000000000002-vvvv",
    "after": "0000000000000-vvvv",
    "limit": 50,
}


def frame_models() -> dict[str, Any]:
    """action -> the pydantic model of its frame, from the union the parser uses."""
    models: dict[str, Any] = {}
    for model in (*typing.get_args(VisitorFrame), *typing.get_args(AgentFrame)):
        [action] = typing.get_args(model.model_fields["action"].annotation)
        models[action] = model
    return models


def attack_frames(action: str, model: Any) -> list[dict[str, Any]]:
    """The frame with every field filled, then one per optional field left out (e.g. ``history``
    without ``before``/``after``), so each way of naming the victim's objects is tried."""
    fields = {name: f for name, f in model.model_fields.items() if name != "action"}
    unknown = [name for name in fields if name not in FIELD_VALUES]
    assert not unknown, f"{action}: add a value aimed at the victim for {unknown} to FIELD_VALUES"

    def frame(names: list[str]) -> dict[str, Any]:
        body = {"action": action}
        for name in names:
            body[fields[name].alias or _camel(name)] = FIELD_VALUES[name]
        return body

    every = [n for n in fields if not (n == "after" and "before" in fields)]  # before and after exclude each other
    frames = [frame(every)]
    frames += [frame([n for n in every if n != optional]) for optional in every if not fields[optional].is_required()]
    if "after" in fields:
        frames.append(frame([n for n in every if n != "before"] + ["after"]))
    return frames


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def test_the_action_lists_match_the_parsers_frames() -> None:
    models = frame_models()
    assert set(models) == set(VISITOR_ACTIONS) | set(AGENT_ACTIONS)
    assert {a for a in models if models[a] in typing.get_args(VisitorFrame)} == set(VISITOR_ACTIONS)


@pytest.mark.parametrize("role", ["visitor", "agent"])
def test_no_action_reaches_another_tenants_conversation(world: World, role: str) -> None:
    before = world.victim_state()
    actions = VISITOR_ACTIONS if role == "visitor" else AGENT_ACTIONS
    models = frame_models()
    intake = Intake(
        store=world.store,
        cache=InMemoryContextCache(),
        queue=world.queue,
        push=world.push,
        callback_url="https://d/s",
        max_message_chars=8192,
    )
    sent = 0
    for action in actions:
        for frame in attack_frames(action, models[action]):
            world.push.frames.clear()
            intake.handle(f"{role}-attacker", json.dumps(frame))
            sent += 1
            got = [f for to, f in world.push.frames if to == f"{role}-attacker"]
            leaked = [s for s in SECRETS if s in json.dumps(got)]
            assert not leaked, f"{role} {frame} got the victim's {leaked}: {got}"
            for answer in got:
                # An error may repeat the id the attacker sent; anything else naming the victim's
                # conversation means the action reached it.
                assert answer["type"] == "error" or "c_victim" not in json.dumps(answer), f"{role} {frame}: {answer}"
            to_victim = [to for to, _ in world.push.frames if to.endswith("-victim")]
            assert not to_victim, f"{role} {frame} sent frames to the victim's connections {to_victim}"
            assert world.victim_state() == before, f"{role} {frame} changed the victim's data"
    assert all(job.tenant_id == ATTACKER for job in world.queue.jobs)
    assert sent >= len(actions)
