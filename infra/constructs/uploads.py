"""The uploads bucket: files of any size reach it by presigned POSTs the admin API hands out (so they
never pass through API Gateway and Lambda, which cap a request at ~6 MB and 30 s), and its
ObjectCreated events under ``uploads/`` invoke the ingest function (shared/ingest/uploads.py).

Private (no public access, bucket-owner objects, TLS only, S3-managed encryption). Raw uploads are
deleted by the ingest function once indexed or failed; a lifecycle rule removes any left behind (a
URL handed out and used after its upload was given up on) after ``RAW_UPLOAD_DAYS``. CORS admits POSTs
from the console's origin only, for a browser upload page (the CLI needs no CORS).
"""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_s3_notifications as s3n
from constructs import Construct

from infra.config import DeployConfig
from infra.nag import acknowledge
from shared.ingest.uploads import UPLOADS_PREFIX, UploadPolicy

RAW_UPLOAD_DAYS = 2


class UploadsBucket(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, config: DeployConfig) -> None:
        super().__init__(scope, construct_id)
        self.bucket = s3.Bucket(
            self,
            "Bucket",
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            encryption=s3.BucketEncryption.S3_MANAGED,
            enforce_ssl=True,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            versioned=False,  # raw uploads are transient: a deleted one is gone
            lifecycle_rules=[
                s3.LifecycleRule(
                    id="expire-raw-uploads", prefix=UPLOADS_PREFIX, expiration=cdk.Duration.days(RAW_UPLOAD_DAYS)
                ),
                s3.LifecycleRule(
                    id="abort-incomplete-uploads", abort_incomplete_multipart_upload_after=cdk.Duration.days(1)
                ),
            ],
            removal_policy=config.removal_policy,
            auto_delete_objects=False,
        )
        acknowledge(
            self.bucket,
            "AwsSolutions-S1",
            "Raw uploads live minutes (the ingest function deletes each once indexed or failed); who wrote "
            "what is in the uploads ledger (tenant, upload id, key) and CloudTrail. Server access logs "
            "would need a second bucket and cost per request.",
        )

    @property
    def name(self) -> str:
        return self.bucket.bucket_name

    def allow_browser_uploads_from(self, origin: str) -> None:
        """CORS: presigned POSTs from this origin (the console's), nothing else."""
        self.bucket.add_cors_rule(
            allowed_methods=[s3.HttpMethods.POST],
            allowed_origins=[origin],
            allowed_headers=["*"],
            max_age=3000,
        )

    def notify(self, ingest: lambda_.Function) -> None:
        """ObjectCreated (PUT, POST, multipart) under ``uploads/`` → the ingest function, asynchronously.
        An invocation that fails (the use case raises IngestRetry after an unexpected error, its upload
        pending again) is retried as often as the uploads ledger allows attempts, within an hour."""
        ingest.configure_async_invoke(retry_attempts=UploadPolicy.max_attempts - 1, max_event_age=cdk.Duration.hours(1))
        self.bucket.add_event_notification(
            s3.EventType.OBJECT_CREATED, s3n.LambdaDestination(ingest), s3.NotificationKeyFilter(prefix=UPLOADS_PREFIX)
        )
        # CDK configures the notification through its own singleton function (S3 checks the target's
        # permission when the configuration is put, which a plain template cannot order without a cycle).
        handler = cdk.Stack.of(self).node.try_find_child("BucketNotificationsHandler050a0587b7544547bf325f094a3db834")
        if handler is not None:
            acknowledge(
                handler,
                "AwsSolutions-IAM4",
                "CDK's BucketNotificationsHandler (runs once per deploy to put the bucket's notification "
                "configuration) uses AWSLambdaBasicExecutionRole for its own logs only.",
                findings=("Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole",),
            )
            acknowledge(
                handler,
                "AwsSolutions-IAM5",
                "CDK's BucketNotificationsHandler needs s3:PutBucketNotification on the buckets it configures; "
                "CDK writes it with a wildcard resource.",
                findings=("Resource::*",),
            )

    def grant_presign(self, role: iam.IRole) -> None:
        """The admin function signs presigned POSTs: S3 checks the signer may PutObject the key."""
        self._grant(role, ["s3:PutObject"])

    def grant_ingest(self, role: iam.IRole) -> None:
        """The ingest function reads each upload once and removes it."""
        self._grant(role, ["s3:GetObject", "s3:DeleteObject"])

    def _grant(self, role: iam.IRole, actions: list[str]) -> None:
        objects = self.bucket.arn_for_objects(f"{UPLOADS_PREFIX}*")
        role.add_to_principal_policy(iam.PolicyStatement(actions=actions, resources=[objects]))
        bucket_id = cdk.Stack.of(self).get_logical_id(self.bucket.node.default_child)  # type: ignore[arg-type]
        acknowledge(
            role,
            "AwsSolutions-IAM5",
            "Uploaded files: one object per upload, named at run time (uploads/<tenant>/<upload id>/<file>) "
            "under the stack's own uploads bucket.",
            findings=(f"Resource::<{bucket_id}.Arn>/{UPLOADS_PREFIX}*",),
        )
