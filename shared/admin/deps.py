"""Dependencies of the admin API: auth and the adapters, as Annotated aliases."""

from __future__ import annotations

import hmac
from collections.abc import Callable
from functools import lru_cache
from typing import Annotated

from fastapi import Depends, Header

from shared.chat.push import ClientPush
from shared.errors import NotFound, Unauthorized
from shared.knowledge.base import KnowledgeIndex
from shared.settings import Settings, get_settings
from shared.state.records import Connection, Tenant
from shared.state.store import StateStore
from shared.wiring import knowledge_index, state_store


@lru_cache(maxsize=1)
def _admin_key() -> str:
    settings: Settings = get_settings()
    if settings.admin_key is not None:
        return settings.admin_key.get_secret_value()
    if settings.admin_key_secret_arn:
        from aws_lambda_powertools.utilities.parameters import get_secret

        return str(get_secret(settings.admin_key_secret_arn, max_age=300))
    raise Unauthorized("the admin API has no key configured (KEFU_ADMIN_KEY or KEFU_ADMIN_KEY_SECRET_ARN)")


def require_admin(authorization: Annotated[str | None, Header()] = None) -> None:
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise Unauthorized("send the admin key as 'Authorization: Bearer <key>'")
    if not hmac.compare_digest(token.encode(), _admin_key().encode()):
        raise Unauthorized("wrong admin key")


def _store() -> StateStore:
    return state_store()


def _connection_push() -> Callable[[Connection], ClientPush]:
    """The @connections client of a stored connection (its API's domain and stage)."""
    from shared.chat.push import api_gateway_push, callback_url

    settings = get_settings()
    return lambda connection: api_gateway_push(
        callback_url(settings, connection.domain_name, connection.stage), settings.aws_region
    )


def _index() -> KnowledgeIndex:
    return knowledge_index()


Store = Annotated[StateStore, Depends(_store)]
ConnectionPush = Annotated[Callable[[Connection], ClientPush], Depends(_connection_push)]
Index = Annotated[KnowledgeIndex, Depends(_index)]


def _tenant(tenant_id: str, store: Store) -> Tenant:
    tenant = store.get_tenant(tenant_id) if len(tenant_id) <= 64 else None
    if tenant is None:
        raise NotFound(f"unknown tenant {tenant_id!r}")
    return tenant


ExistingTenant = Annotated[Tenant, Depends(_tenant)]
