"""Everything a tenant can tune, stored with the tenant as one JSON document."""

from __future__ import annotations

from pydantic import Field

from shared.config_section import ConfigSection
from shared.handoff.config import HandoffConfig
from shared.knowledge.config import RetrievalConfig
from shared.model.config import ModelConfig


class TenantConfig(ConfigSection):
    retrieval: RetrievalConfig = Field(default_factory=RetrievalConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    handoff: HandoffConfig = Field(default_factory=HandoffConfig)
