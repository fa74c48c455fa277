"""The retrieve function's logic: a tenant's settings, then the shared search path. Its wire contract
(request, response, failure) is shared/knowledge/retrieve_contract.py."""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable

from shared.knowledge.retrieve_contract import RetrieveRequest, RetrieveResponse
from shared.knowledge.search import KnowledgeService
from shared.tenant_config import TenantConfig, TenantConfigCache
from shared.tenant_config.retrieval import RetrievalConfig


class TenantConfigSource(ABC):
    @abstractmethod
    def retrieval_config(self, tenant_id: str) -> RetrievalConfig:
        """The tenant's retrieval settings (defaults for a tenant without any)."""


class StaticConfigs(TenantConfigSource):
    """Fixed settings for every tenant (tests, benchmarks, tools without a state store)."""

    def __init__(self, config: RetrievalConfig | None = None) -> None:
        self.config = config or RetrievalConfig()

    def retrieval_config(self, tenant_id: str) -> RetrievalConfig:
        return self.config


class StoredTenantConfigs(TenantConfigSource):
    """Reads a tenant's settings (``read``: the state store's ``tenant_config``) and keeps its
    RetrievalConfig ``ttl_seconds``: a threshold calibrated in the admin API reaches every warm retrieve
    function within that time."""

    def __init__(
        self,
        read: Callable[[str], TenantConfig | None],
        ttl_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._configs = TenantConfigCache(read, ttl_seconds, clock)

    def retrieval_config(self, tenant_id: str) -> RetrievalConfig:
        config = self._configs.get(tenant_id)
        # An unknown tenant searches with defaults and finds nothing: its index is empty.
        return config.retrieval if config is not None else RetrievalConfig()


class RetrieveService:
    """What the retrieve function does, behind its handler: the tenant's settings, then the shared
    search path (KnowledgeService) that the admin recall test uses too."""

    def __init__(self, knowledge: KnowledgeService, configs: TenantConfigSource) -> None:
        self.knowledge = knowledge
        self.configs = configs

    def retrieve(self, request: RetrieveRequest) -> RetrieveResponse:
        config = self.configs.retrieval_config(request.tenant_id)
        outcome = self.knowledge.search(request.tenant_id, config, request.query, request.k)
        return RetrieveResponse.from_outcome(outcome)
