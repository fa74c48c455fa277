"""Choose the knowledge backend from settings. Heavy clients are imported only for the chosen one."""

from __future__ import annotations

from typing import TYPE_CHECKING

from shared.knowledge.base import Embedder, KnowledgeIndex

if TYPE_CHECKING:
    from shared.settings import Settings


def build_embedder() -> Embedder:
    from shared.knowledge.embedder import shared_embedder

    return shared_embedder()


def build_index(settings: Settings, embedder: Embedder | None = None) -> KnowledgeIndex:
    """The KnowledgeIndex for ``settings.knowledge_backend`` (local files or OpenSearch)."""
    embedder = embedder or build_embedder()
    if settings.knowledge_backend == "opensearch":
        # opensearch-py (~0.1 s to import) is loaded only by deployments that use it.
        from shared.knowledge.opensearch_index import build_opensearch_index

        return build_opensearch_index(settings, embedder)
    from shared.knowledge.local_index import LocalHybridIndex

    return LocalHybridIndex(settings.knowledge_dir, embedder)
