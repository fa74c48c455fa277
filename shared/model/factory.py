"""Builds the configured answer model. The chat-model stack is imported only when it is configured."""

from __future__ import annotations

from shared.errors import KefuError
from shared.model.base import AnswerModel
from shared.model.extractive import ExtractiveModel
from shared.settings import Settings


class ModelNotConfigured(KefuError):
    """The settings select a model provider without the values it needs."""

    code = "model_not_configured"


def build_answer_model(settings: Settings) -> AnswerModel:
    """``extractive`` (default, no model needed) or ``openai`` (any OpenAI-compatible endpoint)."""
    if settings.llm_provider == "extractive":
        return ExtractiveModel(min_answer_score=settings.min_answer_score)
    if settings.llm_provider == "openai":
        return _build_openai_compatible(settings)
    raise ModelNotConfigured(f"unknown llm_provider {settings.llm_provider!r}; use 'extractive' or 'openai'")


def _build_openai_compatible(settings: Settings) -> AnswerModel:
    missing = [
        name
        for name, value in (("KEFU_LLM_BASE_URL", settings.llm_base_url), ("KEFU_LLM_MODEL", settings.llm_model))
        if not (value and value.strip())
    ]
    if missing:
        raise ModelNotConfigured(
            f"KEFU_LLM_PROVIDER=openai needs {' and '.join(missing)} "
            "(e.g. KEFU_LLM_BASE_URL=http://localhost:8000/v1, KEFU_LLM_MODEL=<served model name>)"
        )
    # Deferred: langchain-core costs ~0.3 s of cold start that the extractive default never pays.
    from pydantic import ValidationError

    from shared.model.chat_model import LangChainAnswerModel
    from shared.model.openai_compatible import OpenAICompatibleChatModel

    try:
        chat_model = OpenAICompatibleChatModel(
            base_url=settings.llm_base_url or "",
            model=settings.llm_model or "",
            api_key=settings.llm_api_key,
            timeout=settings.llm_timeout_seconds,
            temperature=settings.llm_temperature,
            max_tokens=settings.llm_max_tokens,
        )
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, err['loc']))}: {err['msg']}" for err in exc.errors())
        raise ModelNotConfigured(f"invalid model settings: {problems}") from None
    return LangChainAnswerModel(
        chat_model, min_answer_score=settings.min_answer_score, max_passages=settings.retrieve_top_k
    )
