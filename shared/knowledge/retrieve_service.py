"""The retrieve function's logic: a tenant's settings, then the shared search path. Its wire contract
(request, response, failure) is shared/knowledge/retrieve_contract.py."""

from __future__ import annotations

from abc import ABC, abstractmethod

from shared.knowledge.retrieve_contract import RetrieveRequest, RetrieveResponse
from shared.knowledge.search import KnowledgeService
from shared.tenant_config import TenantConfigCache
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
    """The tenant's stored RetrievalConfig, as the warm function's TenantConfigCache keeps it: a
    threshold calibrated in the admin API reaches every warm retrieve function within its TTL."""

    def __init__(self, configs: TenantConfigCache) -> None:
        self._configs = configs

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
