"""The chat widget script and the agent console as static files: a private S3 bucket behind CloudFront.

``web/widget/`` and ``web/console/`` are uploaded as they are (no build step), plus
``console/config.json`` with the WebSocket URL and the admin API's, so the console knows where to connect. A site embeds

    <script src="https://{distribution}/widget/kefu-widget.js" data-ws="{WebSocketUrl}"
            data-tenant="t_…" data-key="wk_…" defer></script>

S3 behind origin access control has no "index document": ``/console/`` would ask for an object named
``console/`` and, with only GetObject granted (no ListBucket), S3 answers 403. A CloudFront Function
on viewer requests serves ``/console/`` its ``index.html`` (and redirects ``/console`` there), so
the ``AgentConsoleUrl`` output works as printed.
"""

from __future__ import annotations

from pathlib import Path

import aws_cdk as cdk
from aws_cdk import aws_cloudfront as cloudfront
from aws_cdk import aws_cloudfront_origins as origins
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_s3_deployment as s3deploy
from constructs import Construct

from infra.config import DeployConfig
from infra.nag import acknowledge

# What a deployment serves from web/ (the chat page is served by the local emulator only, so far).
PUBLISHED_DIRECTORIES = ("widget", "console")

# cloudfront-js-2.0, on every viewer request: a URI ending in "/" is served its "index.html"; a
# directory without the slash ("/console": no dot in the last segment) is redirected to "/console/",
# because the console's page loads console.css, console.js and config.json by relative URLs, which
# would resolve against "/" from "/console". Files (kefu-widget.js, console.css) pass unchanged.
INDEX_REWRITE_JS = """\
function handler(event) {
  var request = event.request;
  var uri = request.uri;
  if (uri.endsWith("/")) {
    request.uri = uri + "index.html";
    return request;
  }
  if (uri.split("/").pop().indexOf(".") === -1) {
    var query = Object.keys(request.querystring).map(function (name) {
      var value = request.querystring[name].value;
      return encodeURIComponent(name) + (value === "" ? "" : "=" + encodeURIComponent(value));
    }).join("&");
    return {
      statusCode: 301,
      statusDescription: "Moved Permanently",
      headers: { location: { value: uri + "/" + (query ? "?" + query : "") } },
    };
  }
  return request;
}
"""


