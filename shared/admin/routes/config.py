from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body
from pydantic import ValidationError

from shared.admin.deps import ExistingTenant, Store
from shared.errors import BadRequest, describe_validation_error
from shared.tenant_config import TenantConfig

router = APIRouter(prefix="/v1/tenants/{tenant_id}/config", tags=["tenant configuration"])


@router.get("", response_model=TenantConfig)
def get_config(tenant: ExistingTenant) -> TenantConfig:
    """The tenant's settings: retrieval, model and handoff sections."""
    return tenant.config


@router.patch("", response_model=TenantConfig)
def update_config(
    tenant: ExistingTenant,
    store: Store,
    changes: Annotated[dict[str, Any], Body(examples=[{"retrieval": {"keywordWeight": 0.4}}])],
) -> TenantConfig:
    """Merge the given fields into the tenant's settings (nested objects merge field by field)."""
    merged = _merge(tenant.config.model_dump(mode="json", by_alias=True), changes)
    try:
        config = TenantConfig.model_validate(merged)
    except ValidationError as exc:
        raise BadRequest(describe_validation_error(exc, whole="config", most=5)) from None
    store.put_tenant(tenant.model_copy(update={"config": config}))
    return config


def _merge(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged
