"""DynamoDB tables: tenants, connections, conversations, messages, agents, limits (schema of shared/state/tables.py)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from constructs import Construct

from infra.config import DeployConfig
from infra.constants import (
    AGENT_CONNECTION_INDEX,
    ASSIGNEE_INDEX,
    CONVERSATION_INDEX,
    QUEUE_INDEX,
    TENANT_INDEX,
    TICKET_INDEX,
    TTL_ATTRIBUTE,
    TableName,
    resource_name,
)

_S = dynamodb.AttributeType.STRING
_N = dynamodb.AttributeType.NUMBER


@dataclass(frozen=True)
class _Index:
    name: str
    partition_key: str
    sort_key: tuple[str, dynamodb.AttributeType] | None = None


@dataclass(frozen=True)
class _TableSpec:
    partition_key: str
    sort_key: str | None = None
    indexes: tuple[_Index, ...] = ()


_TABLES: dict[TableName, _TableSpec] = {
    "tenants": _TableSpec("tenant_id"),
    "connections": _TableSpec(
        "connection_id",
        indexes=(_Index(CONVERSATION_INDEX, "conversation_id"), _Index(AGENT_CONNECTION_INDEX, "agent_tenant_id")),
    ),
    "conversations": _TableSpec(
        "conversation_id",
        indexes=(
            _Index(TENANT_INDEX, "tenant_id", ("created_at", _N)),
            _Index(QUEUE_INDEX, "queued_tenant_id", ("waiting_since", _N)),
            _Index(ASSIGNEE_INDEX, "assignee_id", ("updated_at", _N)),
            _Index(TICKET_INDEX, "ticket_tenant_id", ("ticket_at", _N)),
        ),
    ),
    "messages": _TableSpec("conversation_id", sort_key="message_id"),
    "agents": _TableSpec("agent_id", indexes=(_Index(TENANT_INDEX, "tenant_id", ("created_at", _N)),)),
    # Rate-limit counters of the message function (one item per key and window, gone by TTL).
    "limits": _TableSpec("counter_key"),
}


class StateTables(Construct):
    """On-demand tables with TTL on ``expires_at``, point-in-time recovery and AWS-managed encryption.

    Production tables survive a stack deletion (RETAIN) and have deletion protection; dev tables go.
    """

    def __init__(self, scope: Construct, construct_id: str, *, config: DeployConfig) -> None:
        super().__init__(scope, construct_id)
        self.tables: dict[TableName, dynamodb.Table] = {}
        for name, spec in _TABLES.items():
            table = dynamodb.Table(
                self,
                name.capitalize(),
                table_name=resource_name(config.env, name),
                partition_key=dynamodb.Attribute(name=spec.partition_key, type=_S),
                sort_key=dynamodb.Attribute(name=spec.sort_key, type=_S) if spec.sort_key else None,
                billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
                time_to_live_attribute=TTL_ATTRIBUTE,
                point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                    point_in_time_recovery_enabled=True
                ),
                encryption=dynamodb.TableEncryption.AWS_MANAGED,
                deletion_protection=config.is_production,
                removal_policy=config.removal_policy,
            )
            for index in spec.indexes:
                table.add_global_secondary_index(
                    index_name=index.name,
                    partition_key=dynamodb.Attribute(name=index.partition_key, type=_S),
                    sort_key=(
                        dynamodb.Attribute(name=index.sort_key[0], type=index.sort_key[1]) if index.sort_key else None
                    ),
                    projection_type=dynamodb.ProjectionType.ALL,
                )
            self.tables[name] = table

    def grant(
        self, grantee: iam.IGrantable, table: TableName, actions: Sequence[str], *, indexes: Sequence[str] = ()
    ) -> None:
        """Allows exactly ``actions`` (``dynamodb:...``) on one table and, for queries, named indexes."""
        target = self.tables[table]
        known = {index.name for index in _TABLES[table].indexes}
        unknown = set(indexes) - known
        if unknown:
            raise ValueError(f"table {table!r} has no index {sorted(unknown)}; it has {sorted(known)}")
        resources = [target.table_arn, *(f"{target.table_arn}/index/{index}" for index in indexes)]
        grantee.grant_principal.add_to_principal_policy(iam.PolicyStatement(actions=list(actions), resources=resources))

    @property
    def names(self) -> dict[TableName, str]:
        return {name: table.table_name for name, table in self.tables.items()}
