from __future__ import annotations

import secrets

from fastapi import APIRouter, status
from pydantic import BaseModel, Field

from shared.admin.deps import ConnectionPush, ExistingTenant, PlatformOnly, Store
from shared.admin.keys import new_tenant_key
from shared.chat.connections import close_agent_sessions
from shared.config_section import CamelModel, ConfigSection
from shared.errors import Conflict, NotFound
from shared.state.records import AdminKeyRecord, Tenant, new_tenant_id, new_widget_key, now_ms

router = APIRouter(prefix="/v1/tenants", tags=["tenants"])


class CreateTenant(BaseModel):
    name: str = Field(min_length=1, max_length=200)


class TenantCreated(CamelModel):
    tenant_id: str
    widget_key: str
    name: str


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=TenantCreated,
    response_model_by_alias=True,
    dependencies=[PlatformOnly],
)
def create_tenant(body: CreateTenant, store: Store) -> TenantCreated:
    """Create a tenant; its widget key is what the chat widget sends when it connects."""
    tenant = Tenant(tenant_id=new_tenant_id(), name=body.name, widget_key=new_widget_key(), created_at=now_ms())
    store.put_tenant(tenant)
    return TenantCreated(tenant_id=tenant.tenant_id, widget_key=tenant.widget_key, name=tenant.name)


class TenantOut(CamelModel):
    tenant_id: str
    name: str
    widget_key: str
    created_at: int
    suspended: bool
    suspended_reason: str | None = None
    # Until when (epoch ms) the key before the last rotation still admits new connections.
    previous_widget_key_until: int | None = None
    identity_verification: bool


def _tenant_out(tenant: Tenant) -> TenantOut:
    return TenantOut(
        tenant_id=tenant.tenant_id,
        name=tenant.name,
        widget_key=tenant.widget_key,
        created_at=tenant.created_at,
        suspended=tenant.suspended,
        suspended_reason=tenant.suspended_reason,
        previous_widget_key_until=tenant.previous_widget_key_until,
        identity_verification=tenant.identity_secret is not None,
    )


@router.get("/{tenant_id}", response_model=TenantOut, response_model_by_alias=True)
def get_tenant(tenant: ExistingTenant) -> TenantOut:
    return _tenant_out(tenant)


class RotateWidgetKey(ConfigSection):
    # How long the old key still admits new connections (0: refused at once). Open connections stay.
    grace_seconds: int = Field(default=0, ge=0, le=7 * 24 * 3600)


@router.post("/{tenant_id}/widget-key", response_model=TenantOut, response_model_by_alias=True)
def rotate_widget_key(tenant: ExistingTenant, store: Store, body: RotateWidgetKey | None = None) -> TenantOut:
    """A new widget key (put it in the site's embed code); the old one admits no new connections once
    `graceSeconds` have passed."""
    grace_ms = (body or RotateWidgetKey()).grace_seconds * 1000
    rotated = tenant.model_copy(
        update={
            "widget_key": new_widget_key(),
            "previous_widget_key": tenant.widget_key if grace_ms else None,
            "previous_widget_key_until": now_ms() + grace_ms if grace_ms else None,
        }
    )
    store.put_tenant(rotated)
    return _tenant_out(rotated)


class Suspend(BaseModel):
    reason: str = Field(default="suspended by the operator", min_length=1, max_length=200)


@router.post(
    "/{tenant_id}/suspend", response_model=TenantOut, response_model_by_alias=True, dependencies=[PlatformOnly]
)
def suspend_tenant(
    tenant: ExistingTenant, store: Store, push_for: ConnectionPush, body: Suspend | None = None
) -> TenantOut:
    """Refuse the tenant's widget, agents and tenant admin keys. Agents' consoles are closed now
    (`session.ended`, reason `suspended`); a visitor's open chat is closed at its next frame (within
    the tenant-settings cache time)."""
    suspended = tenant.model_copy(update={"suspended": True, "suspended_reason": (body or Suspend()).reason})
    store.put_tenant(suspended)
    for agent in store.list_agents(tenant.tenant_id):
        close_agent_sessions(store, agent, push_for, "suspended")
    return _tenant_out(suspended)


@router.post("/{tenant_id}/resume", response_model=TenantOut, response_model_by_alias=True, dependencies=[PlatformOnly])
def resume_tenant(tenant: ExistingTenant, store: Store) -> TenantOut:
    resumed = tenant.model_copy(update={"suspended": False, "suspended_reason": None})
    store.put_tenant(resumed)
    return _tenant_out(resumed)


class IdentitySecret(CamelModel):
    # Shown once. The tenant's server signs its logged-in user: userHash = hex HMAC-SHA256(secret, userId).
    identity_secret: str


@router.post("/{tenant_id}/identity-secret", response_model=IdentitySecret, response_model_by_alias=True)
def new_identity_secret(tenant: ExistingTenant, store: Store) -> IdentitySecret:
    """Turn on (or rotate) signed user identity: the widget may pass `userId` and `userHash`."""
    secret = "is_" + secrets.token_urlsafe(32)
    store.put_tenant(tenant.model_copy(update={"identity_secret": secret}))
    return IdentitySecret(identity_secret=secret)


class CreateAdminKey(BaseModel):
    name: str = Field(min_length=1, max_length=80)


class AdminKeyOut(CamelModel):
    key_id: str
    name: str
    created_at: int


class AdminKeyWithSecret(AdminKeyOut):
    # Shown once: only its hash is stored.
    admin_key: str


class AdminKeys(CamelModel):
    admin_keys: list[AdminKeyOut]


@router.post(
    "/{tenant_id}/admin-keys",
    status_code=status.HTTP_201_CREATED,
    response_model=AdminKeyWithSecret,
    response_model_by_alias=True,
    dependencies=[PlatformOnly],
)
def create_admin_key(body: CreateAdminKey, tenant: ExistingTenant, store: Store) -> AdminKeyWithSecret:
    """A key for this tenant's own admin routes (`/v1/tenants/{tenantId}/…`, nothing else)."""
    if len(tenant.admin_keys) >= 20:
        raise Conflict("a tenant has at most 20 admin keys: revoke one first")
    key_id, key, key_hash = new_tenant_key(tenant.tenant_id)
    record = AdminKeyRecord(name=body.name, key_hash=key_hash, created_at=now_ms())
    store.put_tenant(tenant.model_copy(update={"admin_keys": {**tenant.admin_keys, key_id: record}}))
    return AdminKeyWithSecret(key_id=key_id, name=record.name, created_at=record.created_at, admin_key=key)


@router.get("/{tenant_id}/admin-keys", response_model=AdminKeys, response_model_by_alias=True)
def list_admin_keys(tenant: ExistingTenant) -> AdminKeys:
    keys = [AdminKeyOut(key_id=k, name=r.name, created_at=r.created_at) for k, r in tenant.admin_keys.items()]
    return AdminKeys(admin_keys=keys)


@router.delete("/{tenant_id}/admin-keys/{key_id}", status_code=204, dependencies=[PlatformOnly])
def revoke_admin_key(key_id: str, tenant: ExistingTenant, store: Store) -> None:
    if key_id not in tenant.admin_keys:
        raise NotFound(f"unknown admin key {key_id!r}")
    remaining = {k: r for k, r in tenant.admin_keys.items() if k != key_id}
    store.put_tenant(tenant.model_copy(update={"admin_keys": remaining}))
