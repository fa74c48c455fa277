"""Per-tenant retrieval settings (part of TenantConfig)."""

from __future__ import annotations

from pydantic import Field

from shared.config_section import ConfigSection

DEFAULT_TARGET_DECLINE = 0.9


class RetrievalConfig(ConfigSection):
    # Weight of the keyword (BM25) side in the fused score; the vector side gets 1 - this.
    keyword_weight: float = Field(default=0.5, ge=0.0, le=1.0)
    # Passages under this score are "no good answer": the bot declines or hands off. None: the
    # deployment default (Settings.min_answer_score). Set by calibration (POST .../knowledge/calibrate).
    min_answer_score: float | None = Field(default=None, ge=0.0, le=1.0)
    top_k: int | None = Field(default=None, ge=1, le=20)
    # Re-order the fused candidates with the deployment's reranker (Settings.reranker_*); scores then
    # come from the reranker, so calibrate again after switching.
    rerank: bool = False
    # What the last calibration measured (informational; written by the calibration routine).
    calibrated_at: int | None = None
    calibration_decline_rate: float | None = Field(default=None, ge=0.0, le=1.0)
    # The share of off-topic questions calibration declines (the tenant's trade-off; None: 0.9).
    target_decline: float | None = Field(default=None, ge=0.5, le=0.99)
    # Recalibrate on every upload or delete (false once the tenant calibrated with its own examples
    # or a floor, which are not stored; a calibration without them turns it on again).
    auto_calibrate: bool = True
