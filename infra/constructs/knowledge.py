"""The knowledge index. By default (``retrieval=s3``) the embedded hybrid index on S3: a bucket of
per-tenant, per-version index objects and a DynamoDB table of version pointers, both pay-per-request,
so an idle deployment pays only for the bytes stored (shared/knowledge/s3_index.py). With
``-c retrieval=opensearch``: an OpenSearch Serverless vector collection, or an existing domain.

Serverless needs three policies besides the collection: encryption (must exist before the collection),
network (who can reach the endpoint) and data access (which IAM principals may do what to which index).
IAM alone is not enough for Serverless: a principal needs ``aoss:APIAccessAll`` in its IAM policy AND a
data-access rule naming it.
"""

from __future__ import annotations

import json
from typing import Literal

import aws_cdk as cdk
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_opensearchserverless as aoss
from aws_cdk import aws_s3 as s3
from constructs import Construct

from infra.config import DeployConfig
from infra.constants import resource_name
from infra.nag import acknowledge
from shared.knowledge.factory import CHUNK_INDEX_PREFIX

_READ_INDEX = ["aoss:DescribeIndex", "aoss:ReadDocument"]
_WRITE_INDEX = [*_READ_INDEX, "aoss:CreateIndex", "aoss:UpdateIndex", "aoss:WriteDocument"]
_READ_COLLECTION = ["aoss:DescribeCollectionItems"]
_WRITE_COLLECTION = [*_READ_COLLECTION, "aoss:CreateCollectionItems", "aoss:UpdateCollectionItems"]

# Existing domains: HTTP verbs on the domain's paths.
_ES_READ = ["es:ESHttpGet", "es:ESHttpHead", "es:ESHttpPost"]
_ES_WRITE = [*_ES_READ, "es:ESHttpPut", "es:ESHttpDelete"]


