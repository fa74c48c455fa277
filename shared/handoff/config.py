"""Per-tenant human-handoff settings (part of TenantConfig)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class HandoffConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
