"""Dependencies of the admin API: auth and the adapters, as Annotated aliases."""

from __future__ import annotations

import hmac
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Annotated

from fastapi import Depends, Header, Request

from shared.admin.keys import TENANT_KEY_PREFIX, hash_key, parse_tenant_key
from shared.errors import Forbidden, NotFound, Unauthorized
from shared.knowledge.base import KnowledgeIndex
from shared.settings import Settings, get_settings
from shared.state.records import Connection, Tenant
from shared.state.store import StateStore
from shared.wire.push import ClientPush
from shared.wiring import callback_url_of, knowledge_index, push_for, state_store


@lru_cache(maxsize=1)
def _admin_key() -> str:
    settings: Settings = get_settings()
    if settings.admin_key is not None:
        return settings.admin_key.get_secret_value()
    if settings.admin_key_secret_arn:
        from aws_lambda_powertools.utilities.parameters import get_secret

        return str(get_secret(settings.admin_key_secret_arn, max_age=300))
    raise Unauthorized("the admin API has no key configured (KEFU_ADMIN_KEY or KEFU_ADMIN_KEY_SECRET_ARN)")


def _store() -> StateStore:
    return state_store()


@dataclass(frozen=True)
class Principal:
    """Who is calling the admin API: the platform (the deployment's admin key) or one tenant (a
    tenant admin key, which reaches only ``/v1/tenants/{its id}/…`` and no platform route)."""

    tenant_id: str | None = None

    @property
    def platform(self) -> bool:
        return self.tenant_id is None


def require_admin(
    request: Request,
    store: Annotated[StateStore, Depends(_store)],
    authorization: Annotated[str | None, Header()] = None,
) -> Principal:
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise Unauthorized("send the admin key as 'Authorization: Bearer <key>'")
    if token.startswith(TENANT_KEY_PREFIX):
        principal = Principal(tenant_id=_tenant_of_key(store, token))
        path_tenant = request.path_params.get("tenant_id")
        if path_tenant is None:
            raise Forbidden("a tenant admin key cannot call platform routes; use the platform admin key")
        if path_tenant != principal.tenant_id:
            raise Forbidden("this admin key belongs to another tenant")
    elif hmac.compare_digest(token.encode(), _admin_key().encode()):
        principal = Principal()
    else:
        raise Unauthorized("wrong admin key")
    request.state.principal = principal
    return principal


def _tenant_of_key(store: StateStore, token: str) -> str:
    """The tenant a tenant admin key belongs to (its stored hash must match; a suspended tenant's keys
    are refused)."""
    parsed = parse_tenant_key(token)
    tenant = store.get_tenant(parsed[0]) if parsed else None
    record = tenant.admin_keys.get(parsed[1]) if tenant is not None and parsed else None
    if tenant is None or record is None or not hmac.compare_digest(record.key_hash, hash_key(token)):
        raise Unauthorized("wrong admin key")
    if tenant.suspended:
        raise Forbidden("this tenant is suspended")
    return tenant.tenant_id


def require_platform(request: Request) -> None:
    """For routes only the platform key may call (tenant creation and suspension, tenant admin keys,
    dead letters)."""
    principal = getattr(request.state, "principal", None)
    if not isinstance(principal, Principal) or not principal.platform:
        raise Forbidden("only the platform admin key may do this")


def _connection_push() -> Callable[[Connection], ClientPush]:
    """The @connections client of a stored connection (its API's domain and stage)."""
    return lambda connection: push_for(callback_url_of(connection.domain_name, connection.stage))


def _index() -> KnowledgeIndex:
    return knowledge_index()


Store = Annotated[StateStore, Depends(_store)]
ConnectionPush = Annotated[Callable[[Connection], ClientPush], Depends(_connection_push)]
Index = Annotated[KnowledgeIndex, Depends(_index)]
PlatformOnly = Depends(require_platform)


def _tenant(tenant_id: str, store: Store) -> Tenant:
    tenant = store.get_tenant(tenant_id) if len(tenant_id) <= 64 else None
    if tenant is None:
        raise NotFound(f"unknown tenant {tenant_id!r}")
    return tenant


ExistingTenant = Annotated[Tenant, Depends(_tenant)]
