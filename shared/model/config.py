"""Per-tenant model settings (part of TenantConfig)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class ModelConfig(BaseModel):
    """Empty means: the deployment's model (KEFU_LLM_* settings)."""

    model_config = ConfigDict(extra="forbid")
