"""Per-tenant retrieval settings (part of TenantConfig)."""

from __future__ import annotations

from pydantic import Field

from shared.config_section import ConfigSection


class RetrievalConfig(ConfigSection):
    # Weight of the keyword (BM25) side in the fused score; the vector side gets 1 - this.
    keyword_weight: float = Field(default=0.5, ge=0.0, le=1.0)
    # Passages under this fused score are "no good answer". None: the deployment default.
    min_answer_score: float | None = Field(default=None, ge=0.0, le=1.0)
    top_k: int | None = Field(default=None, ge=1, le=20)
