"""The model gateway: which answer model answers a tenant's visitors.

A tenant's ``model`` configuration (or the deployment's ``KEFU_LLM_*`` model) becomes a chain of
targets behind retries, fallbacks and circuit breakers (shared/model/resilience.py). Built models
are kept per warm container, keyed by the configuration they were built from, so a configuration
change takes effect within ``tenant_config_ttl_seconds`` and a rotated secret within
``model_ttl_seconds``.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from abc import ABC, abstractmethod
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from shared.errors import KefuError
from shared.model.answer_model import AnswerModel
from shared.model.extractive import ExtractiveModel
from shared.model.factory import ModelNotConfigured, build_target, deployment_target, target_deadlines
from shared.model.resilience import CircuitBreakers, FallbackAnswerModel, ModelTargetRef
from shared.model.secrets import SecretResolver
from shared.observability import logger
from shared.settings import Settings
from shared.tenant_config import TenantConfig, TenantConfigCache
from shared.tenant_config.model import TIMEOUT_FIELDS, ModelConfig, ModelParameters, ModelTarget


@dataclass(frozen=True)
class TenantModel:
    """The answer model for a tenant, and what the answer cache keys on."""

    model: AnswerModel
    # Changes whenever anything that shapes the answers changes (targets, prompt, language, scores).
    identity: str
    # Worth caching: a model that costs tokens (not the free, deterministic extractive quote).
    cacheable: bool
    label: str
    # When no model answers in time: "error" (`model_unavailable`) or "extractive" (``fallback``).
    on_unavailable: str = "error"
    unavailable_text: str | None = None
    fallback: AnswerModel | None = None


class ModelGateway(ABC):
    @abstractmethod
    def for_tenant(self, tenant_id: str) -> TenantModel: ...


class FixedModelGateway(ModelGateway):
    """One model for every tenant (tests, single-tenant setups)."""

    def __init__(self, model: AnswerModel, *, identity: str = "fixed", cacheable: bool = False) -> None:
        self._tenant_model = TenantModel(model=model, identity=identity, cacheable=cacheable, label=identity)

    def for_tenant(self, tenant_id: str) -> TenantModel:
        return self._tenant_model


@dataclass(frozen=True)
class ModelSpec:
    """Everything a tenant's model is built from (after applying the deployment's defaults)."""

    targets: tuple[ModelTarget, ...]
    instructions: str | None
    answer_language: str
    min_answer_score: float
    answer_cache: bool
    # The deployment's own plain key applies to the deployment's target only.
    deployment_key_target: int | None
    on_unavailable: str = "error"
    unavailable_text: str | None = None
    first_token_budget_seconds: float = 15.0

    def identity(self, settings: Settings) -> str:
        document = {
            "targets": [target.model_dump(mode="json") for target in self.targets],
            "instructions": self.instructions,
            "language": self.answer_language,
            "minScore": self.min_answer_score,
            "maxPassages": settings.retrieve_top_k,
            "defaults": [settings.llm_temperature, settings.llm_max_tokens],
            "unavailable": [self.on_unavailable, self.unavailable_text, self.first_token_budget_seconds],
        }
        return hashlib.sha256(json.dumps(document, sort_keys=True).encode()).hexdigest()[:24]


class ConfiguredModelGateway(ModelGateway):
    def __init__(
        self,
        settings: Settings,
        tenant_config: Callable[[str], TenantConfig | None],
        secrets: SecretResolver,
        breakers: CircuitBreakers,
        *,
        model_ttl_seconds: float = 900,
        clock: Callable[[], float] = time.monotonic,
        max_models: int = 64,
    ) -> None:
        self._settings = settings
        self._secrets = secrets
        self._breakers = breakers
        self._model_ttl = model_ttl_seconds
        self._clock = clock
        self._max_models = max_models
        self._configs = TenantConfigCache(tenant_config, settings.tenant_config_ttl_seconds, clock)
        self._models: OrderedDict[str, tuple[TenantModel, float]] = OrderedDict()
        self._lock = threading.Lock()

    def for_tenant(self, tenant_id: str) -> TenantModel:
        return self.for_config(self._configs.get(tenant_id))

    def for_config(self, config: TenantConfig | None) -> TenantModel:
        spec = self.spec(config)
        identity = spec.identity(self._settings)
        now = self._clock()
        with self._lock:
            cached = self._models.get(identity)
            if cached is not None and now < cached[1]:
                self._models.move_to_end(identity)
                return cached[0]
        built, complete = self._build(spec, identity)
        # A chain with a target that could not be built is retried sooner (e.g. a secret being created).
        expires = now + (self._model_ttl if complete else min(self._model_ttl, 60))
        with self._lock:
            self._models[identity] = (built, expires)
            self._models.move_to_end(identity)
            while len(self._models) > self._max_models:
                self._models.popitem(last=False)
        return built

    def spec(self, config: TenantConfig | None) -> ModelSpec:
        model = config.model if config is not None else ModelConfig()
        settings = self._settings
        primary = model.primary()
        deployment_key_target: int | None = None
        if primary is None:
            primary = deployment_target(settings)
            if model.parameters != ModelParameters() or any(getattr(model, name) for name in TIMEOUT_FIELDS):
                primary = _tuned(primary, model)
            deployment_key_target = 0
        fallbacks = list(model.fallbacks)
        if not fallbacks and model.provider is None:
            fallbacks = self._deployment_fallbacks()
        retrieval_score = getattr(config.retrieval, "min_answer_score", None) if config is not None else None
        return ModelSpec(
            targets=(primary, *fallbacks),
            instructions=model.system_prompt,
            answer_language=model.answer_language,
            min_answer_score=retrieval_score if retrieval_score is not None else settings.min_answer_score,
            answer_cache=model.answer_cache,
            deployment_key_target=deployment_key_target,
            on_unavailable=model.on_unavailable or settings.llm_on_unavailable,
            unavailable_text=model.unavailable_text,
            first_token_budget_seconds=model.first_token_budget_seconds or settings.llm_first_token_budget_seconds,
        )

    def _deployment_fallbacks(self) -> list[ModelTarget]:
        try:
            return [ModelTarget.model_validate(raw) for raw in self._settings.llm_fallbacks]
        except ValueError as exc:
            raise ModelNotConfigured(f"KEFU_LLM_FALLBACKS is not a list of valid model targets: {exc}") from None

    def _build(self, spec: ModelSpec, identity: str) -> tuple[TenantModel, bool]:
        refs: list[ModelTargetRef] = []
        problems: list[str] = []
        for index, target in enumerate(spec.targets):
            try:
                model = build_target(
                    target,
                    settings=self._settings,
                    secrets=self._secrets,
                    min_answer_score=spec.min_answer_score,
                    instructions=spec.instructions,
                    answer_language=spec.answer_language,
                    api_key=self._settings.llm_api_key if index == spec.deployment_key_target else None,
                )
            except KefuError as exc:
                problems.append(f"{target.label()}: {exc.message}")
                logger.warning("model target not built", extra={"target": target.label(), "error": exc.message})
                continue
            _, first_token, between = target_deadlines(target, self._settings)
            refs.append(
                ModelTargetRef(
                    key=target.identity(),
                    label=target.label(),
                    model=model,
                    first_token_seconds=first_token,
                    between_tokens_seconds=between,
                    local=target.provider == "extractive",
                )
            )
        if not refs:
            raise ModelNotConfigured("no model target could be built: " + "; ".join(problems))
        primary = spec.targets[0]
        if len(refs) == 1 and primary.provider == "extractive":
            answer_model: AnswerModel = refs[0].model  # nothing to retry: it cannot fail upstream
        else:
            answer_model = FallbackAnswerModel(
                refs,
                self._breakers,
                max_retries=self._settings.llm_max_retries,
                first_token_budget_seconds=spec.first_token_budget_seconds,
                answer_seconds=self._settings.llm_answer_timeout_seconds,
            )
        fallback = None
        if spec.on_unavailable == "extractive":
            fallback = ExtractiveModel(min_answer_score=spec.min_answer_score, language=spec.answer_language)
        tenant_model = TenantModel(
            model=answer_model,
            identity=identity,
            cacheable=spec.answer_cache and primary.provider != "extractive",
            label=primary.label(),
            on_unavailable=spec.on_unavailable,
            unavailable_text=spec.unavailable_text,
            fallback=fallback,
        )
        return tenant_model, not problems


def _tuned(target: ModelTarget, model: ModelConfig) -> ModelTarget:
    """The deployment's target with the tenant's parameters and timeout laid over it."""
    parameters = target.parameters.model_copy(update=model.parameters.model_dump(exclude_defaults=True))
    update: dict[str, object] = {"parameters": parameters}
    for name in TIMEOUT_FIELDS:
        if getattr(model, name):
            update[name] = getattr(model, name)
    return target.model_copy(update=update)