class KnowledgeStore(Construct):
    """Where passages are indexed and searched. ``grant_read``/``grant_write`` are the only ways in;
    ``settings`` are the functions' KEFU_* fields that point them at it."""

    endpoint: str
    service: Literal["aoss", "es", "s3"]
    # Every embedder's index (kefu-chunks-<embedder>-<dimension>): a rebuild for a new embedder
    # creates and fills its index with the same grants, while the old one keeps serving.
    index_prefix = CHUNK_INDEX_PREFIX

    def __init__(self, scope: Construct, construct_id: str, *, config: DeployConfig) -> None:
        super().__init__(scope, construct_id)
        self._config = config
        self._readers: list[iam.IRole] = []
        self._writers: list[iam.IRole] = []
        self.collection: aoss.CfnCollection | None = None
        self.bucket: s3.Bucket | None = None
        self.pointers: dynamodb.Table | None = None
        if config.retrieval == "s3":
            self.service = "s3"
            self._create_bucket(config)
        elif config.opensearch_endpoint and config.opensearch_domain_arn:
            self.endpoint = config.opensearch_endpoint
            self.service = "es"
            self._domain_arn = config.opensearch_domain_arn
        else:
            self.service = "aoss"
            self._create_collection(config)

    @property
    def settings(self) -> dict[str, str]:
        """shared.settings.Settings fields of the functions that search or index."""
        if self.service == "s3":
            assert self.bucket is not None and self.pointers is not None
            return {
                "knowledge_backend": "s3",
                "knowledge_bucket": self.bucket.bucket_name,
                "knowledge_table": self.pointers.table_name,
            }
        return {
            "knowledge_backend": "opensearch",
            "opensearch_endpoint": self.endpoint,
            "opensearch_service": self.service,
        }

    # --- S3 -------------------------------------------------------------------------------------

    def _create_bucket(self, config: DeployConfig) -> None:
        self.bucket = s3.Bucket(
            self,
            "Indexes",
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            encryption=s3.BucketEncryption.S3_MANAGED,
            enforce_ssl=True,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            # One object per knowledge version: the writer that replaces a version deletes the ones
            # before it (s3_index.py); no versioning, so a deleted version is gone.
            versioned=False,
            lifecycle_rules=[
                s3.LifecycleRule(
                    id="abort-incomplete-uploads", abort_incomplete_multipart_upload_after=cdk.Duration.days(1)
                ),
            ],
            removal_policy=config.removal_policy,
            auto_delete_objects=False,
        )
        # Version pointers: one item per tenant and embedder, moved by conditional writes.
        self.pointers = dynamodb.Table(
            self,
            "Pointers",
            table_name=resource_name(config.env, "knowledge"),
            partition_key=dynamodb.Attribute(name="index_key", type=dynamodb.AttributeType.STRING),
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True
            ),
            encryption=dynamodb.TableEncryption.AWS_MANAGED,
            deletion_protection=config.is_production,
            removal_policy=config.removal_policy,
        )
        self.endpoint = f"s3://{self.bucket.bucket_name}"
        acknowledge(
            self.bucket,
            "AwsSolutions-S1",
            "Only the stack's own functions read and write this bucket (least-privilege roles, CloudTrail "
            "records their API calls); server access logs would need a second bucket and cost per request.",
        )

    @property
    def _bucket_logical_id(self) -> str:
        assert self.bucket is not None
        return cdk.Stack.of(self).get_logical_id(self.bucket.node.default_child)  # type: ignore[arg-type]

    # --- Serverless -----------------------------------------------------------------------------

    def _create_collection(self, config: DeployConfig) -> None:
        name = resource_name(config.env, "knowledge")
        self.collection_name = name
        collection_resource = [f"collection/{name}"]
        encryption = aoss.CfnSecurityPolicy(
            self,
            "EncryptionPolicy",
            name=f"{name}-enc",
            type="encryption",
            description="kefu knowledge: encrypted with an AWS-owned key",
            policy=json.dumps(
                {"Rules": [{"ResourceType": "collection", "Resource": collection_resource}], "AWSOwnedKey": True}
            ),
        )
        network = aoss.CfnSecurityPolicy(
            self,
            "NetworkPolicy",
            name=f"{name}-net",
            type="network",
            description="kefu knowledge: public endpoint (the functions run outside a VPC); IAM signs every call",
            policy=json.dumps(
                [
                    {
                        "Rules": [{"ResourceType": "collection", "Resource": collection_resource}],
                        "AllowFromPublic": True,
                    }
                ]
            ),
        )
        self.collection = aoss.CfnCollection(
            self,
            "Collection",
            name=name,
            type="VECTORSEARCH",
            description="kefu tenants' knowledge passages (vector + keyword)",
            # Redundant standby replicas double the OCU floor; dev does without them.
            standby_replicas="ENABLED" if config.is_production else "DISABLED",
        )
        self.collection.add_resource_dependency(encryption)
        self.collection.add_resource_dependency(network)
        self.collection.apply_removal_policy(config.removal_policy)
        self.endpoint = self.collection.attr_collection_endpoint
        # Created by the first grant (a data-access policy needs at least one rule) and re-rendered
        # by every grant after it.
        self._access_policy: aoss.CfnAccessPolicy | None = None

    def _render_access_policy(self) -> str:
        assert self.collection is not None
        name = self.collection_name
        rules = []
        for roles, collection_permissions, index_permissions, what in (
            (self._readers, _READ_COLLECTION, _READ_INDEX, "search"),
            (self._writers, _WRITE_COLLECTION, _WRITE_INDEX, "index"),
        ):
            if not roles:
                continue
            rules.append(
                {
                    "Description": f"functions that {what} the knowledge index",
                    "Rules": [
                        {
                            "ResourceType": "collection",
                            "Resource": [f"collection/{name}"],
                            "Permission": collection_permissions,
                        },
                        {
                            "ResourceType": "index",
                            "Resource": [f"index/{name}/{self.index_prefix}-*"],
                            "Permission": index_permissions,
                        },
                    ],
                    "Principal": [role.role_arn for role in roles],
                }
            )
        return cdk.Stack.of(self).to_json_string(rules)

    # --- grants ---------------------------------------------------------------------------------

    def grant_read(self, role: iam.IRole) -> None:
        self._grant(role, write=False)

    def grant_write(self, role: iam.IRole) -> None:
        self._grant(role, write=True)

    def _grant(self, role: iam.IRole, *, write: bool) -> None:
        if self.service == "s3":
            assert self.bucket is not None and self.pointers is not None
            objects = self.bucket.arn_for_objects("*")
            # Readers: GetObject and the pointer's GetItem. Writers also put new versions, list and
            # delete old ones, and move the pointer (a conditional PutItem).
            actions = ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"] if write else ["s3:GetObject"]
            role.add_to_principal_policy(iam.PolicyStatement(actions=actions, resources=[objects]))
            if write:
                role.add_to_principal_policy(
                    iam.PolicyStatement(actions=["s3:ListBucket"], resources=[self.bucket.bucket_arn])
                )
            table_actions = ["dynamodb:GetItem", "dynamodb:PutItem"] if write else ["dynamodb:GetItem"]
            role.add_to_principal_policy(
                iam.PolicyStatement(actions=table_actions, resources=[self.pointers.table_arn])
            )
            acknowledge(
                role,
                "AwsSolutions-IAM5",
                "Knowledge index objects: one per tenant and version, named at run time under the stack's own bucket.",
                findings=(f"Resource::<{self._bucket_logical_id}.Arn>/*",),
            )
            return
        if self.service == "aoss":
            assert self.collection is not None
            (self._writers if write else self._readers).append(role)
            if self._access_policy is None:
                self._access_policy = aoss.CfnAccessPolicy(
                    self,
                    "DataAccessPolicy",
                    name=f"{self.collection_name}-data",
                    type="data",
                    description="kefu knowledge: retrieve reads, admin indexes",
                    policy=self._render_access_policy(),
                )
            else:
                self._access_policy.policy = self._render_access_policy()
            role.add_to_principal_policy(
                iam.PolicyStatement(actions=["aoss:APIAccessAll"], resources=[self.collection.attr_arn])
            )
            return
        # An existing domain: its own access policy (or fine-grained access control) must admit the role too.
        # Searches go through POST /_msearch (each search names the index in its body).
        resource = f"{self._domain_arn}/*" if write else f"{self._domain_arn}/{self.index_prefix}-*"
        resources = [resource] if write else [resource, f"{self._domain_arn}/_msearch"]
        role.add_to_principal_policy(iam.PolicyStatement(actions=_ES_WRITE if write else _ES_READ, resources=resources))
        acknowledge(
            role,
            "AwsSolutions-IAM5",
            "OpenSearch domain paths: indexing calls domain-level APIs (_bulk, _msearch, _delete_by_query) "
            "besides the kefu index's own paths, so the role needs the domain's paths."
            if write
            else "OpenSearch domain paths: reads address kefu's indexes (kefu-chunks-<embedder>-<dimension>, "
            "one per embedder), never other indexes of the domain; multi-search is granted by its exact path.",
            findings=(f"Resource::{resource}",),
        )
