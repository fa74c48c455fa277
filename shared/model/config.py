"""Per-tenant model settings (part of TenantConfig)."""

from __future__ import annotations

from shared.config_section import ConfigSection


class ModelConfig(ConfigSection):
    """Empty means: the deployment's model (KEFU_LLM_* settings)."""
