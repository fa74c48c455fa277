from __future__ import annotations

from fastapi import APIRouter, status
from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from shared.admin.deps import Store
from shared.state.records import Tenant, new_tenant_id, new_widget_key, now_ms

router = APIRouter(prefix="/v1/tenants", tags=["tenants"])


class CreateTenant(BaseModel):
    name: str = Field(min_length=1, max_length=200)


class TenantCreated(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)

    tenant_id: str
    widget_key: str
    name: str


@router.post("", status_code=status.HTTP_201_CREATED, response_model=TenantCreated, response_model_by_alias=True)
def create_tenant(body: CreateTenant, store: Store) -> TenantCreated:
    """Create a tenant; its widget key is what the chat widget sends when it connects."""
    tenant = Tenant(tenant_id=new_tenant_id(), name=body.name, widget_key=new_widget_key(), created_at=now_ms())
    store.put_tenant(tenant)
    return TenantCreated(tenant_id=tenant.tenant_id, widget_key=tenant.widget_key, name=tenant.name)
