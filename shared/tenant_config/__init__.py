"""Everything a tenant can tune, stored with the tenant as one JSON document."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Annotated

from pydantic import Field

from shared.config_section import ConfigSection
from shared.tenant_config.handoff import HandoffConfig
from shared.tenant_config.model import ModelConfig
from shared.tenant_config.quota import QuotaConfig
from shared.tenant_config.retrieval import RetrievalConfig


class WidgetConfig(ConfigSection):
    # Origins (``https://shop.example.com``, or ``https://*.example.com``) whose pages may open the
    # widget, checked against the handshake's Origin header; empty: any origin.
    allowed_origins: list[Annotated[str, Field(pattern=r"^https?://(\*\.)?[A-Za-z0-9.-]+(:\d{1,5})?/?$")]] = Field(
        default_factory=list, max_length=50
    )


class TenantConfig(ConfigSection):
    widget: WidgetConfig = Field(default_factory=WidgetConfig)
    retrieval: RetrievalConfig = Field(default_factory=RetrievalConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    handoff: HandoffConfig = Field(default_factory=HandoffConfig)
    quota: QuotaConfig = Field(default_factory=QuotaConfig)


class TenantConfigCache:
    """Tenants' settings as ``read`` returns them (None: no such tenant), each kept ``ttl_seconds`` by a
    warm function: a change made in the admin API reaches every function within that time."""

    MAX_TENANTS = 1000  # a long-lived container forgets them all past this many

    def __init__(
        self,
        read: Callable[[str], TenantConfig | None],
        ttl_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._read = read
        self._ttl = ttl_seconds
        self._clock = clock
        self._configs: dict[str, tuple[float, TenantConfig | None]] = {}
        self._lock = threading.Lock()

    def get(self, tenant_id: str) -> TenantConfig | None:
        now = self._clock()
        with self._lock:
            cached = self._configs.get(tenant_id)
        if cached is not None and now - cached[0] < self._ttl:
            return cached[1]
        config = self._read(tenant_id)
        with self._lock:
            if len(self._configs) >= self.MAX_TENANTS:
                self._configs.clear()
            self._configs[tenant_id] = (now, config)
        return config
