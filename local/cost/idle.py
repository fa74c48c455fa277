"""The idle floor of a synthesized CloudFormation template: what it bills per month with no traffic.

Every resource type the stack may contain is classified here, as either **fixed monthly** (billed
whether or not anyone uses it: a secret, an alarm, an OpenSearch Serverless collection's minimum
OCUs, a NAT gateway, an SQS queue's idle Lambda pollers) or **usage only** (billed per request,
GB-second, byte stored or transferred: nothing without traffic). A type in neither list makes the
calculation fail: a new kind of resource must be priced before it ships.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from local.cost.prices import hours_per_month, load_prices, price

# What each usage-only type bills for (its idle cost is zero, or the bytes it stores: see STORED).
USAGE_ONLY: dict[str, str] = {
    "AWS::Lambda::Function": "requests and GB-s",
    "AWS::Lambda::LayerVersion": "nothing (counts toward the function's size)",
    "AWS::Lambda::Permission": "nothing",
    "AWS::Lambda::EventInvokeConfig": "nothing",
    "AWS::Lambda::Version": "nothing",
    "AWS::Lambda::Alias": "nothing unless provisioned concurrency (priced as fixed when set)",
    "AWS::Lambda::Url": "nothing (the function's requests)",
    "AWS::IAM::Role": "nothing",
    "AWS::IAM::Policy": "nothing",
    "AWS::IAM::ManagedPolicy": "nothing",
    "AWS::ApiGatewayV2::Api": "messages and connection minutes (WebSocket), requests (HTTP)",
    "AWS::ApiGatewayV2::Route": "nothing",
    "AWS::ApiGatewayV2::RouteResponse": "nothing",
    "AWS::ApiGatewayV2::Integration": "nothing",
    "AWS::ApiGatewayV2::IntegrationResponse": "nothing",
    "AWS::ApiGatewayV2::Stage": "nothing (access logs: CloudWatch Logs ingestion)",
    "AWS::ApiGatewayV2::Deployment": "nothing",
    "AWS::ApiGatewayV2::Authorizer": "nothing (the authorizer function's requests)",
    "AWS::ApiGateway::Account": "nothing",
    "AWS::DynamoDB::Table": "on-demand read/write request units and GB stored",
    "AWS::SQS::Queue": "requests (the idle pollers are priced on the event source mapping)",
    "AWS::SQS::QueuePolicy": "nothing",
    "AWS::S3::Bucket": "requests and GB stored",
    "AWS::S3::BucketPolicy": "nothing",
    "AWS::CloudFront::Distribution": "requests and GB out (pay-as-you-go, no monthly plan)",
    "AWS::CloudFront::Function": "invocations",
    "AWS::CloudFront::OriginAccessControl": "nothing",
    "AWS::CloudFront::CachePolicy": "nothing",
    "AWS::CloudFront::ResponseHeadersPolicy": "nothing",
    "AWS::CloudFront::OriginRequestPolicy": "nothing",
    "AWS::Logs::LogGroup": "GB ingested and stored",
    "AWS::Logs::MetricFilter": "the custom metric it publishes, when it matches",
    "AWS::SNS::Topic": "requests and deliveries",
    "AWS::SNS::Subscription": "deliveries",
    "AWS::SNS::TopicPolicy": "nothing",
    "AWS::OpenSearchServerless::SecurityPolicy": "nothing",
    "AWS::OpenSearchServerless::AccessPolicy": "nothing",
    "AWS::EC2::SecurityGroup": "nothing",
    "AWS::EC2::SecurityGroupIngress": "nothing",
    "AWS::EC2::SecurityGroupEgress": "nothing",
    "AWS::EC2::Route": "nothing",
    "AWS::EC2::VPC": "nothing",
    "AWS::EC2::Subnet": "nothing",
    "AWS::EC2::RouteTable": "nothing",
    "AWS::EC2::SubnetRouteTableAssociation": "nothing",
    "AWS::EC2::InternetGateway": "nothing (data out is billed on what sends it)",
    "AWS::EC2::VPCGatewayAttachment": "nothing",
    "AWS::EC2::FlowLog": "the log data it delivers (CloudWatch Logs ingestion)",
    "AWS::EC2::VPCEndpoint": "Gateway endpoints (S3, DynamoDB): nothing; Interface endpoints are fixed",
    "AWS::S3::BucketNotification": "nothing",
    "AWS::CDK::Metadata": "nothing",
    "Custom::CDKBucketDeployment": "one function run per deploy",
    "Custom::S3AutoDeleteObjects": "one function run per stack deletion",
    "Custom::S3BucketNotifications": "one function run per deploy",
    "Custom::LogRetention": "one function run per deploy",
    "Custom::SecureParameter": "one function run per deploy (the SSM SecureString it puts: standard, free)",
}

FIXED: dict[str, str] = {
    "AWS::OpenSearchServerless::Collection": "minimum OCUs, every hour",
    "AWS::SecretsManager::Secret": "per secret per month",
    "AWS::CloudWatch::Alarm": "per alarm metric per month",
    "AWS::CloudWatch::CompositeAlarm": "per composite alarm per month",
    "AWS::CloudWatch::Dashboard": "per dashboard per month",
    "AWS::KMS::Key": "per customer managed key per month",
    "AWS::EC2::NatGateway": "every hour, plus its public IPv4 address",
    "AWS::EC2::EIP": "public IPv4 address, every hour",
    "AWS::Lambda::EventSourceMapping": "SQS: the idle pollers' receives",
}


class UnpricedResource(ValueError):
    """The template has a resource type this calculator does not know: price it before shipping it."""


@dataclass(frozen=True)
class FixedCost:
    logical_id: str
    cfn_type: str
    monthly_usd: float
    why: str


def fixed_costs(template: Mapping[str, Any], prices: dict[str, Any] | None = None) -> list[FixedCost]:
    """Every resource of ``template`` with a cost when idle, with its monthly amount (list price)."""
    prices = prices or load_prices()
    resources: Mapping[str, Any] = template.get("Resources", {})
    unknown = sorted({r["Type"] for r in resources.values() if r["Type"] not in USAGE_ONLY and r["Type"] not in FIXED})
    if unknown:
        raise UnpricedResource(f"resource types without a price classification (local/cost/idle.py): {unknown}")
    lines: list[FixedCost] = []
    for logical_id, resource in resources.items():
        line = _fixed_line(logical_id, resource, resources, prices)
        if line is not None:
            lines.append(line)
    return lines


def _fixed_line(
    logical_id: str, resource: Mapping[str, Any], resources: Mapping[str, Any], prices: dict[str, Any]
) -> FixedCost | None:
    cfn_type: str = resource["Type"]
    props: Mapping[str, Any] = resource.get("Properties", {})
    hours = hours_per_month(prices)

    def line(amount: float, why: str) -> FixedCost:
        return FixedCost(logical_id, cfn_type, amount, why)

    if cfn_type == "AWS::OpenSearchServerless::Collection":
        standby = props.get("StandbyReplicas", "ENABLED") == "ENABLED"  # AWS's default is ENABLED
        ocus = price(
            "opensearch_serverless", "min_ocus_with_standby" if standby else "min_ocus_without_standby", prices
        )
        return line(
            ocus * hours * price("opensearch_serverless", "ocu_hour", prices),
            f"{ocus:g} OCU minimum ({'with' if standby else 'without'} standby replicas) x {hours:g} h",
        )
    if cfn_type == "AWS::SecretsManager::Secret":
        return line(price("secretsmanager", "secret_month", prices), "one secret")
    if cfn_type == "AWS::CloudWatch::Alarm":
        metrics = props.get("Metrics")
        count = sum(1 for m in metrics if "MetricStat" in m) if metrics else 1
        return line(
            count * price("cloudwatch", "alarm_standard_month", prices), f"{count} metric(s), standard resolution"
        )
    if cfn_type == "AWS::CloudWatch::CompositeAlarm":
        return line(0.50, "composite alarm")
    if cfn_type == "AWS::CloudWatch::Dashboard":
        return line(price("cloudwatch", "dashboard_month", prices), "one dashboard")
    if cfn_type == "AWS::KMS::Key":
        return line(price("kms", "customer_managed_key_month", prices), "customer managed key")
    if cfn_type == "AWS::EC2::NatGateway":
        return line(hours * price("vpc", "nat_gateway_hour", prices), f"{hours:g} h (data processed is usage)")
    if cfn_type == "AWS::EC2::EIP":
        return line(hours * price("vpc", "public_ipv4_hour", prices), f"public IPv4 address, {hours:g} h")
    if cfn_type == "AWS::EC2::VPCEndpoint":
        if props.get("VpcEndpointType", "Gateway") != "Interface":
            return None
        azs = max(1, len(props.get("SubnetIds", [])))
        return line(
            azs * hours * price("vpc", "interface_endpoint_hour_per_az", prices),
            f"Interface endpoint in {azs} AZ(s) x {hours:g} h",
        )
    if cfn_type == "AWS::DynamoDB::Table":
        if props.get("BillingMode") == "PAY_PER_REQUEST":
            return None
        raise UnpricedResource(f"{logical_id}: a provisioned-capacity table (price its capacity before shipping it)")
    if cfn_type == "AWS::Lambda::Alias":
        if props.get("ProvisionedConcurrencyConfig"):
            raise UnpricedResource(f"{logical_id}: provisioned concurrency (price it before shipping it)")
        return None
    if cfn_type == "AWS::Lambda::EventSourceMapping":
        return _sqs_pollers(logical_id, props, resources, prices)
    if cfn_type == "AWS::Lambda::Function" and props.get("ProvisionedConcurrencyConfig"):
        raise UnpricedResource(f"{logical_id}: provisioned concurrency (price it before shipping it)")
    return None


def _sqs_pollers(
    logical_id: str, props: Mapping[str, Any], resources: Mapping[str, Any], prices: dict[str, Any]
) -> FixedCost | None:
    source = props.get("EventSourceArn")
    queue_id = source.get("Fn::GetAtt", [None])[0] if isinstance(source, dict) else None
    queue = resources.get(queue_id or "", {})
    if queue.get("Type") != "AWS::SQS::Queue":
        return None  # streams and others: priced per use
    fifo = bool(queue.get("Properties", {}).get("FifoQueue"))
    pollers = price("sqs", "idle_pollers_per_mapping", prices)
    wait = price("sqs", "idle_long_poll_seconds", prices)
    receives = pollers * hours_per_month(prices) * 3600 / wait
    per_million = price("sqs", "fifo_per_million_requests" if fifo else "standard_per_million_requests", prices)
    return FixedCost(
        logical_id,
        "AWS::Lambda::EventSourceMapping",
        receives / 1e6 * per_million,
        f"~{receives / 1e3:,.0f}k empty receives a month ({pollers:g} pollers x one {wait:g} s long poll)",
    )


def idle_floor(template: Mapping[str, Any], prices: dict[str, Any] | None = None) -> float:
    return sum(line.monthly_usd for line in fixed_costs(template, prices))


def fixed_counts(template: Mapping[str, Any], prices: dict[str, Any] | None = None) -> Counter[str]:
    """How many resources of each type bill a fixed monthly amount."""
    return Counter(line.cfn_type for line in fixed_costs(template, prices))


def beyond_allowance(
    template: Mapping[str, Any], allowance: Mapping[str, int], prices: dict[str, Any] | None = None
) -> dict[str, int]:
    """Fixed-cost resource types present in larger numbers than ``allowance`` lets through."""
    return {
        cfn_type: count
        for cfn_type, count in fixed_counts(template, prices).items()
        if count > allowance.get(cfn_type, 0)
    }


# What the default profile (``cdk deploy`` with no context, env dev) may bill when idle: one secret
# (the admin key; the visitor-token signing key is a free SSM SecureString), the essential alarms
# (``-c alarms=essential``, infra/constructs/monitoring.py ESSENTIAL_ALARMS) and the generate queue's
# idle pollers: $0.93 a month at list price. Anything else with a fixed cost fails
# tests/infra/test_infra_cost.py.
DEFAULT_ALLOWANCE: dict[str, int] = {
    "AWS::SecretsManager::Secret": 1,
    "AWS::CloudWatch::Alarm": 2,
    "AWS::Lambda::EventSourceMapping": 1,
}

# Prod (``-c env=prod``) keeps every alarm (``alarms=full``: tests/infra/test_infra_monitoring.py says
# which: errors and throttles of the seven functions, the queue's two, the two APIs', failed channel sends):
# $2.63 a month at list price.
PROD_ALLOWANCE: dict[str, int] = {**DEFAULT_ALLOWANCE, "AWS::CloudWatch::Alarm": 19}
