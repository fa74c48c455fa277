"""Choose the knowledge backend, embedder and reranker from settings. Heavy clients are imported only
for the chosen ones."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from shared.knowledge.base import Embedder, KnowledgeIndex

# Used when the provider is Bedrock and no model is set; infra/config.py grants access to the same ids.
DEFAULT_BEDROCK_EMBEDDING_MODEL = "amazon.titan-embed-text-v2:0"
DEFAULT_BEDROCK_RERANK_MODEL = "amazon.rerank-v1:0"

# OpenSearch indexes are named kefu-chunks-<embedder>-<dimension> (chunk_index_name); IAM and the
# collection's data-access policy grant the functions this prefix (infra/constructs/knowledge.py).
CHUNK_INDEX_PREFIX = "kefu-chunks"

if TYPE_CHECKING:
    from shared.knowledge.rerank import Reranker
    from shared.settings import Settings


def _aws_client(settings: Settings, service: str, endpoint: str | None) -> Any:
    from shared.aws_clients import aws_client

    return aws_client(service, region=settings.aws_region, endpoint_url=endpoint)


def build_embedder(settings: Settings | None = None) -> Embedder:
    """The embedder ``settings.embedding_provider`` names (the shared local USE model by default)."""
    if settings is None or settings.embedding_provider == "use":
        from shared.knowledge.use_embedder import shared_embedder

        use = shared_embedder()
        if settings is not None:
            use.workers = settings.embedding_workers  # one model per process; its settings are the process's
        embedder: Embedder = use
    elif settings.embedding_provider == "bedrock":
        from shared.knowledge.remote_embedders import BedrockEmbedder

        embedder = BedrockEmbedder(
            _aws_client(settings, "bedrock-runtime", settings.bedrock_endpoint),
            settings.embedding_model or DEFAULT_BEDROCK_EMBEDDING_MODEL,
            settings.embedding_dimension,
        )
    else:
        from shared.knowledge.remote_embedders import OpenAICompatibleEmbedder

        if not (settings.embedding_base_url and settings.embedding_model and settings.embedding_dimension):
            raise ValueError(
                "KEFU_EMBEDDING_PROVIDER=openai needs KEFU_EMBEDDING_BASE_URL, KEFU_EMBEDDING_MODEL and "
                "KEFU_EMBEDDING_DIMENSION"
            )
        key = settings.embedding_api_key.get_secret_value() if settings.embedding_api_key else None
        embedder = OpenAICompatibleEmbedder(
            settings.embedding_base_url,
            settings.embedding_model,
            settings.embedding_dimension,
            api_key=key,
            timeout_seconds=settings.embedding_timeout_seconds,
        )
    if settings is not None and settings.embedding_provider != "use":
        # Per-model cosine range (the USE defaults are measured; remote models may be tuned here).
        if settings.embedding_cosine_floor is not None:
            embedder.cosine_floor = settings.embedding_cosine_floor
        if settings.embedding_cosine_ceiling is not None:
            embedder.cosine_ceiling = settings.embedding_cosine_ceiling
    return embedder


def build_reranker(settings: Settings) -> Reranker | None:
    """The deployment's reranker, or None (then the fused ranking stands for every tenant)."""
    if settings.reranker_provider == "none":
        return None
    if settings.reranker_provider == "bedrock":
        from shared.knowledge.rerank import BedrockReranker, bedrock_model_arn

        model = settings.reranker_model or DEFAULT_BEDROCK_RERANK_MODEL
        client = _aws_client(settings, "bedrock-agent-runtime", settings.bedrock_endpoint)
        return BedrockReranker(client, bedrock_model_arn(model, settings.aws_region))
    from shared.knowledge.rerank import HttpReranker

    if not settings.reranker_url:
        raise ValueError(f"KEFU_RERANKER_PROVIDER={settings.reranker_provider} needs KEFU_RERANKER_URL")
    key = settings.reranker_api_key.get_secret_value() if settings.reranker_api_key else None
    return HttpReranker(
        settings.reranker_url,
        wire=settings.reranker_provider,
        model=settings.reranker_model,
        api_key=key,
        timeout_seconds=settings.reranker_timeout_seconds,
    )


def embedding_model_name(settings: Settings) -> str:
    """The embedding model ``settings`` select: ``use`` for the bundled encoder, else the model id."""
    if settings.embedding_provider == "use":
        return "use"
    if settings.embedding_provider == "bedrock":
        return settings.embedding_model or DEFAULT_BEDROCK_EMBEDDING_MODEL
    return settings.embedding_model or settings.embedding_provider


def chunk_index_name(model: str, dimension: int) -> str:
    """``kefu-chunks-<model>-<dimension>``: an OpenSearch k-NN field's dimension is fixed when its index
    is created, and vectors of two models are not comparable, so each embedder gets its own index. A
    new embedder fills a new index (re-ingestion) while the old one keeps serving; nothing is ever
    written into an index of another model or size."""
    slug = re.sub(r"[^a-z0-9]+", "-", model.lower()).strip("-")
    return f"{CHUNK_INDEX_PREFIX}-{slug}-{dimension}"


def build_index(settings: Settings, embedder: Embedder | None = None) -> KnowledgeIndex:
    """The KnowledgeIndex for ``settings.knowledge_backend`` (local files, S3 or OpenSearch)."""
    embedder = embedder or build_embedder(settings)
    if settings.knowledge_backend == "s3":
        return build_s3_index(settings, embedder)
    if settings.knowledge_backend == "opensearch":
        # opensearch-py (~0.1 s to import) is loaded only by deployments that use it.
        from shared.knowledge.opensearch_index import build_opensearch_index

        name = settings.opensearch_index or chunk_index_name(embedding_model_name(settings), embedder.dimension)
        return build_opensearch_index(settings.model_copy(update={"opensearch_index": name}), embedder)
    from shared.knowledge.local_index import LocalHybridIndex

    return LocalHybridIndex(settings.knowledge_dir, embedder)


def build_s3_index(settings: Settings, embedder: Embedder) -> KnowledgeIndex:
    """The embedded index on S3 (shared/knowledge/s3_index.py), its pointer in the knowledge table."""
    from shared.aws_clients import aws_client
    from shared.knowledge.aws_storage import DynamoVersionPointer, S3ObjectStore
    from shared.knowledge.s3_index import S3HybridIndex
    from shared.state.tables import bind_models

    if not settings.knowledge_bucket:
        raise ValueError("KEFU_KNOWLEDGE_BACKEND=s3 needs KEFU_KNOWLEDGE_BUCKET")

    bind_models(settings)
    # A custom endpoint (moto, MinIO) serves buckets by path, not by host name.
    client = aws_client(
        "s3", region=settings.aws_region, endpoint_url=settings.s3_endpoint, path_style=bool(settings.s3_endpoint)
    )
    return S3HybridIndex(
        S3ObjectStore(client, settings.knowledge_bucket),
        DynamoVersionPointer(),
        embedder,
        settings.knowledge_cache_dir,
        prefix=settings.knowledge_prefix or f"{chunk_index_name(embedding_model_name(settings), embedder.dimension)}/",
        pointer_ttl_seconds=settings.knowledge_version_ttl_seconds,
        cached_tenants=settings.knowledge_cached_tenants,
    )
