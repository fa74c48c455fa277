"""The widget and the agent console as static files: private bucket, CloudFront with OAC, uploaded by the stack."""

from __future__ import annotations

import json

from infra.constructs.static_site import PUBLISHED_DIRECTORIES
from tests.infra.synthesis import Synth


def test_bucket_is_private_encrypted_and_https_only(dev: Synth) -> None:
    [(bucket_id, bucket)] = dev.of_type("AWS::S3::Bucket").items()
    props = bucket["Properties"]
    assert props["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True,
        "BlockPublicPolicy": True,
        "IgnorePublicAcls": True,
        "RestrictPublicBuckets": True,
    }
    assert props["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]["ServerSideEncryptionByDefault"] == {
        "SSEAlgorithm": "AES256"
    }
    [policy] = [
        p for p in dev.of_type("AWS::S3::BucketPolicy").values() if p["Properties"]["Bucket"] == {"Ref": bucket_id}
    ]
    statements = policy["Properties"]["PolicyDocument"]["Statement"]
    [deny] = [s for s in statements if s["Effect"] == "Deny"]
    assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    # Only CloudFront reads objects, for this distribution.
    [read] = [s for s in statements if s["Effect"] == "Allow"]
    assert read["Principal"] == {"Service": "cloudfront.amazonaws.com"} and read["Action"] == "s3:GetObject"
    assert "AWS:SourceArn" in json.dumps(read["Condition"])


def test_distribution_uses_origin_access_control_and_https(dev: Synth) -> None:
    [distribution] = dev.of_type("AWS::CloudFront::Distribution").values()
    config = distribution["Properties"]["DistributionConfig"]
    assert config["DefaultCacheBehavior"]["ViewerProtocolPolicy"] == "redirect-to-https"
    [origin] = config["Origins"]
    assert "OriginAccessControlId" in origin and origin["S3OriginConfig"] == {"OriginAccessIdentity": ""}
    assert len(dev.of_type("AWS::CloudFront::OriginAccessControl")) == 1


def test_widget_and_console_are_uploaded_with_the_websocket_url(dev: Synth) -> None:
    [deployment] = dev.of_type("Custom::CDKBucketDeployment").values()
    props = deployment["Properties"]
    assert props["DistributionPaths"] == ["/*"]  # a new widget reaches visitors at once
    markers = json.dumps(props.get("SourceMarkers", []))
    assert "WebSocket" in markers  # config.json carries the API's URL, resolved at deploy time
    staged = dev.outdir / f"asset.{props['SourceObjectKeys'][0].removesuffix('.zip')}"
    published = {path.relative_to(staged).as_posix() for path in staged.rglob("*") if path.is_file()}
    assert {"widget/kefu-widget.js", "console/index.html", "console/console.js", "console/console.css"} <= published
    assert {path.split("/")[0] for path in published} == set(PUBLISHED_DIRECTORIES)  # no demo or test pages


def test_outputs_tell_sites_and_agents_where_to_go(dev: Synth) -> None:
    assert "/widget/kefu-widget.js" in json.dumps(dev.outputs["WidgetScriptUrl"]["Value"])
    assert "/console/" in json.dumps(dev.outputs["AgentConsoleUrl"]["Value"])
