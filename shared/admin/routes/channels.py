"""Tenants' messaging channels (WeChat Official Account, WeChat Customer Service, app webhook) and the
secrets they reference (docs/channels.md). Secret values go in and never come out."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Path, Request, Response
from pydantic import BaseModel, Field, ValidationError

from shared.admin.deps import ExistingTenant
from shared.channels.base import ChannelError
from shared.channels.directory import ChannelDirectory, ChannelRecord
from shared.channels.registry import KINDS, validate_fields
from shared.channels.secrets import SECRET_NAME, SecretStoreUnavailable, TenantSecrets
from shared.config_section import CamelModel
from shared.errors import BadRequest, NotFound, UpstreamError, describe_validation_error
from shared.settings import get_settings
from shared.wiring import channel_directory, tenant_secrets

router = APIRouter(prefix="/v1/tenants/{tenant_id}", tags=["channels"])

# Fields of each kind that name a tenant secret (checked to exist when a channel is saved).
_SECRET_FIELDS = {"appSecret", "encodingAesKey", "corpSecret", "secret"}


def _directory() -> ChannelDirectory:
    return channel_directory()


def _secrets() -> TenantSecrets:
    return tenant_secrets()


Directory = Annotated[ChannelDirectory, Depends(_directory)]
Secrets = Annotated[TenantSecrets, Depends(_secrets)]
SecretName = Annotated[str, Path(pattern=SECRET_NAME.pattern, description="letters, digits, _ . - (max 64)")]
ChannelId = Annotated[str, Path(max_length=40, pattern=r"^ch_[A-Za-z0-9_-]+$")]


class SecretIn(BaseModel):
    value: str = Field(min_length=1, max_length=8192)


class SecretOut(CamelModel):
    name: str
    stored: bool = True


class ChannelOut(CamelModel):
    channel_id: str
    kind: str
    enabled: bool
    webhook_url: str
    fields: dict[str, Any]
    created_at: float
    updated_at: float


def _out(record: ChannelRecord, request: Request) -> ChannelOut:
    base = get_settings().channels_public_url or str(request.base_url)
    return ChannelOut(
        channel_id=record.channel_id,
        kind=record.kind,
        enabled=record.enabled,
        webhook_url=f"{base.rstrip('/')}/channels/{record.channel_id}",
        fields=record.fields,
        created_at=record.created_at,
        updated_at=record.updated_at,
    )


def _checked_fields(tenant_id: str, kind: str, fields: dict[str, Any], secrets: TenantSecrets) -> dict[str, Any]:
    try:
        model = validate_fields(kind, fields)
    except ChannelError as exc:
        raise BadRequest(exc.reason) from None
    except ValidationError as exc:
        problems = describe_validation_error(exc, whole="channel", most=5)
        raise BadRequest(problems) from None
    stored = model.model_dump(mode="json", by_alias=True, exclude_none=True)
    for name in sorted(_SECRET_FIELDS & stored.keys()):
        if not SECRET_NAME.match(str(stored[name])) or not _exists(secrets, tenant_id, str(stored[name])):
            raise BadRequest(f"{name}: no tenant secret named {stored[name]!r}; PUT it to /secrets/{{name}} first")
    return stored


def _exists(secrets: TenantSecrets, tenant_id: str, name: str) -> bool:
    try:
        return secrets.exists(tenant_id, name)
    except SecretStoreUnavailable as exc:
        raise UpstreamError(exc.reason) from None


@router.put("/secrets/{name}", response_model=SecretOut, response_model_by_alias=True)
def put_secret(tenant: ExistingTenant, name: SecretName, body: SecretIn, secrets: Secrets) -> SecretOut:
    """Store (or replace) a secret a channel refers to by name. Its value is never returned."""
    try:
        secrets.put(tenant.tenant_id, name, body.value)
    except SecretStoreUnavailable as exc:
        raise UpstreamError(exc.reason) from None
    return SecretOut(name=name)


@router.post("/channels", response_model=ChannelOut, response_model_by_alias=True, status_code=201)
def create_channel(
    tenant: ExistingTenant,
    request: Request,
    directory: Directory,
    secrets: Secrets,
    body: Annotated[
        dict[str, Any],
        Body(examples=[{"kind": "wechat_oa", "appId": "wx…", "token": "tok123", "appSecret": "oa-secret"}]),
    ],
) -> ChannelOut:
    """Connect a channel: ``kind`` (wechat_oa | wecom_kf | webhook) and its fields; credentials are
    names of tenant secrets. The answer's ``webhookUrl`` goes into the platform's console."""
    fields = dict(body)
    kind = fields.pop("kind", None)
    if not isinstance(kind, str) or kind not in KINDS:
        raise BadRequest(f"kind must be one of: {', '.join(sorted(KINDS))}")
    stored = _checked_fields(tenant.tenant_id, kind, fields, secrets)
    try:
        record = directory.create(tenant.tenant_id, kind, stored)
    except ChannelError as exc:
        raise BadRequest(exc.reason) from None
    return _out(record, request)


@router.get("/channels", response_model=list[ChannelOut], response_model_by_alias=True)
def list_channels(tenant: ExistingTenant, request: Request, directory: Directory) -> list[ChannelOut]:
    return [_out(record, request) for record in directory.list(tenant.tenant_id)]


def _owned(directory: ChannelDirectory, tenant_id: str, channel_id: str) -> ChannelRecord:
    record = directory.get(channel_id)
    if record is None or record.tenant_id != tenant_id:
        raise NotFound(f"unknown channel {channel_id!r}")
    return record


@router.get("/channels/{channel_id}", response_model=ChannelOut, response_model_by_alias=True)
def get_channel(tenant: ExistingTenant, channel_id: ChannelId, request: Request, directory: Directory) -> ChannelOut:
    return _out(_owned(directory, tenant.tenant_id, channel_id), request)


@router.patch("/channels/{channel_id}", response_model=ChannelOut, response_model_by_alias=True)
def update_channel(
    tenant: ExistingTenant,
    channel_id: ChannelId,
    request: Request,
    directory: Directory,
    secrets: Secrets,
    changes: Annotated[dict[str, Any], Body(examples=[{"enabled": False}])],
) -> ChannelOut:
    """Change fields (merged into the stored ones) or ``enabled`` (false: the channel refuses requests)."""
    record = _owned(directory, tenant.tenant_id, channel_id)
    changes = dict(changes)
    if "kind" in changes and changes.pop("kind") != record.kind:
        raise BadRequest("a channel's kind cannot change; create another channel")
    enabled = changes.pop("enabled", record.enabled)
    if not isinstance(enabled, bool):
        raise BadRequest("enabled must be true or false")
    fields = _checked_fields(tenant.tenant_id, record.kind, {**record.fields, **changes}, secrets)
    return _out(directory.save(record.model_copy(update={"fields": fields, "enabled": enabled})), request)


@router.delete("/channels/{channel_id}", status_code=204)
def delete_channel(tenant: ExistingTenant, channel_id: ChannelId, directory: Directory) -> Response:
    directory.delete(_owned(directory, tenant.tenant_id, channel_id))
    return Response(status_code=204)
