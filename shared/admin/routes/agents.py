from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, status
from pydantic import Field

from shared.admin.deps import ConnectionPush, ExistingTenant, Store
from shared.chat.connections import close_agent_sessions
from shared.config_section import CamelModel, ConfigSection
from shared.errors import Conflict, NotFound
from shared.handoff.agents import new_agent_key
from shared.state.records import Agent, AgentEdit, new_agent_id, now_ms

router = APIRouter(prefix="/v1/tenants/{tenant_id}/agents", tags=["agents"])


class CreateAgent(CamelModel):
    name: str = Field(min_length=1, max_length=80)
    # Conversations held at once; omitted: the tenant's handoff.agentCapacity.
    capacity: int | None = Field(default=None, ge=1, le=100)


class UpdateAgent(ConfigSection):
    name: str | None = Field(default=None, min_length=1, max_length=80)
    capacity: int | None = Field(default=None, ge=1, le=100)
    disabled: bool | None = None


class AgentOut(CamelModel):
    agent_id: str
    name: str
    capacity: int | None
    away: bool
    disabled: bool
    created_at: int


class AgentWithKey(AgentOut):
    # Shown once: only its hash is stored. The agent console logs in with it.
    agent_key: str


class Agents(CamelModel):
    agents: list[AgentOut]


def _out(agent: Agent) -> AgentOut:
    return AgentOut(
        agent_id=agent.agent_id,
        name=agent.name,
        capacity=agent.capacity,
        away=agent.away,
        disabled=agent.disabled,
        created_at=agent.created_at,
    )


def _agent(agent_id: str, tenant: ExistingTenant, store: Store) -> Agent:
    agent = store.get_agent(agent_id) if len(agent_id) <= 64 else None
    if agent is None or agent.tenant_id != tenant.tenant_id:
        raise NotFound(f"unknown agent {agent_id!r}")
    return agent


ExistingAgent = Annotated[Agent, Depends(_agent)]


@router.post("", status_code=status.HTTP_201_CREATED, response_model=AgentWithKey, response_model_by_alias=True)
def create_agent(body: CreateAgent, tenant: ExistingTenant, store: Store) -> AgentWithKey:
    """Add a person who answers visitors. The returned `agentKey` is shown only now."""
    agent_id = new_agent_id()
    key, key_hash = new_agent_key(agent_id)
    agent = Agent(
        agent_id=agent_id,
        tenant_id=tenant.tenant_id,
        name=body.name,
        key_hash=key_hash,
        created_at=now_ms(),
        capacity=body.capacity,
    )
    store.put_agent(agent)
    return AgentWithKey(**_out(agent).model_dump(), agent_key=key)


@router.get("", response_model=Agents, response_model_by_alias=True)
def list_agents(tenant: ExistingTenant, store: Store) -> Agents:
    return Agents(agents=[_out(a) for a in store.list_agents(tenant.tenant_id)])


@router.patch("/{agent_id}", response_model=AgentOut, response_model_by_alias=True)
def update_agent(body: UpdateAgent, agent: ExistingAgent, store: Store, push_for: ConnectionPush) -> AgentOut:
    """Rename, change capacity, or disable (a disabled agent cannot log in; open consoles are closed)."""
    if body.disabled and store.assigned_conversations(agent.agent_id, limit=1):
        raise Conflict("the agent holds conversations: transfer or resolve them first")
    updated = store.update_agent(
        agent.agent_id, AgentEdit(name=body.name, capacity=body.capacity, disabled=body.disabled)
    )
    if updated is None:
        raise NotFound(f"unknown agent {agent.agent_id!r}")
    if body.disabled:
        close_agent_sessions(store, updated, push_for, "disabled")
    return _out(updated)


@router.post("/{agent_id}/key", response_model=AgentWithKey, response_model_by_alias=True)
def rotate_key(agent: ExistingAgent, store: Store, push_for: ConnectionPush) -> AgentWithKey:
    """A new key for the agent; the old one stops working, and consoles logged in with it are closed
    (the agent logs in again with the new key)."""
    key, key_hash = new_agent_key(agent.agent_id)
    updated = store.update_agent(agent.agent_id, AgentEdit(key_hash=key_hash))
    if updated is None:
        raise NotFound(f"unknown agent {agent.agent_id!r}")
    close_agent_sessions(store, updated, push_for, "key_rotated")
    return AgentWithKey(**_out(updated).model_dump(), agent_key=key)


@router.delete("/{agent_id}", status_code=204)
def delete_agent(agent: ExistingAgent, store: Store) -> None:
    if store.assigned_conversations(agent.agent_id, limit=1):
        raise Conflict("the agent holds conversations: transfer or resolve them first")
    store.delete_agent(agent.agent_id)
