"""One real synth of the dev stack per test session (bundles included), plus cheap variants.

The dev synth builds every asset (first run on a machine: pip downloads the arm64 wheels, ~1 min;
afterwards the cached trees under .kefu/build are only hard-linked, a few seconds). Variants that
only check the template (prod, an existing OpenSearch domain) skip bundling.
"""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

from infra.app import REPO_ROOT  # noqa: E402
from infra.constants import FUNCTIONS  # noqa: E402
from tests.infra.profiles import BEDROCK, HYBRID, ON_PREM, REBUILD  # noqa: E402
from tests.infra.synthesis import SKIP_BUNDLING, Synth, synthesize  # noqa: E402

# Every profile fixture below: test_infra_lint.py runs cfn-lint on each one's template.
PROFILES = ("dev", "prod", "existing_domain", "hybrid", "bedrock", "on_prem", "rebuild")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = os.path.dirname(__file__)
    for item in items:
        if str(item.path).startswith(here):
            item.add_marker(pytest.mark.infra)


@pytest.fixture(scope="session")
def dev(tmp_path_factory: pytest.TempPathFactory) -> Synth:
    missing = [name for name in FUNCTIONS if not (REPO_ROOT / "functions" / name / "handler.py").is_file()]
    if missing:
        pytest.fail(f"functions without handler.py: {missing}")
    return synthesize({"env": "dev"}, tmp_path_factory.mktemp("cdk-dev"))


@pytest.fixture(scope="session")
def prod(tmp_path_factory: pytest.TempPathFactory) -> Synth:
    return synthesize({"env": "prod", **SKIP_BUNDLING}, tmp_path_factory.mktemp("cdk-prod"))


@pytest.fixture(scope="session")
def existing_domain(tmp_path_factory: pytest.TempPathFactory) -> Synth:
    context = {
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
    return synthesize(context, tmp_path_factory.mktemp("cdk-domain"))


@pytest.fixture(scope="session")
def hybrid(tmp_path_factory: pytest.TempPathFactory) -> Synth:
    # cdk-nag runs inside the synth: an unacknowledged finding would fail here.
    return synthesize(HYBRID, tmp_path_factory.mktemp("cdk-hybrid"))


@pytest.fixture(scope="session")
def bedrock(tmp_path_factory: pytest.TempPathFactory) -> Synth:
    # cdk-nag runs inside the synth: an unacknowledged finding (the Rerank '*') would fail here.
    return synthesize(BEDROCK, tmp_path_factory.mktemp("cdk-bedrock-knowledge"))


@pytest.fixture(scope="session")
def on_prem(tmp_path_factory: pytest.TempPathFactory) -> Synth:
    return synthesize(ON_PREM, tmp_path_factory.mktemp("cdk-onprem-knowledge"))


@pytest.fixture(scope="session")
def rebuild(tmp_path_factory: pytest.TempPathFactory) -> Synth:
    return synthesize(REBUILD, tmp_path_factory.mktemp("cdk-rebuild"))
