"""A fixed egress address for the calls to WeChat's and WeCom's APIs (``-c channels_egress=nat``).

WeChat's token endpoint answers only addresses on the Official Account's IP allowlist (IP白名单), and
WeCom restricts API calls to the corp's trusted IPs (企业可信IP). Lambda outside a VPC sends from AWS's
shared, changing addresses, so with this option the three functions that call the platforms (channels:
access tokens, WeCom's ``sync_msg``; generate: answers, notices and pull jobs through ``custom/send``,
``kf/send_msg``, ``sync_msg`` and webhook deliveries; message: agents' replies; any of them may be the
one that refreshes an access token) run in private subnets of a VPC of their own, whose one NAT
gateway sends from one Elastic IP (the ``ChannelsEgressIp`` output: the address to allowlist).

Off by default: a NAT gateway bills every hour whether or not anything passes (docs/cost.md, profile
``channels_nat``), and the default deployment idles under $1 a month.

- Two private subnets in two AZs (Lambda's advice for availability) and one NAT gateway, in the first
  AZ's public subnet: a second gateway would double the fixed cost. The price: while that AZ is down,
  calls to the platforms fail (WeChat retries an unanswered callback for about 15 s; a job that could
  not send is retried by the queue, then dead-lettered), and one allowlisted address would become two.
- DynamoDB through a gateway endpoint (free), so the state traffic bypasses the NAT's per-GB charge.
  SQS, Secrets Manager, Lambda (generate invoking retrieve), ``@connections`` and the platforms go
  through the NAT (interface endpoints would cost ~$7 a month each per AZ).
- Outbound: any TCP port (as outside a VPC: a tenant's webhook may listen on any port); nothing inbound.
- Rejected flows are logged (VPC flow log, two weeks), the one diagnostic of a blocked egress.
- Lambda in a VPC manages its network interfaces: the ENI actions (AWSLambdaVPCAccessExecutionRole's)
  are granted inline, as for the hybrid network (infra/constructs/network.py).
"""

from __future__ import annotations

from collections.abc import Sequence

import aws_cdk as cdk
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from infra.config import DeployConfig
from infra.constants import resource_name
from infra.constructs.network import ENI_ACTIONS, ModelNetwork
from infra.nag import acknowledge

# A private range unlikely to collide with a customer's network if they ever peer with it.
VPC_CIDR = "10.87.0.0/16"


class ChannelEgress(Construct):
    """The VPC, its NAT gateway and Elastic IP, and the functions placed behind it.

    With the hybrid profile (``vpc_id``) generate already runs in the customer's subnets
    (``ModelNetwork``): channels and message join it there, behind the same NAT gateway (the one
    ``nat_public_subnet_id`` creates, whose address is then ``ChannelsEgressIp``, or the subnets' own).
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: DeployConfig,
        functions: Sequence[tuple[lambda_.Function, iam.Role]],
        model_network: ModelNetwork | None = None,
    ) -> None:
        super().__init__(scope, construct_id)
        self.address: ec2.CfnEIP | None
        if model_network is None:
            subnet_ids, security_group_id, routes = self._own_vpc(config)
        else:
            self.address = model_network.nat_address
            subnet_ids = list(config.vpc_subnet_ids)
            security_group_id = config.vpc_security_group_id or self._security_group(config)
            routes = list(model_network.nat_routes)
        for function, role in functions:
            cfn_function = function.node.default_child
            if not isinstance(cfn_function, lambda_.CfnFunction):
                raise TypeError("expected the function's CfnFunction")
            cfn_function.vpc_config = lambda_.CfnFunction.VpcConfigProperty(
                security_group_ids=[security_group_id], subnet_ids=subnet_ids
            )
            # A function moves into the subnets only once they route to the NAT gateway.
            for route in routes:
                cfn_function.add_resource_dependency(route)
            role.add_to_policy(iam.PolicyStatement(actions=list(ENI_ACTIONS), resources=["*"]))
            acknowledge(
                role,
                "AwsSolutions-IAM5",
                "Lambda's VPC network interface actions (as in AWSLambdaVPCAccessExecutionRole) support no "
                "resource-level permissions; X-Ray's PutTraceSegments/PutTelemetryRecords have none either.",
                findings=("Resource::*",),
            )

    def _own_vpc(self, config: DeployConfig) -> tuple[list[str], str, list[ec2.CfnRoute]]:
        self.address = ec2.CfnEIP(
            self,
            "Address",
            domain="vpc",
            tags=[cdk.CfnTag(key="Name", value=resource_name(config.env, "channels-egress"))],
        )
        vpc = ec2.Vpc(
            self,
            "Vpc",
            vpc_name=resource_name(config.env, "channels"),
            ip_addresses=ec2.IpAddresses.cidr(VPC_CIDR),
            max_azs=2,
            nat_gateways=1,
            nat_gateway_provider=ec2.NatProvider.gateway(eip_allocation_ids=[self.address.attr_allocation_id]),
            subnet_configuration=[
                ec2.SubnetConfiguration(name="Public", subnet_type=ec2.SubnetType.PUBLIC, cidr_mask=24),
                ec2.SubnetConfiguration(name="Private", subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS, cidr_mask=22),
            ],
            gateway_endpoints={
                "DynamoDb": ec2.GatewayVpcEndpointOptions(service=ec2.GatewayVpcEndpointAwsService.DYNAMODB)
            },
            # Nothing uses the default security group; restricting it would add a custom-resource
            # function (a Node.js Lambda, its role and findings) to the stack for no effect.
            restrict_default_security_group=False,
        )
        flow_logs = logs.LogGroup(
            self,
            "RejectedFlows",
            retention=logs.RetentionDays.TWO_WEEKS,
            removal_policy=config.removal_policy,
        )
        vpc.add_flow_log(
            "FlowLog",
            destination=ec2.FlowLogDestination.to_cloud_watch_logs(flow_logs),
            traffic_type=ec2.FlowLogTrafficType.REJECT,
        )
        group = ec2.SecurityGroup(
            self,
            "Functions",
            vpc=vpc,
            description="kefu channels, generate and message: outbound through the NAT gateway, nothing inbound",
            allow_all_outbound=True,
        )
        private = vpc.select_subnets(subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS)
        routes = [
            child for subnet in private.subnets for child in subnet.node.find_all() if isinstance(child, ec2.CfnRoute)
        ]
        self.vpc = vpc
        return list(private.subnet_ids), group.security_group_id, routes

    def _security_group(self, config: DeployConfig) -> str:
        """In the customer's VPC: outbound TCP anywhere (the platforms, AWS APIs, tenants' webhook ports),
        nothing inbound."""
        group = ec2.CfnSecurityGroup(
            self,
            "ChannelsAccess",
            group_description="kefu channels and message: outbound to the platforms and AWS APIs, nothing inbound",
            vpc_id=config.vpc_id,
            security_group_egress=[
                ec2.CfnSecurityGroup.EgressProperty(
                    ip_protocol="tcp",
                    from_port=0,
                    to_port=65535,
                    cidr_ip="0.0.0.0/0",
                    description="WeChat/WeCom APIs, tenants' webhooks (any port), AWS APIs",
                )
            ],
        )
        return group.attr_group_id

    @property
    def public_ip(self) -> str | None:
        """The Elastic IP every call to the platforms comes from (None: the customer's own NAT gateway)."""
        return self.address.ref if self.address is not None else None
