"""The model gateway's deployment: hybrid cloud (generate in the customer's VPC), model secrets by
reference, Bedrock and SageMaker permissions for exactly the configured models."""

from __future__ import annotations

from typing import Any

from infra.constants import FUNCTIONS
from infra.constructs.network import ENI_ACTIONS
from tests.infra.profiles import HYBRID
from tests.infra.synthesis import Synth


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def statements_with(synth: Synth, name: str, action: str) -> list[dict[str, Any]]:
    return [s for s in synth.statements(name) if action in _list(s["Action"])]  # type: ignore[arg-type]


def test_only_generate_runs_in_the_vpc_with_the_given_subnets(hybrid: Synth) -> None:
    for name in FUNCTIONS:
        config = hybrid.function(name)["Properties"].get("VpcConfig")
        if name != "generate":
            assert config is None, name
            continue
        assert config["SubnetIds"] == ["subnet-0aaaaaaaaaaaaaaa1", "subnet-0bbbbbbbbbbbbbbb2"]
        [group_id] = hybrid.of_type("AWS::EC2::SecurityGroup")
        assert config["SecurityGroupIds"] == [{"Fn::GetAtt": [group_id, "GroupId"]}]


def test_the_security_group_allows_the_onprem_model_aws_apis_and_redis_outbound_only(hybrid: Synth) -> None:
    [group] = hybrid.of_type("AWS::EC2::SecurityGroup").values()
    properties = group["Properties"]
    assert properties["VpcId"] == "vpc-0a1b2c3d4e5f60718"
    assert "SecurityGroupIngress" not in properties
    rules = {(r["CidrIp"], r["FromPort"], r["ToPort"]) for r in properties["SecurityGroupEgress"]}
    assert rules == {("10.20.0.0/16", 8443, 8443), ("0.0.0.0/0", 443, 443), ("0.0.0.0/0", 6380, 6380)}


XRAY = {"xray:PutTraceSegments", "xray:PutTelemetryRecords"}


def test_generate_may_manage_its_network_interfaces_and_nothing_else_gets_wildcards(hybrid: Synth) -> None:
    for name in FUNCTIONS:
        wildcard = {
            action
            for statement in hybrid.statements(name)
            if "*" in _list(statement["Resource"])
            for action in _list(statement["Action"])
        }
        # Only actions without resource-level permissions: X-Ray everywhere, ENIs for generate in the VPC.
        assert wildcard == (XRAY | set(ENI_ACTIONS) if name == "generate" else XRAY), name


def test_bedrock_and_sagemaker_are_granted_for_the_configured_models_only(hybrid: Synth) -> None:
    [bedrock] = statements_with(hybrid, "generate", "bedrock:InvokeModelWithResponseStream")
    rendered = [str(r) for r in _list(bedrock["Resource"])]
    assert len(rendered) == 4
    assert any("::foundation-model/amazon.nova-pro-v1:0" in r for r in rendered)  # from the fallback chain
    assert any("inference-profile/us.anthropic.claude-3-5-haiku-20241022-v1:0" in r for r in rendered)
    assert any(":bedrock:*::foundation-model/anthropic.claude-3-5-haiku-20241022-v1:0" in r for r in rendered)
    assert any("::foundation-model/amazon.nova-lite-v1:0" in r and ":bedrock:*:" not in r for r in rendered)
    [sagemaker] = statements_with(hybrid, "generate", "sagemaker:InvokeEndpointWithResponseStream")
    assert "endpoint/acme-qwen-tgi" in str(sagemaker["Resource"])  # SageMaker ARNs are lower case
    for name in FUNCTIONS:
        if name != "generate":
            assert not any(a.startswith(("bedrock:", "sagemaker:")) for a in hybrid.actions(name)), name


def test_model_secrets_are_read_by_reference(hybrid: Synth) -> None:
    env = hybrid.function("generate")["Properties"]["Environment"]["Variables"]
    assert env["KEFU_LLM_CLIENT_CERT_SECRET"] == "kefu/dev/vllm-client-cert"
    assert env["KEFU_LLM_FALLBACKS"] == HYBRID["llm_fallbacks"]
    reads = [str(s["Resource"]) for s in statements_with(hybrid, "generate", "secretsmanager:GetSecretValue")]
    assert any("kefu/dev/vllm-client-cert-??????" in r for r in reads)
    assert any("secret:kefu/dev/models/*" in r for r in reads)  # tenants' model secrets, one prefix


def test_without_bedrock_or_sagemaker_models_nothing_is_granted(dev: Synth) -> None:
    assert not any(a.startswith(("bedrock:", "sagemaker:", "ec2:")) for a in dev.actions("generate"))
    readers = {name for name in FUNCTIONS if "secretsmanager:GetSecretValue" in dev.actions(name)}
    # tenants' model secrets; the admin key (the visitor-token key is an SSM parameter: connect and
    # message read no model's secret); channels (and generate, message): tenants' channel secrets
    assert readers == {"generate", "admin", "channels", "message"}
    reads = [str(s["Resource"]) for s in statements_with(dev, "admin", "secretsmanager:GetSecretValue")]
    assert reads and not any("models" in r for r in reads)  # never a model's secret
    reads = [str(s["Resource"]) for s in statements_with(dev, "channels", "secretsmanager:GetSecretValue")]
    assert reads and not any("models" in r for r in reads)


def test_the_nat_option_routes_generates_subnets_to_a_new_nat_gateway(hybrid: Synth) -> None:
    # @connections of a public WebSocket API has no VPC endpoint: generate reaches it through NAT.
    [(address_id, address)] = hybrid.of_type("AWS::EC2::EIP").items()
    assert address["Properties"]["Domain"] == "vpc"
    [(nat_id, nat)] = hybrid.of_type("AWS::EC2::NatGateway").items()
    assert nat["Properties"]["SubnetId"] == HYBRID["nat_public_subnet_id"]
    assert nat["Properties"]["AllocationId"] == {"Fn::GetAtt": [address_id, "AllocationId"]}
    routes = {r["Properties"]["RouteTableId"]: r["Properties"] for r in hybrid.of_type("AWS::EC2::Route").values()}
    assert set(routes) == {"rtb-0aaaaaaaaaaaaaaa1", "rtb-0bbbbbbbbbbbbbbb2"}
    for route in routes.values():
        assert route["DestinationCidrBlock"] == "0.0.0.0/0"
        assert route["NatGatewayId"] == {"Fn::GetAtt": [nat_id, "NatGatewayId"]}
    # generate joins the subnets only once they route to the NAT gateway
    route_ids = set(hybrid.of_type("AWS::EC2::Route"))
    assert route_ids <= set(hybrid.function("generate").get("DependsOn", []))


def test_generate_reserved_concurrency_is_set_only_when_configured(hybrid: Synth, dev: Synth) -> None:
    # The hybrid profile reserves 50; nothing else ever gets a reservation.
    for name in FUNCTIONS:
        reserved = hybrid.function(name)["Properties"].get("ReservedConcurrentExecutions")
        assert reserved == (50 if name == "generate" else None), name
        # A new account (10 concurrent executions, Lambda keeps 10 unreserved) can deploy the default.
        assert "ReservedConcurrentExecutions" not in dev.function(name)["Properties"], name
