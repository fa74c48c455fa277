"""The knowledge models' deployment: retrieve and admin get the same embedder/reranker settings, and
Bedrock permissions for exactly the chosen models (nothing when the defaults are kept)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import aws_cdk as cdk
import pytest

from infra.config import ConfigError, DeployConfig
from infra.constants import FUNCTIONS, FunctionName
from infra.constructs.access import USES_KNOWLEDGE_MODELS
from tests.infra.synthesis import SKIP_BUNDLING, Synth, synthesize

XRAY = ("xray:PutTraceSegments", "xray:PutTelemetryRecords")
COHERE = "cohere.embed-multilingual-v3"
OTHERS: tuple[FunctionName, ...] = tuple(name for name in FUNCTIONS if name not in USES_KNOWLEDGE_MODELS)


def _env(synth: Synth, name: FunctionName) -> dict[str, Any]:
    variables: dict[str, Any] = synth.function(name)["Properties"]["Environment"]["Variables"]
    return variables


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _statements(synth: Synth, name: FunctionName, action: str) -> list[dict[str, Any]]:
    return [s for s in synth.statements(name) if action in _list(s["Action"])]


def _bedrock_actions(synth: Synth, name: FunctionName) -> set[str]:
    return {a for a in synth.actions(name) if a.startswith("bedrock:")}


def test_retrieve_and_admin_get_the_same_embedder_and_reranker_settings(bedrock: Synth) -> None:
    expected = {
        "KEFU_EMBEDDING_PROVIDER": "bedrock",
        "KEFU_EMBEDDING_MODEL": "cohere.embed-multilingual-v3",
        "KEFU_EMBEDDING_COSINE_FLOOR": "0.15",
        "KEFU_RERANKER_PROVIDER": "bedrock",
        "KEFU_RERANKER_MODEL": "cohere.rerank-v3-5:0",
        "KEFU_RERANK_CANDIDATES": "30",
    }
    for name in USES_KNOWLEDGE_MODELS:
        env = _env(bedrock, name)
        assert {key: env.get(key) for key in expected} == expected, name
        assert "KEFU_EMBEDDING_DIMENSION" not in env  # unset: the model's own size
    for name in OTHERS:
        assert not any(key.startswith(("KEFU_EMBEDDING_", "KEFU_RERANK")) for key in _env(bedrock, name)), name


def test_bedrock_models_are_granted_to_retrieve_and_admin_only(bedrock: Synth) -> None:
    for name in USES_KNOWLEDGE_MODELS:
        # Given the role's Bedrock statements
        [invoke] = _statements(bedrock, name, "bedrock:InvokeModel")
        [rerank] = _statements(bedrock, name, "bedrock:Rerank")
        # Then InvokeModel names exactly the two foundation models, in this region
        resources = json.dumps(_list(invoke["Resource"]))
        assert len(_list(invoke["Resource"])) == 2
        assert "::foundation-model/cohere.embed-multilingual-v3" in resources
        assert "::foundation-model/cohere.rerank-v3-5:0" in resources
        assert ":bedrock:*:" not in resources and "foundation-model/*" not in resources
        # and Rerank (no resource-level permissions) is on '*', where only X-Ray's actions join it
        assert _list(rerank["Resource"]) == ["*"]
        assert set(_list(rerank["Action"])) == {"bedrock:Rerank", *XRAY}
        assert _bedrock_actions(bedrock, name) == {"bedrock:InvokeModel", "bedrock:Rerank"}
    for name in OTHERS:
        assert not _bedrock_actions(bedrock, name), name


def test_the_bedrock_variant_passes_cdk_nag(bedrock: Synth) -> None:
    report = json.loads((bedrock.outdir / "validation-report.json").read_text())
    assert report["pluginReports"] == []


def test_defaults_pass_nothing_and_grant_nothing(prod: Synth) -> None:
    for name in FUNCTIONS:
        env = _env(prod, name)
        assert not any(key.startswith(("KEFU_EMBEDDING_", "KEFU_RERANK")) for key in env), name
        if name != "generate":  # generate's own models are the model gateway's (tests of their own)
            assert not _bedrock_actions(prod, name), name


def test_on_prem_servers_get_settings_and_no_bedrock_grants(on_prem: Synth) -> None:
    for name in USES_KNOWLEDGE_MODELS:
        env = _env(on_prem, name)
        assert env["KEFU_EMBEDDING_PROVIDER"] == "openai"
        assert env["KEFU_EMBEDDING_BASE_URL"] == "https://tei.example.com/v1"
        assert env["KEFU_EMBEDDING_MODEL"] == "BAAI/bge-m3"
        assert env["KEFU_EMBEDDING_DIMENSION"] == "1024"
        assert env["KEFU_RERANKER_PROVIDER"] == "tei"
        assert env["KEFU_RERANKER_URL"] == "https://rerank.example.com"
        assert not _bedrock_actions(on_prem, name)


def test_the_default_bedrock_models_are_the_ones_the_factory_uses(tmp_path: Path) -> None:
    from shared.knowledge.factory import DEFAULT_BEDROCK_EMBEDDING_MODEL, DEFAULT_BEDROCK_RERANK_MODEL

    synth = synthesize(
        {"env": "dev", "embedding_provider": "bedrock", "reranker_provider": "bedrock", **SKIP_BUNDLING}, tmp_path
    )
    [invoke] = _statements(synth, "retrieve", "bedrock:InvokeModel")
    resources = json.dumps(_list(invoke["Resource"]))
    assert f"foundation-model/{DEFAULT_BEDROCK_EMBEDDING_MODEL}" in resources
    assert f"foundation-model/{DEFAULT_BEDROCK_RERANK_MODEL}" in resources
    assert "KEFU_EMBEDDING_MODEL" not in _env(synth, "retrieve")  # the function falls back to the same id


def test_a_model_arn_is_granted_as_given(tmp_path: Path) -> None:
    # A provisioned-throughput model (or any model ARN) is the resource itself.
    arn = "arn:aws:bedrock:eu-west-1:111122223333:provisioned-model/abc123def456"
    context = {"env": "dev", "embedding_provider": "bedrock", "embedding_model": arn}
    synth = synthesize({**context, **SKIP_BUNDLING}, tmp_path)
    [invoke] = _statements(synth, "admin", "bedrock:InvokeModel")
    assert _list(invoke["Resource"]) == [arn]
    assert not _statements(synth, "admin", "bedrock:Rerank")  # no reranker chosen


@pytest.mark.parametrize(
    ("context", "message"),
    [
        ({"embedding_provider": "sagemaker"}, "'embedding_provider' must be one of use, bedrock, openai"),
        ({"reranker_provider": "jina"}, "'reranker_provider' must be one of none, bedrock, tei, cohere"),
        ({"embedding_provider": "openai", "embedding_model": "m"}, "needs 'embedding_base_url'"),
        ({"embedding_provider": "bedrock", "embedding_dimension": "768"}, "256, 512 or 1024"),
        (
            {"embedding_provider": "bedrock", "embedding_model": COHERE, "embedding_dimension": "8"},
            "returns 1024-d vectors",
        ),
        ({"embedding_dimension": "many"}, "'embedding_dimension' must be a number"),
        ({"reranker_provider": "tei"}, "needs 'reranker_url'"),
        ({"reranker_provider": "cohere", "reranker_url": "rerank.local:8080"}, "must be an http(s):// URL"),
        ({"rerank_candidates": "0"}, "'rerank_candidates' must be 1..100"),
    ],
)
def test_bad_knowledge_model_context_is_refused_with_a_reason(context: dict[str, str], message: str) -> None:
    app = cdk.App(context=context)
    with pytest.raises(ConfigError, match=re.escape(message)):
        DeployConfig.from_context(app.node)

