from __future__ import annotations

import pytest

from shared.model.chat_answers import LangChainAnswerModel
from shared.model.extractive import ExtractiveModel
from shared.model.factory import ModelNotConfigured, build_answer_model
from shared.model.openai_compatible import OpenAICompatibleChatModel
from shared.settings import Settings


def test_extractive_is_the_default_and_needs_nothing() -> None:
    model = build_answer_model(Settings(min_answer_score=0.5))

    assert isinstance(model, ExtractiveModel)
    assert model.plan("q", []).citations == []


def test_openai_provider_builds_a_chat_model_answerer_from_settings() -> None:
    settings = Settings(
        llm_provider="openai",
        llm_base_url="http://vllm.internal:8000",
        llm_model="Qwen/Qwen2.5-7B-Instruct",
        llm_api_key="sk-local",
        llm_timeout_seconds=12,
        llm_max_tokens=300,
        retrieve_top_k=3,
    )

    model = build_answer_model(settings)

    assert isinstance(model, LangChainAnswerModel)
    chat = model._chat_model
    assert isinstance(chat, OpenAICompatibleChatModel)
    assert chat.base_url == "http://vllm.internal:8000/v1"
    assert chat.model == "Qwen/Qwen2.5-7B-Instruct"
    assert chat.api_key is not None and chat.api_key.get_secret_value() == "sk-local"
    assert (chat.timeout, chat.max_tokens, chat.temperature) == (12, 300, 0.2)


@pytest.mark.parametrize(
    ("base_url", "model", "missing"),
    [
        (None, None, "KEFU_LLM_BASE_URL and KEFU_LLM_MODEL"),
        ("http://localhost:8000/v1", None, "KEFU_LLM_MODEL"),
        ("  ", "m", "KEFU_LLM_BASE_URL"),
    ],
)
def test_openai_provider_without_its_settings_says_which_are_missing(
    base_url: str | None, model: str | None, missing: str
) -> None:
    settings = Settings(llm_provider="openai", llm_base_url=base_url, llm_model=model)

    with pytest.raises(ModelNotConfigured, match=f"needs {missing} "):
        build_answer_model(settings)


def test_openai_provider_with_a_bad_url_gives_a_clear_error() -> None:
    settings = Settings(llm_provider="openai", llm_base_url="localhost:8000", llm_model="m")

    with pytest.raises(ModelNotConfigured, match="invalid model settings: KEFU_LLM_BASE_URL must be an http"):
        build_answer_model(settings)
