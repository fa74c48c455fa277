"""The deployment profiles the infra tests synthesize (each once per session, in conftest.py)."""

from __future__ import annotations

from typing import Any

from tests.infra.synthesis import SKIP_BUNDLING

# Production with the admin API behind IAM authorization (docs/deploy.md).
PROD: dict[str, Any] = {"env": "prod", "admin_iam_auth": "true", **SKIP_BUNDLING}

# An existing OpenSearch domain, Redis and an OpenAI-compatible model behind a secret.
EXISTING_DOMAIN: dict[str, Any] = {
    "env": "dev",
    "opensearch_endpoint": "https://search-kefu-abc123.eu-west-1.es.amazonaws.com",
    "opensearch_domain_arn": "arn:aws:es:eu-west-1:111122223333:domain/kefu",
    "redis_url": "rediss://cache.example.com:6379/0",
    "llm_provider": "openai",
    "llm_base_url": "https://llm.example.com/v1",
    "llm_model": "qwen-2.5",
    "llm_api_key_secret": "kefu/llm-api-key",
    **SKIP_BUNDLING,
}

# Hybrid cloud: generate in the customer's VPC with a NAT gateway, a reserved concurrency, the model
# gateway's secrets and Bedrock/SageMaker models, and every alarm (``alarms=full``) e-mailed.
HYBRID: dict[str, Any] = {
    "env": "dev",
    "llm_provider": "openai",
    "llm_base_url": "https://10.20.0.5:8443/v1",
    "llm_model": "Qwen/Qwen2.5-7B-Instruct",
    "llm_client_cert_secret": "kefu/dev/vllm-client-cert",
    "bedrock_models": "us.anthropic.claude-3-5-haiku-20241022-v1:0, amazon.nova-lite-v1:0",
    "sagemaker_endpoints": "Acme-Qwen-TGI",
    "vpc_id": "vpc-0a1b2c3d4e5f60718",
    "vpc_subnet_ids": "subnet-0aaaaaaaaaaaaaaa1,subnet-0bbbbbbbbbbbbbbb2",
    "onprem_cidrs": "10.20.0.0/16",
    "onprem_ports": "8443",
    "redis_url": "rediss://cache.internal:6380/0",
    "llm_fallbacks": '[{"provider": "bedrock", "model": "amazon.nova-pro-v1:0"}]',
    # generate's subnets get a NAT gateway (to reach the public @connections endpoint)
    "nat_public_subnet_id": "subnet-0ccccccccccccccc3",
    "nat_route_table_ids": "rtb-0aaaaaaaaaaaaaaa1,rtb-0bbbbbbbbbbbbbbb2",
    "generate_reserved_concurrency": "50",
    "alarm_email": "oncall@example.com",
    "alarms": "full",
    **SKIP_BUNDLING,
}

# The knowledge models: Bedrock embedder and reranker; an on-premises OpenAI-compatible embedder.
BEDROCK: dict[str, Any] = {
    "env": "dev",
    "embedding_provider": "bedrock",
    "embedding_model": "cohere.embed-multilingual-v3",
    "embedding_cosine_floor": "0.15",
    "reranker_provider": "bedrock",
    "reranker_model": "cohere.rerank-v3-5:0",
    "rerank_candidates": "30",
    **SKIP_BUNDLING,
}
ON_PREM: dict[str, Any] = {
    "env": "dev",
    "embedding_provider": "openai",
    "embedding_base_url": "https://tei.example.com/v1",
    "embedding_model": "BAAI/bge-m3",
    "embedding_dimension": "1024",
    "reranker_provider": "tei",
    "reranker_url": "https://rerank.example.com",
    **SKIP_BUNDLING,
}

# OpenSearch Serverless instead of the S3-backed index (-c retrieval=opensearch).
OPENSEARCH: dict[str, Any] = {"env": "dev", "retrieval": "opensearch", **SKIP_BUNDLING}

# A knowledge rebuild toward Bedrock's Titan v2 (docs/deploy.md "Changing the embedder").
REBUILD: dict[str, Any] = {"env": "dev", "rebuild_embedding": '{"provider": "bedrock"}', **SKIP_BUNDLING}

# A fixed egress address for WeChat's and WeCom's IP allowlists (-c channels_egress=nat): channels,
# generate and message in a VPC of their own behind a NAT gateway with an Elastic IP
# (infra/constructs/egress.py); the callback URLs under the company's own domain (WeCom's rule).
CHANNELS_NAT: dict[str, Any] = {
    "env": "dev",
    "channels_egress": "nat",
    "channels_public_url": "https://kf.example.com/",
    **SKIP_BUNDLING,
}

# The same with the hybrid profile's VPC: channels and message join generate in the customer's subnets,
# behind the NAT gateway the hybrid option creates.
HYBRID_CHANNELS_NAT: dict[str, Any] = {
    "env": "dev",
    "vpc_id": "vpc-0a1b2c3d4e5f60718",
    "vpc_subnet_ids": "subnet-0aaaaaaaaaaaaaaa1,subnet-0bbbbbbbbbbbbbbb2",
    "onprem_cidrs": "10.20.0.0/16",
    "nat_public_subnet_id": "subnet-0ccccccccccccccc3",
    "nat_route_table_ids": "rtb-0aaaaaaaaaaaaaaa1,rtb-0bbbbbbbbbbbbbbb2",
    "channels_egress": "nat",
    **SKIP_BUNDLING,
}

# Synthesized once per session without bundling, each as the fixture of its name (conftest.py).
TEMPLATE_PROFILES: dict[str, dict[str, Any]] = {
    "prod": PROD,
    "existing_domain": EXISTING_DOMAIN,
    "hybrid": HYBRID,
    "bedrock": BEDROCK,
    "on_prem": ON_PREM,
    "rebuild": REBUILD,
    "opensearch": OPENSEARCH,
    "channels_nat": CHANNELS_NAT,
    "hybrid_channels_nat": HYBRID_CHANNELS_NAT,
}

# Every profile fixture: dev (bundled) and the template-only ones; test_infra_lint.py lints each.
PROFILES: tuple[str, ...] = ("dev", *TEMPLATE_PROFILES)