class StaticSite(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: DeployConfig,
        static_dir: Path,
        websocket_url: str,
        admin_url: str = "",
    ) -> None:
        super().__init__(scope, construct_id)
        self.bucket = s3.Bucket(
            self,
            "Files",
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            encryption=s3.BucketEncryption.S3_MANAGED,
            enforce_ssl=True,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            removal_policy=config.removal_policy,
        )
        self.index_rewrite = cloudfront.Function(
            self,
            "IndexRewrite",
            comment="Directory URIs (/console/) to their index.html",
            code=cloudfront.FunctionCode.from_inline(INDEX_REWRITE_JS),
            runtime=cloudfront.FunctionRuntime.JS_2_0,
        )
        self.distribution = cloudfront.Distribution(
            self,
            "Cdn",
            comment=f"kefu {config.env}: chat widget and agent console",
            default_behavior=cloudfront.BehaviorOptions(
                origin=origins.S3BucketOrigin.with_origin_access_control(self.bucket),
                viewer_protocol_policy=cloudfront.ViewerProtocolPolicy.REDIRECT_TO_HTTPS,
                cache_policy=cloudfront.CachePolicy.CACHING_OPTIMIZED,
                response_headers_policy=cloudfront.ResponseHeadersPolicy.SECURITY_HEADERS,
                function_associations=[
                    cloudfront.FunctionAssociation(
                        function=self.index_rewrite, event_type=cloudfront.FunctionEventType.VIEWER_REQUEST
                    )
                ],
            ),
            http_version=cloudfront.HttpVersion.HTTP2_AND_3,
            price_class=cloudfront.PriceClass.PRICE_CLASS_ALL,
        )
        self.deployment = s3deploy.BucketDeployment(
            self,
            "Upload",
            destination_bucket=self.bucket,
            sources=[
                s3deploy.Source.asset(
                    str(static_dir),
                    exclude=[
                        "*",
                        *(f"!{name}" for name in PUBLISHED_DIRECTORIES),
                        *(f"!{n}/**" for n in PUBLISHED_DIRECTORIES),
                    ],
                ),
                # The console's knowledge page (console/knowledge.html) calls the admin API.
                s3deploy.Source.json_data("console/config.json", {"wsUrl": websocket_url, "adminUrl": admin_url}),
            ],
            # A new widget reaches visitors at once, not after the CDN's cache time.
            distribution=self.distribution,
            distribution_paths=["/*"],
            retain_on_delete=False,
            memory_limit=256,
        )
        self._acknowledge(config)

    @property
    def base_url(self) -> str:
        return f"https://{self.distribution.distribution_domain_name}"

    def _acknowledge(self, config: DeployConfig) -> None:
        acknowledge(
            self.bucket,
            "AwsSolutions-S1",
            "The bucket only holds the public widget script and console files uploaded by this stack; "
            "reads go through CloudFront (origin access control), so S3 server access logs would only "
            "record the deployment's own uploads.",
        )
        acknowledge(
            self.distribution,
            "AwsSolutions-CFR1",
            "The widget is embedded by tenants' public websites worldwide; blocking countries is a "
            "per-tenant business decision, not something the engine can choose for everyone.",
        )
        acknowledge(
            self.distribution,
            "AwsSolutions-CFR2",
            "The distribution serves small static files (widget script, console page) with no "
            "server-side logic or input; the WebSocket and admin APIs carry their own throttling.",
        )
        acknowledge(
            self.distribution,
            "AwsSolutions-CFR3",
            "Static public files only: the chat itself, where visitors' data flows, is logged by the "
            "WebSocket API's access logs; CloudFront logs would need another bucket for little gain.",
        )
        acknowledge(
            self.distribution,
            "AwsSolutions-CFR4",
            "The distribution uses the default cloudfront.net certificate (no custom domain), for which "
            "CloudFront fixes the minimum protocol; a custom domain with TLSv1.2_2021 is a deploy choice.",
        )
        # The upload runs in CDK's own BucketDeployment function, a singleton at the stack's root.
        stack = cdk.Stack.of(self)
        uploader = next(c for c in stack.node.children if c.node.id.startswith("Custom::CDKBucketDeployment"))
        # aws-cdk-lib retains that function's log group on every deletion, even of a failed create; it
        # follows the stack's policy like kefu's own log groups instead.
        uploader_logs = uploader.node.try_find_child("LogGroup")
        if isinstance(uploader_logs, cdk.Resource):
            uploader_logs.apply_removal_policy(config.removal_policy)
        acknowledge(
            uploader,
            "AwsSolutions-IAM4",
            "CDK's BucketDeployment function is built by aws-cdk-lib with the AWS managed basic "
            "execution role for its own CloudWatch logs; it runs only during deployments.",
            findings=("Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole",),
        )
        acknowledge(
            uploader,
            "AwsSolutions-L1",
            "The BucketDeployment function's runtime is chosen and updated by aws-cdk-lib itself; it "
            "runs only while deploying, never on visitors' requests.",
        )
        region = "<AWS::Region>" if cdk.Token.is_unresolved(stack.region) else stack.region
        account = "<AWS::AccountId>" if cdk.Token.is_unresolved(stack.account) else stack.account
        qualifier = cdk.DefaultStackSynthesizer.DEFAULT_QUALIFIER
        bucket_id = stack.get_logical_id(self.bucket.node.default_child)  # type: ignore[arg-type]
        acknowledge(
            uploader,
            "AwsSolutions-IAM5",
            "CDK's BucketDeployment copies every object of the staged asset into the site bucket and prunes "
            "files no longer in web/: object-level wildcards on those two buckets only.",
            findings=(
                "Action::s3:GetObject*",
                "Action::s3:GetBucket*",
                "Action::s3:List*",
                "Action::s3:DeleteObject*",
                "Action::s3:Abort*",
                f"Resource::<{bucket_id}.Arn>/*",
                f"Resource::arn:<AWS::Partition>:s3:::cdk-{qualifier}-assets-{account}-{region}/*",
            ),
        )
        acknowledge(
            uploader,
            "AwsSolutions-IAM5",
            "aws-cdk-lib grants BucketDeployment cloudfront:CreateInvalidation and GetInvalidation on all "
            "distributions; the function invalidates this site's cache after an upload, at deploy time only.",
            findings=("Resource::*",),
        )
