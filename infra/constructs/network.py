"""Hybrid cloud: the generate function in the customer's VPC, reaching an on-premises model server.

The VPC and its private subnets exist already (they are routed to the data centre over a VPN or
Direct Connect); they are referenced by id, so synthesizing needs no AWS lookups. The security group
(created here unless one is given) allows only what generate needs outbound: the model server's
ports to the on-premises CIDRs, HTTPS to AWS APIs (through a NAT gateway or VPC endpoints) and, if
the deployment has one, Redis. Nothing inbound.

Reaching AWS APIs: DynamoDB (gateway endpoint), Lambda, Secrets Manager and Bedrock have VPC
endpoints, but the WebSocket API's ``@connections`` endpoint has none: an ``execute-api`` interface
endpoint reaches private REST APIs only, not a public WebSocket API. So generate's subnets need a
NAT gateway; with ``nat_public_subnet_id`` + ``nat_route_table_ids`` this construct creates one
(an Elastic IP and a NAT gateway in that public subnet, and a default route in each route table).

Lambda in a VPC needs permission to manage its network interfaces; CDK adds the AWS managed policy
for that to roles it creates, but these roles are kefu's own (no managed policies), so the same
actions are granted inline.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from infra.config import DeployConfig
from infra.nag import acknowledge

ENI_ACTIONS = (
    "ec2:CreateNetworkInterface",
    "ec2:DescribeNetworkInterfaces",
    "ec2:DescribeSubnets",
    "ec2:DeleteNetworkInterface",
    "ec2:AssignPrivateIpAddresses",
    "ec2:UnassignPrivateIpAddresses",
)


class ModelNetwork(Construct):
    def __init__(
        self, scope: Construct, construct_id: str, *, config: DeployConfig, function: lambda_.Function, role: iam.Role
    ) -> None:
        super().__init__(scope, construct_id)
        if config.vpc_id is None:
            raise ValueError("ModelNetwork needs config.vpc_id")
        self.security_group_id = config.vpc_security_group_id or self._security_group(config)
        cfn_function = function.node.default_child
        if not isinstance(cfn_function, lambda_.CfnFunction):
            raise TypeError("expected the function's CfnFunction")
        self.nat_address: ec2.CfnEIP | None = None  # the NAT gateway's public address, when created here
        self.nat_routes = self._nat_gateway(config) if config.creates_nat_gateway else []
        for route in self.nat_routes:  # generate moves into the subnets only once they have egress
            cfn_function.add_resource_dependency(route)
        cfn_function.vpc_config = lambda_.CfnFunction.VpcConfigProperty(
            security_group_ids=[self.security_group_id], subnet_ids=list(config.vpc_subnet_ids)
        )
        # The role's policies are created before the function (the function depends on its role).
        role.add_to_policy(iam.PolicyStatement(actions=list(ENI_ACTIONS), resources=["*"]))
        acknowledge(
            role,
            "AwsSolutions-IAM5",
            "Lambda's VPC network interface actions (as in AWSLambdaVPCAccessExecutionRole) and X-Ray's "
            "support no resource-level permissions.",
            findings=("Resource::*",),
        )

    def _nat_gateway(self, config: DeployConfig) -> list[ec2.CfnRoute]:
        """One NAT gateway (one AZ: a few dollars of cross-AZ data instead of a second $32 a month; if
        its AZ fails, generate's other AZ loses @connections until it is back)."""
        address = self.nat_address = ec2.CfnEIP(self, "NatAddress", domain="vpc")
        gateway = ec2.CfnNatGateway(
            self,
            "Nat",
            subnet_id=config.nat_public_subnet_id,
            allocation_id=address.attr_allocation_id,
            connectivity_type="public",
        )
        return [
            ec2.CfnRoute(
                self,
                f"DefaultRoute{index}",
                route_table_id=table,
                destination_cidr_block="0.0.0.0/0",
                nat_gateway_id=gateway.attr_nat_gateway_id,
            )
            for index, table in enumerate(config.nat_route_table_ids)
        ]

    def _security_group(self, config: DeployConfig) -> str:
        egress = [
            ec2.CfnSecurityGroup.EgressProperty(
                ip_protocol="tcp",
                from_port=port,
                to_port=port,
                cidr_ip=cidr if ":" not in cidr else None,
                cidr_ipv6=cidr if ":" in cidr else None,
                description=f"on-premises model server, port {port}",
            )
            for cidr in config.onprem_cidrs
            for port in config.onprem_ports
        ]
        egress.append(
            ec2.CfnSecurityGroup.EgressProperty(
                ip_protocol="tcp",
                from_port=443,
                to_port=443,
                cidr_ip="0.0.0.0/0",
                description="AWS APIs (@connections via NAT; DynamoDB, Lambda, Bedrock... via NAT or endpoints)",
            )
        )
        if config.redis_url:
            port = urlsplit(config.redis_url).port or 6379
            egress.append(
                ec2.CfnSecurityGroup.EgressProperty(
                    ip_protocol="tcp", from_port=port, to_port=port, cidr_ip="0.0.0.0/0", description="Redis"
                )
            )
        group = ec2.CfnSecurityGroup(
            self,
            "ModelAccess",
            group_description="kefu generate: outbound to the on-premises model and AWS APIs only",
            vpc_id=config.vpc_id,
            security_group_egress=egress,
        )
        return group.attr_group_id
