"""The model gateway end to end with real parts: a tenant's configuration in DynamoDB (moto), its API key
in Secrets Manager (moto), an on-premises OpenAI-compatible server that fails, and Bedrock taking over."""

from __future__ import annotations

from collections.abc import Iterator

import boto3
import pytest

from local.services import MotoServer, use_dummy_aws_credentials
from shared.model.answer_model import AnswerStream
from shared.model.gateway import ConfiguredModelGateway
from shared.model.resilience import CircuitBreakers
from shared.model.secrets import SecretsManagerResolver
from shared.settings import Settings
from shared.state.dynamodb import DynamoStateStore
from shared.state.records import Tenant
from shared.tenant_config import TenantConfig
from tests.support.aws_stream_server import AwsStreamServer, StreamScript
from tests.support.openai_sse_server import OpenAISSEServer, Script

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def onprem() -> Iterator[OpenAISSEServer]:
    with OpenAISSEServer() as running:
        yield running


@pytest.fixture(scope="module")
def bedrock() -> Iterator[AwsStreamServer]:
    use_dummy_aws_credentials()
    with AwsStreamServer() as running:
        yield running


def make_gateway(settings: Settings, moto_server: MotoServer) -> ConfiguredModelGateway:
    store = DynamoStateStore(settings)

    def tenant_config(tenant_id: str) -> TenantConfig | None:
        tenant = store.get_tenant(tenant_id)
        return tenant.config if tenant else None

    secrets = SecretsManagerResolver(
        lambda: boto3.client("secretsmanager", endpoint_url=moto_server.url, region_name=settings.aws_region)
    )
    return ConfiguredModelGateway(settings, tenant_config, secrets, CircuitBreakers(failures=2, cooldown_seconds=60))


def test_onprem_failure_falls_back_to_bedrock_then_the_breaker_skips_it(
    settings: Settings, moto_server: MotoServer, onprem: OpenAISSEServer, bedrock: AwsStreamServer
) -> None:
    # Given a tenant whose on-prem vLLM (key in Secrets Manager) falls back to Bedrock
    boto3.client("secretsmanager", endpoint_url=moto_server.url, region_name="us-east-1").create_secret(
        Name="kefu/test/models/acme-vllm", SecretString="sk-onprem-key"
    )
    config = TenantConfig.model_validate(
        {
            "model": {
                "provider": "openai",
                "model": "qwen",
                "endpoint": onprem.base_url,
                "apiKeySecret": "kefu/test/models/acme-vllm",
                "fallbacks": [{"provider": "bedrock", "model": "amazon.nova-lite-v1:0"}],
            }
        }
    )
    DynamoStateStore(settings).put_tenant(
        Tenant(tenant_id="acme", name="Acme", widget_key="wk", created_at=1, config=config)
    )
    settings = settings.model_copy(update={"bedrock_endpoint": bedrock.url, "llm_max_retries": 1})
    gateway = make_gateway(settings, moto_server)
    onprem.reset(Script(status=503))
    bedrock.reset(StreamScript(tokens=["From", " Bedrock."]))

    # When a visitor asks
    model = gateway.for_tenant("acme").model
    stream = model.stream("hi", model.plan("hi", []), [])
    text = "".join(stream)

    # Then on-prem was tried twice (one retry) with the key from the secret, and Bedrock answered
    assert text == "From Bedrock."
    assert len(onprem.requests) == 2
    assert onprem.requests[0].headers["authorization"] == "Bearer sk-onprem-key"
    assert isinstance(stream, AnswerStream) and stream.usage.fallback and stream.usage.provider == "bedrock"

    # And with the breaker open (2 failures), the next question goes straight to Bedrock
    again = gateway.for_tenant("acme").model
    assert "".join(again.stream("hi", again.plan("hi", []), [])) == "From Bedrock."
    assert len(onprem.requests) == 2 and len(bedrock.requests) == 2
