"""Per-tenant human-handoff settings (part of TenantConfig)."""

from __future__ import annotations

from shared.config_section import ConfigSection


class HandoffConfig(ConfigSection):
    """Issue 5 (human handoff) fills this in."""
