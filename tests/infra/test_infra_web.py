"""The widget and the agent console as static files: private bucket, CloudFront with OAC, uploaded by the stack."""

from __future__ import annotations

import json
import shutil
import subprocess
from typing import Any

from infra.constructs.static_site import PUBLISHED_DIRECTORIES
from tests.infra.synthesis import Synth


def test_bucket_is_private_encrypted_and_https_only(dev: Synth) -> None:
    [(bucket_id, bucket)] = [(lid, b) for lid, b in dev.of_type("AWS::S3::Bucket").items() if lid.startswith("Web")]
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
    assert json.dumps(dev.outputs["AgentConsoleUrl"]["Value"]).endswith('/console/"]]}')


def test_directory_urls_are_rewritten_to_their_index_page(dev: Synth) -> None:
    # Given the distribution: S3 behind origin access control has no index documents
    [(function_id, function)] = dev.of_type("AWS::CloudFront::Function").items()
    [distribution] = dev.of_type("AWS::CloudFront::Distribution").values()
    behavior = distribution["Properties"]["DistributionConfig"]["DefaultCacheBehavior"]
    # Then every viewer request passes through the rewrite function
    assert behavior["FunctionAssociations"] == [
        {"EventType": "viewer-request", "FunctionARN": {"Fn::GetAtt": [function_id, "FunctionARN"]}}
    ]
    config = function["Properties"]["FunctionConfig"]
    assert config["Runtime"] == "cloudfront-js-2.0" and function["Properties"]["AutoPublish"] is True
    # and the deployed code, run by Node on CloudFront's event shape, serves the console's page
    code = function["Properties"]["FunctionCode"]
    assert _viewer_request(code, "/console/") == {"uri": "/console/index.html"}
    assert _viewer_request(code, "/") == {"uri": "/index.html"}
    assert _viewer_request(code, "/widget/kefu-widget.js") == {"uri": "/widget/kefu-widget.js"}
    assert _viewer_request(code, "/console/console.css") == {"uri": "/console/console.css"}
    # and sends /console to /console/ (its page loads console.js by a relative URL), keeping the query
    assert _viewer_request(code, "/console", {"ws_url": {"value": "wss://x/chat"}}) == {
        "statusCode": 301,
        "location": "/console/?ws_url=wss%3A%2F%2Fx%2Fchat",
    }


def _viewer_request(code: str, uri: str, query: dict[str, Any] | None = None) -> dict[str, Any]:
    node = shutil.which("node")
    assert node, "Node is needed by the CDK CLI and this test"
    event = {"version": "1.0", "request": {"method": "GET", "uri": uri, "querystring": query or {}, "headers": {}}}
    script = code + (
        "\nconst out = handler(JSON.parse(process.argv[1]));"
        "\nconst redirect = out.statusCode && {statusCode: out.statusCode, location: out.headers.location.value};"
        "\nconsole.log(JSON.stringify(redirect || {uri: out.uri}));"
    )
    result = subprocess.run([node, "-e", script, json.dumps(event)], capture_output=True, text=True, check=True)
    outcome: dict[str, Any] = json.loads(result.stdout)
    return outcome
