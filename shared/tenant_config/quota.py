"""The ``quota`` section of TenantConfig: a tenant's monthly plan (enforced by shared/chat/quotas.py)."""

from __future__ import annotations

from pydantic import Field

from shared.config_section import ConfigSection


class QuotaConfig(ConfigSection):
    """A tenant's monthly quotas (its plan). None: the deployment's default (Settings.quota_*);
    0: unlimited."""

    questions_per_month: int | None = Field(default=None, ge=0)
    tokens_per_month: int | None = Field(default=None, ge=0)
