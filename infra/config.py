"""Deployment choices, read once from CDK context (``cdk synth -c env=prod -c redis_url=...``).

Everything that differs between environments or deployments comes from here; constructs take a
``DeployConfig`` and never read context themselves.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import re
from dataclasses import dataclass
from typing import Any, get_args

import aws_cdk as cdk
from constructs import Node

from infra.constants import DEFAULT_ENVIRONMENT, ENVIRONMENTS, Environment
from shared.knowledge.factory import DEFAULT_BEDROCK_EMBEDDING_MODEL, DEFAULT_BEDROCK_RERANK_MODEL, chunk_index_name
from shared.settings import Settings
from shared.tenant_config.model import ModelTarget

_LLM_PROVIDERS: tuple[str, ...] = get_args(Settings.model_fields["llm_provider"].annotation)
_EMBEDDING_PROVIDERS: tuple[str, ...] = get_args(Settings.model_fields["embedding_provider"].annotation)
_RERANKER_PROVIDERS: tuple[str, ...] = get_args(Settings.model_fields["reranker_provider"].annotation)


RETRIEVAL_BACKENDS = ("s3", "opensearch")
# Which alarms the stack creates (``-c alarms=...``; infra/constructs/monitoring.py): every one, the
# essential few (a visitor got no answer), or none. Each alarm bills $0.10 a month (docs/cost.md).
ALARM_LEVELS = ("full", "essential", "none")
# Where the functions that call WeChat's and WeCom's APIs (channels, generate, message) send from
# (``-c channels_egress=...``; infra/constructs/egress.py): "lambda" (Lambda's shared, changing
# addresses: nothing to pay) or "nat" (a VPC whose NAT gateway has one Elastic IP, for the platforms'
# IP allowlists: a NAT gateway bills every hour, docs/cost.md).
CHANNEL_EGRESS = ("lambda", "nat")


class ConfigError(ValueError):
    """A context value is missing or malformed; the message says which and why."""


@dataclass(frozen=True)
class DeployConfig:
    env: Environment
    # Optional Redis context cache (e.g. a managed Redis reachable over TLS). None: DynamoDB alone.
    redis_url: str | None = None
    # Answer model: the extractive default needs nothing; "openai" needs an OpenAI-compatible server.
    llm_provider: str = "extractive"
    llm_base_url: str | None = None
    llm_model: str | None = None
    # Name or ARN of an existing Secrets Manager secret holding the LLM API key (plain string); the
    # generate function reads it at cold start (never put in the template or the environment).
    llm_api_key_secret: str | None = None
    # Name or ARN of a secret with a client certificate for mTLS to the model server (JSON:
    # certificate, privateKey, caBundle; see shared/model/secrets.py).
    llm_client_cert_secret: str | None = None
    llm_api_version: str | None = None  # Azure OpenAI's api-version
    # The deployment's fallback chain: a JSON list of model targets as the admin API takes them, e.g.
    # [{"provider": "bedrock", "model": "us.anthropic.claude-3-5-haiku-20241022-v1:0"}].
    llm_fallbacks: str | None = None
    # Models generate may call on Bedrock (model ids, inference profile ids or ARNs; "*" for any) and
    # SageMaker endpoints it may invoke (names; "*" for any). The deployment's own model is added.
    bedrock_models: tuple[str, ...] = ()
    sagemaker_endpoints: tuple[str, ...] = ()
    # Tenants' model secrets (TenantConfig.model.apiKeySecret/clientCertSecret) must be named under
    # this prefix; None: kefu/<env>/models/.
    model_secrets_prefix: str | None = None
    # Hybrid cloud: run generate (the function that calls the model) in these private subnets of an
    # existing VPC, with a security group allowing the on-premises model's CIDRs and ports (reached
    # over VPN or Direct Connect) and HTTPS for AWS APIs (through a NAT gateway or VPC endpoints).
    vpc_id: str | None = None
    vpc_subnet_ids: tuple[str, ...] = ()
    vpc_security_group_id: str | None = None  # an existing group instead of the one created
    onprem_cidrs: tuple[str, ...] = ()
    onprem_ports: tuple[int, ...] = (443, 8000)
    # A NAT gateway for generate's subnets (network.py): in this public subnet (it routes to an internet
    # gateway), with a default route to it added to these route tables of the private subnets. generate
    # posts to the WebSocket API's public @connections endpoint, which no VPC endpoint reaches (an
    # execute-api endpoint serves private REST APIs only); without this option the subnets must
    # already have a NAT route. ~$32 a month per NAT gateway plus data ($0.045/GB, us-east-1).
    nat_public_subnet_id: str | None = None
    nat_route_table_ids: tuple[str, ...] = ()
    # Reserved concurrency of generate (a ceiling on parallel answers, and a floor no other function
    # can take). None: unreserved, as a new account needs (its quota of 10 concurrent executions is
    # also Lambda's minimum unreserved pool, so any reservation there fails the deploy).
    generate_reserved_concurrency: int | None = None
    # Where alarm notifications go besides the SNS topic the stack creates (an e-mail subscription,
    # confirmed by a link AWS sends); None: subscribe to the topic yourself (chat webhook, pager).
    alarm_email: str | None = None
    # "full", "essential" or "none" (ALARM_LEVELS); None: full in prod, essential elsewhere.
    alarms: str | None = None
    # "nat": channels, generate and message in a VPC of their own behind a NAT gateway and Elastic IP (the
    # fixed address WeChat's IP allowlist and WeCom's trusted IPs need), or with vpc_id in its subnets
    # beside generate, behind their NAT gateway; "lambda" (default): no VPC.
    channels_egress: str = "lambda"
    # The base URL tenants give the platforms (webhookUrl = <it>/channels/<channelId>) when the HTTP API
    # is served under a custom domain (WeCom accepts callback URLs only on the company's own ICP-filed
    # domain); None: the API's execute-api URL.
    channels_public_url: str | None = None
    # Where tenants' knowledge is indexed (``-c retrieval=...``): "s3" (default) keeps the embedded
    # hybrid index on S3 with its current version in DynamoDB, nothing running while idle;
    # "opensearch" creates an OpenSearch Serverless collection (a fixed monthly floor of OCUs) for
    # tenants past what one function holds (docs/performance.md), or uses an existing domain.
    retrieval: str = "s3"
    # Use an existing OpenSearch domain instead of creating a Serverless collection.
    opensearch_endpoint: str | None = None
    opensearch_domain_arn: str | None = None
    # Point the account's API Gateway CloudWatch role (needed for WebSocket access logs) at a role
    # this stack creates. Off when the account already has one that must not be touched.
    apigw_cloudwatch_role: bool = True
    # The admin API accepts only SigV4-signed requests from principals allowed execute-api:Invoke on
    # it (the bearer key is still checked by the function). Tenants' own admin keys then need IAM too.
    admin_iam_auth: bool = False
    # Knowledge models of retrieve and admin (shared/knowledge/factory.py): the embedder (use: the
    # bundled USE model; bedrock: Titan v2 or Cohere embed; openai: an OpenAI-compatible /v1/embeddings
    # server) and an optional reranker (bedrock, or a tei/cohere-style /rerank server). Bedrock models
    # get exactly the IAM grants they need (infra/constructs/access.py).
    embedding_provider: str = "use"
    embedding_model: str | None = None
    embedding_dimension: int | None = None
    embedding_base_url: str | None = None
    embedding_cosine_floor: float | None = None
    embedding_cosine_ceiling: float | None = None
    reranker_provider: str = "none"
    reranker_model: str | None = None
    reranker_url: str | None = None
    rerank_candidates: int | None = None
    # A knowledge rebuild (docs/deploy.md "Changing the embedder"): a JSON object with the next
    # embedder ({"provider": "bedrock", "model": "...", "dimension": 1024, "base_url": "..."}). admin
    # then ingests with it into that embedder's own index while retrieve keeps serving the current one;
    # deploying with it as the embedding_* context (and no rebuild) switches retrieve over.
    rebuild_embedding: str | None = None

    def __post_init__(self) -> None:
        if self.env not in ENVIRONMENTS:
            raise ConfigError(f"context 'env' must be one of {', '.join(ENVIRONMENTS)}; got {self.env!r}")
        if self.llm_provider not in _LLM_PROVIDERS:
            raise ConfigError(
                f"context 'llm_provider' must be one of {', '.join(_LLM_PROVIDERS)}; got {self.llm_provider!r}"
            )
        if self.llm_provider == "openai" and not self.llm_base_url:
            raise ConfigError("context 'llm_provider=openai' needs 'llm_base_url' (an OpenAI-compatible /v1 URL)")
        if self.retrieval not in RETRIEVAL_BACKENDS:
            raise ConfigError(
                f"context 'retrieval' must be one of {', '.join(RETRIEVAL_BACKENDS)}; got {self.retrieval!r}"
            )
        if self.opensearch_endpoint and self.retrieval != "opensearch":
            raise ConfigError("an existing OpenSearch domain ('opensearch_endpoint') needs 'retrieval=opensearch'")
        if bool(self.opensearch_endpoint) != bool(self.opensearch_domain_arn):
            raise ConfigError(
                "an existing OpenSearch domain needs both 'opensearch_endpoint' (https://...) and "
                "'opensearch_domain_arn' (arn:aws:es:...:domain/NAME) so the functions can be granted access"
            )
        if self.opensearch_endpoint and not self.opensearch_endpoint.startswith("https://"):
            raise ConfigError(f"'opensearch_endpoint' must start with https://; got {self.opensearch_endpoint!r}")
        if self.redis_url and not self.redis_url.startswith(("redis://", "rediss://")):
            raise ConfigError(f"'redis_url' must be a redis:// or rediss:// URL; got {self.redis_url!r}")
        if self.llm_provider == "bedrock" and not self.llm_model:
            raise ConfigError("context 'llm_provider=bedrock' needs 'llm_model' (a model id or inference profile id)")
        if self.llm_provider in ("sagemaker", "azure") and not self.llm_base_url:
            what = "the SageMaker endpoint name" if self.llm_provider == "sagemaker" else "the Azure OpenAI URL"
            raise ConfigError(f"context 'llm_provider={self.llm_provider}' needs 'llm_base_url' ({what})")
        if self.generate_reserved_concurrency is not None and self.generate_reserved_concurrency < 1:
            raise ConfigError(
                "'generate_reserved_concurrency' must be at least 1 (0 would throttle every answer); "
                f"got {self.generate_reserved_concurrency}"
            )
        if self.alarm_email and not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", self.alarm_email):
            raise ConfigError(f"'alarm_email' must be an e-mail address; got {self.alarm_email!r}")
        if self.alarms is not None and self.alarms not in ALARM_LEVELS:
            raise ConfigError(f"context 'alarms' must be one of {', '.join(ALARM_LEVELS)}; got {self.alarms!r}")
        if self.channels_egress not in CHANNEL_EGRESS:
            raise ConfigError(
                f"context 'channels_egress' must be one of {', '.join(CHANNEL_EGRESS)}; got {self.channels_egress!r}"
            )
        if self.channels_public_url and not re.fullmatch(r"https://[^/\s]+(/[^\s]*)?", self.channels_public_url):
            raise ConfigError(f"'channels_public_url' must be an https:// URL; got {self.channels_public_url!r}")
        self.fallback_targets  # noqa: B018 - validates llm_fallbacks
        self._check_network()
        self._check_knowledge_models()
        self.ingest_config  # noqa: B018 - validates rebuild_embedding (the target is checked like the embedder)

    @property
    def fallback_targets(self) -> list[ModelTarget]:
        if not self.llm_fallbacks:
            return []
        try:
            raw = json.loads(self.llm_fallbacks)
            if not isinstance(raw, list):
                raise ValueError("not a JSON list")
            return [ModelTarget.model_validate(item) for item in raw]
        except ValueError as exc:
            raise ConfigError(f"'llm_fallbacks' must be a JSON list of model targets: {exc}") from None

    def _check_network(self) -> None:
        if not self.vpc_id:
            if (
                self.vpc_subnet_ids
                or self.vpc_security_group_id
                or self.onprem_cidrs
                or self.nat_public_subnet_id
                or self.nat_route_table_ids
            ):
                raise ConfigError(
                    "'vpc_subnet_ids', 'vpc_security_group_id', 'onprem_cidrs' and the NAT options need 'vpc_id'"
                )
            return
        if bool(self.nat_public_subnet_id) != bool(self.nat_route_table_ids):
            raise ConfigError(
                "a NAT gateway needs both 'nat_public_subnet_id' (a subnet routed to an internet gateway) and "
                "'nat_route_table_ids' (the route tables of 'vpc_subnet_ids')"
            )
        if self.nat_public_subnet_id:
            if not re.fullmatch(r"subnet-[0-9a-f]{8,17}", self.nat_public_subnet_id):
                raise ConfigError(
                    f"'nat_public_subnet_id' must look like subnet-0123abcd; got {self.nat_public_subnet_id!r}"
                )
            if self.nat_public_subnet_id in self.vpc_subnet_ids:
                raise ConfigError(
                    "'nat_public_subnet_id' must be a public subnet, not one of generate's 'vpc_subnet_ids'"
                )
            for table in self.nat_route_table_ids:
                if not re.fullmatch(r"rtb-[0-9a-f]{8,17}", table):
                    raise ConfigError(f"'nat_route_table_ids' must be route table ids like rtb-0123abcd; got {table!r}")
        if not re.fullmatch(r"vpc-[0-9a-f]{8,17}", self.vpc_id):
            raise ConfigError(f"'vpc_id' must look like vpc-0123abcd; got {self.vpc_id!r}")
        if not self.vpc_subnet_ids:
            raise ConfigError("'vpc_id' needs 'vpc_subnet_ids' (comma-separated private subnets, two AZs or more)")
        for subnet in self.vpc_subnet_ids:
            if not re.fullmatch(r"subnet-[0-9a-f]{8,17}", subnet):
                raise ConfigError(f"'vpc_subnet_ids' must be subnet ids like subnet-0123abcd; got {subnet!r}")
        if self.vpc_security_group_id and not re.fullmatch(r"sg-[0-9a-f]{8,17}", self.vpc_security_group_id):
            raise ConfigError(f"'vpc_security_group_id' must look like sg-0123abcd; got {self.vpc_security_group_id!r}")
        if not self.vpc_security_group_id and not self.onprem_cidrs:
            raise ConfigError("'vpc_id' needs 'onprem_cidrs' (the model server's network, e.g. 10.20.0.0/16)")
        for cidr in self.onprem_cidrs:
            try:
                ipaddress.ip_network(cidr)
            except ValueError:
                raise ConfigError(f"'onprem_cidrs' must be CIDRs like 10.20.0.0/16; got {cidr!r}") from None
        for port in self.onprem_ports:
            if not 1 <= port <= 65535:
                raise ConfigError(f"'onprem_ports' must be TCP ports; got {port}")

    def _check_knowledge_models(self) -> None:
        if self.embedding_provider not in _EMBEDDING_PROVIDERS:
            raise ConfigError(
                f"context 'embedding_provider' must be one of {', '.join(_EMBEDDING_PROVIDERS)}; "
                f"got {self.embedding_provider!r}"
            )
        if self.reranker_provider not in _RERANKER_PROVIDERS:
            raise ConfigError(
                f"context 'reranker_provider' must be one of {', '.join(_RERANKER_PROVIDERS)}; "
                f"got {self.reranker_provider!r}"
            )
        if self.embedding_provider == "openai" and not (
            self.embedding_base_url and self.embedding_model and self.embedding_dimension
        ):
            raise ConfigError(
                "context 'embedding_provider=openai' needs 'embedding_base_url' (an OpenAI-compatible /v1 URL), "
                "'embedding_model' and 'embedding_dimension'"
            )
        if self.embedding_provider == "bedrock":
            from shared.knowledge.remote_embedders import BedrockEmbedder

            try:  # the adapter's own check of the model's vector sizes
                BedrockEmbedder(None, self.bedrock_embedding_model or "", self.embedding_dimension)
            except ValueError as exc:
                raise ConfigError(f"context 'embedding_dimension': {exc}") from None
        for key, url in (("embedding_base_url", self.embedding_base_url), ("reranker_url", self.reranker_url)):
            if url and not url.startswith(("https://", "http://")):
                raise ConfigError(f"'{key}' must be an http(s):// URL; got {url!r}")
        if self.reranker_provider in ("tei", "cohere") and not self.reranker_url:
            raise ConfigError(f"context 'reranker_provider={self.reranker_provider}' needs 'reranker_url'")
        if self.rerank_candidates is not None and not 1 <= self.rerank_candidates <= 100:
            raise ConfigError(f"'rerank_candidates' must be 1..100; got {self.rerank_candidates}")

    @property
    def ingest_config(self) -> DeployConfig:
        """The knowledge settings admin indexes with: the rebuild's next embedder during a rebuild."""
        if not self.rebuild_embedding:
            return self
        try:
            target = json.loads(self.rebuild_embedding)
            if not isinstance(target, dict) or not target.get("provider"):
                raise ValueError("not a JSON object with a 'provider'")
            unknown = set(target) - {"provider", "model", "dimension", "base_url"}
            if unknown:
                raise ValueError(f"unknown keys {sorted(unknown)}")
            dimension = target.get("dimension")
            next_config = dataclasses.replace(
                self,
                embedding_provider=str(target["provider"]),
                embedding_model=target.get("model"),
                embedding_dimension=int(dimension) if dimension is not None else None,
                embedding_base_url=target.get("base_url"),
                # Cosine ranges are per model: the next model starts from its provider's defaults.
                embedding_cosine_floor=None,
                embedding_cosine_ceiling=None,
                rebuild_embedding=None,
            )
        except (ValueError, TypeError, ConfigError) as exc:
            raise ConfigError(f"'rebuild_embedding': {exc}") from None
        if next_config.knowledge_index == self.knowledge_index:
            raise ConfigError(
                f"'rebuild_embedding' names the current embedder (index {self.knowledge_index}): nothing to rebuild"
            )
        return next_config

    @property
    def embedding_dimension_used(self) -> int:
        """The vector size of the chosen embedder (the k-NN field's dimension of its index)."""
        if self.embedding_provider == "use":
            from shared.knowledge.use_embedder import UseEmbedder

            return UseEmbedder.dimension
        if self.embedding_provider == "bedrock":
            from shared.knowledge.remote_embedders import BedrockEmbedder

            return BedrockEmbedder(None, self.bedrock_embedding_model or "", self.embedding_dimension).dimension
        assert self.embedding_dimension is not None  # required for openai (checked above)
        return self.embedding_dimension

    @property
    def knowledge_index(self) -> str:
        """``kefu-chunks-<embedder>-<dimension>``: the OpenSearch index of this embedder's vectors."""
        model = {"use": "use", "bedrock": self.bedrock_embedding_model}.get(self.embedding_provider)
        return chunk_index_name(model or self.embedding_model or self.embedding_provider, self.embedding_dimension_used)

    @property
    def bedrock_embedding_model(self) -> str | None:
        """The Bedrock embedding model retrieve and admin call, if the embedder is Bedrock's."""
        if self.embedding_provider != "bedrock":
            return None
        return self.embedding_model or DEFAULT_BEDROCK_EMBEDDING_MODEL

    @property
    def bedrock_rerank_model(self) -> str | None:
        """The Bedrock rerank model retrieve and admin call, if the reranker is Bedrock's."""
        if self.reranker_provider != "bedrock":
            return None
        return self.reranker_model or DEFAULT_BEDROCK_RERANK_MODEL

    @property
    def knowledge_model_settings(self) -> dict[str, str]:
        """Settings fields (shared/settings.py) for the embedder and reranker; unset ones are left out."""
        values: dict[str, object] = {
            "embedding_provider": self.embedding_provider,
            "embedding_model": self.embedding_model,
            "embedding_dimension": self.embedding_dimension,
            "embedding_base_url": self.embedding_base_url,
            "embedding_cosine_floor": self.embedding_cosine_floor,
            "embedding_cosine_ceiling": self.embedding_cosine_ceiling,
            "reranker_provider": self.reranker_provider,
            "reranker_model": self.reranker_model,
            "reranker_url": self.reranker_url,
            "rerank_candidates": self.rerank_candidates,
        }
        defaults = {"embedding_provider": "use", "reranker_provider": "none"}
        return {k: str(v) for k, v in values.items() if v is not None and defaults.get(k) != v}

    @property
    def in_vpc(self) -> bool:
        return self.vpc_id is not None

    @property
    def creates_nat_gateway(self) -> bool:
        return self.nat_public_subnet_id is not None

    @property
    def fixed_channel_egress(self) -> bool:
        """channels, generate and message call the platforms from one Elastic IP (infra/constructs/egress.py)."""
        return self.channels_egress == "nat"

    @property
    def tenant_channel_secrets(self) -> str:
        """Where the admin API stores tenants' channel credentials (shared/channels/secrets.py)."""
        return f"kefu/{self.env}/channels"

    @property
    def tenant_model_secrets(self) -> str:
        """The name prefix tenants' model secrets must have (generate may read only those)."""
        return self.model_secrets_prefix or f"kefu/{self.env}/models/"

    @property
    def bedrock_model_ids(self) -> tuple[str, ...]:
        own = (self.llm_model,) if self.llm_provider == "bedrock" and self.llm_model else ()
        chain = tuple(t.model for t in self.fallback_targets if t.provider == "bedrock" and t.model)
        return tuple(dict.fromkeys((*self.bedrock_models, *own, *chain)))

    @property
    def sagemaker_endpoint_names(self) -> tuple[str, ...]:
        own = (self.llm_base_url,) if self.llm_provider == "sagemaker" and self.llm_base_url else ()
        chain = tuple(t.endpoint for t in self.fallback_targets if t.provider == "sagemaker" and t.endpoint)
        return tuple(dict.fromkeys((*self.sagemaker_endpoints, *own, *chain)))

    @property
    def is_production(self) -> bool:
        return self.env == "prod"

    @property
    def alarm_level(self) -> str:
        """Every alarm in prod; in dev the essential ones, keeping the idle floor under $1 (docs/cost.md)."""
        return self.alarms or ("full" if self.is_production else "essential")

    @property
    def removal_policy(self) -> cdk.RemovalPolicy:
        """Production keeps its data when the stack (or a resource) is deleted or replaced; dev cleans up.

        RETAIN_ON_UPDATE_OR_DELETE (CloudFormation's ``RetainExceptOnCreate``), not RETAIN: a resource
        created by a stack creation that then fails is rolled back with it. With RETAIN the failed
        create left the fixed-name tables and collection behind and every retry failed with "already
        exists" (docs/deploy.md, "Names and what survives").
        """
        return cdk.RemovalPolicy.RETAIN_ON_UPDATE_OR_DELETE if self.is_production else cdk.RemovalPolicy.DESTROY

    @property
    def uses_existing_domain(self) -> bool:
        return self.opensearch_endpoint is not None

    @classmethod
    def from_context(cls, node: Node) -> DeployConfig:
        def text(key: str) -> str | None:
            value: Any = node.try_get_context(key)
            if value is None or value == "":
                return None
            return str(value)

        def items(key: str) -> tuple[str, ...]:
            return tuple(part.strip() for part in (text(key) or "").split(",") if part.strip())

        def ports(key: str) -> tuple[int, ...] | None:
            given = items(key)
            if not given:
                return None
            try:
                return tuple(int(port) for port in given)
            except ValueError:
                raise ConfigError(f"context {key!r} must be comma-separated port numbers; got {text(key)!r}") from None

        def number(key: str, kind: type[int] | type[float]) -> Any:
            value = text(key)
            if value is None:
                return None
            try:
                return kind(value)
            except ValueError:
                raise ConfigError(f"context {key!r} must be a number; got {value!r}") from None

        def flag(key: str, default: bool) -> bool:
            value = text(key)
            if value is None:
                return default
            if value.lower() in ("true", "1", "yes"):
                return True
            if value.lower() in ("false", "0", "no"):
                return False
            raise ConfigError(f"context {key!r} must be true or false; got {value!r}")

        return cls(
            env=text("env") or DEFAULT_ENVIRONMENT,  # type: ignore[arg-type]  # checked in __post_init__
            redis_url=text("redis_url"),
            llm_provider=text("llm_provider") or "extractive",
            llm_base_url=text("llm_base_url"),
            llm_model=text("llm_model"),
            llm_api_key_secret=text("llm_api_key_secret"),
            llm_client_cert_secret=text("llm_client_cert_secret"),
            llm_api_version=text("llm_api_version"),
            llm_fallbacks=text("llm_fallbacks"),
            bedrock_models=items("bedrock_models"),
            sagemaker_endpoints=items("sagemaker_endpoints"),
            model_secrets_prefix=text("model_secrets_prefix"),
            vpc_id=text("vpc_id"),
            vpc_subnet_ids=items("vpc_subnet_ids"),
            vpc_security_group_id=text("vpc_security_group_id"),
            onprem_cidrs=items("onprem_cidrs"),
            onprem_ports=ports("onprem_ports") or (443, 8000),
            nat_public_subnet_id=text("nat_public_subnet_id"),
            nat_route_table_ids=items("nat_route_table_ids"),
            generate_reserved_concurrency=number("generate_reserved_concurrency", int),
            alarm_email=text("alarm_email"),
            alarms=text("alarms"),
            channels_egress=text("channels_egress") or "lambda",
            channels_public_url=text("channels_public_url"),
            # An existing domain implies OpenSearch.
            retrieval=text("retrieval") or ("opensearch" if text("opensearch_endpoint") else "s3"),
            opensearch_endpoint=text("opensearch_endpoint"),
            opensearch_domain_arn=text("opensearch_domain_arn"),
            apigw_cloudwatch_role=flag("apigw_cloudwatch_role", default=True),
            admin_iam_auth=flag("admin_iam_auth", default=False),
            embedding_provider=text("embedding_provider") or "use",
            embedding_model=text("embedding_model"),
            embedding_dimension=number("embedding_dimension", int),
            embedding_base_url=text("embedding_base_url"),
            embedding_cosine_floor=number("embedding_cosine_floor", float),
            embedding_cosine_ceiling=number("embedding_cosine_ceiling", float),
            reranker_provider=text("reranker_provider") or "none",
            reranker_model=text("reranker_model"),
            reranker_url=text("reranker_url"),
            rerank_candidates=number("rerank_candidates", int),
            rebuild_embedding=text("rebuild_embedding"),
        )
