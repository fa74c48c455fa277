"""The synthesized dev stack: resources, their settings, and the functions' configuration."""

from __future__ import annotations

import json
from typing import Any

import pytest

from infra.constants import (
    FUNCTIONS,
    PYTHON_VERSION,
    SEND_MESSAGE_ROUTE,
    TABLES,
    VISIBILITY_TIMEOUT_FACTOR,
    FunctionName,
)
from infra.constructs.functions import SPECS
from shared.settings import Settings
from shared.state.tables import (
    AgentModel,
    ConnectionModel,
    ConversationModel,
    MessageModel,
    RateCounterModel,
    TenantModel,
)
from shared.tenant_config.model import ModelConfig
from tests.infra.profiles import PROFILES
from tests.infra.synthesis import Synth


def test_resource_counts(dev: Synth) -> None:
    # Given the dev stack / Then it has exactly the walking skeleton's resources
    counts = {
        # the six + CDK's BucketDeployment (uploads the widget and console) + the visitor-token key's writer
        # + CDK's BucketNotificationsHandler (puts the uploads bucket's notification at deploy time)
        "AWS::Lambda::Function": 10,
        "AWS::Lambda::LayerVersion": 2,  # the shared code + BucketDeployment's AWS CLI
        "AWS::DynamoDB::Table": 7,  # the five of the state layer + the rate-limit counters + knowledge pointers
        "AWS::SQS::Queue": 2,
        "AWS::Lambda::EventSourceMapping": 1,
        "AWS::ApiGatewayV2::Api": 2,
        "AWS::ApiGatewayV2::Route": 6,  # 4 WebSocket routes + the admin catch-all + the channels' callbacks
        "AWS::ApiGatewayV2::Stage": 2,
        # The default knowledge index is on S3: no OpenSearch (its OCUs cost ~$176+ a month idle).
        "AWS::OpenSearchServerless::Collection": 0,
        "AWS::OpenSearchServerless::SecurityPolicy": 0,
        "AWS::OpenSearchServerless::AccessPolicy": 0,
        "AWS::SecretsManager::Secret": 1,  # the admin key
        "Custom::SecureParameter": 1,  # the visitor-token key (SSM SecureString: no monthly fee)
        "AWS::S3::Bucket": 3,  # widget + console files; knowledge index versions; raw uploads
        "Custom::S3BucketNotifications": 1,  # uploads/ ObjectCreated -> ingest
        "AWS::Lambda::EventInvokeConfig": 1,  # ingest's retries of an S3 event
        "AWS::CloudFront::Distribution": 1,
        "AWS::CloudFront::Function": 1,  # /console/ -> /console/index.html
        "AWS::SNS::Topic": 1,  # every alarm notifies it
        # dev's essential two (dead letters, the WebSocket API's execution errors; prod: every one,
        # test_infra_monitoring.py)
        "AWS::CloudWatch::Alarm": 2,
        "AWS::EC2::NatGateway": 0,  # only the hybrid and channels_egress=nat options
        "AWS::EC2::VPC": 0,
    }
    for cfn_type, count in counts.items():
        dev.template.resource_count_is(cfn_type, count)


# --- DynamoDB ------------------------------------------------------------------------------------


def _keys(key_schema: list[dict[str, str]]) -> list[tuple[str, str]]:
    """(attribute, HASH|RANGE), hash key first: PynamoDB lists keys in attribute order."""
    return sorted(((k["AttributeName"], k["KeyType"]) for k in key_schema), key=lambda key: key[1])


@pytest.mark.parametrize(
    ("table", "model"),
    [
        ("tenants", TenantModel),
        ("connections", ConnectionModel),
        ("conversations", ConversationModel),
        ("messages", MessageModel),
        ("agents", AgentModel),
        ("limits", RateCounterModel),
    ],
)
def test_tables_match_the_pynamodb_models(dev: Synth, table: str, model: Any) -> None:
    # Given the table the stack creates for this model
    [resource] = [
        r for r in dev.of_type("AWS::DynamoDB::Table").values() if r["Properties"]["TableName"] == f"kefu-dev-{table}"
    ]
    props = resource["Properties"]
    # Then keys and indexes are the model's, and every table has TTL, PITR and SSE, on demand
    schema = model._get_schema()
    assert _keys(props["KeySchema"]) == _keys(schema["key_schema"])
    model_indexes = {
        index["index_name"]: _keys(index["key_schema"]) for index in schema.get("global_secondary_indexes", [])
    }
    stack_indexes = {index["IndexName"]: _keys(index["KeySchema"]) for index in props.get("GlobalSecondaryIndexes", [])}
    assert stack_indexes == model_indexes
    assert all(i["Projection"]["ProjectionType"] == "ALL" for i in props.get("GlobalSecondaryIndexes", []))
    assert props["BillingMode"] == "PAY_PER_REQUEST"
    assert props["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}
    assert props["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True
    assert props["SSESpecification"] == {"SSEEnabled": True}  # AWS-managed key
    assert resource["DeletionPolicy"] == "Delete"  # dev cleans up


def test_prod_keeps_its_data(prod: Synth) -> None:
    # Given the prod stack / Then tables, collection, secret and logs survive a stack deletion or a
    # replacement, but not a failed first create (RetainExceptOnCreate: its retry must not meet
    # "already exists")
    tables = prod.of_type("AWS::DynamoDB::Table")
    assert len(tables) == len(TABLES) + 1  # and the knowledge pointers
    for table in tables.values():
        assert table["Properties"]["DeletionProtectionEnabled"] is True
    for cfn_type in (
        "AWS::DynamoDB::Table",
        "AWS::S3::Bucket",
        "AWS::SecretsManager::Secret",
        "AWS::Logs::LogGroup",
    ):
        kept = list(prod.of_type(cfn_type).values())
        assert kept, cfn_type
        assert {(r["DeletionPolicy"], r["UpdateReplacePolicy"]) for r in kept} == {("RetainExceptOnCreate", "Retain")}
    assert {r["Properties"].get("FunctionName") for r in prod.of_type("AWS::Lambda::Function").values()} - {None} == {
        f"kefu-prod-{name}" for name in FUNCTIONS
    }


def test_nothing_retained_has_a_name_it_does_not_need(prod: Synth) -> None:
    # A retained resource with a fixed name blocks the next deploy after a stack deletion. Only the
    # tables (operators, restores and scripts address them) keep one (and, with retrieval=opensearch,
    # the collection: CloudFormation requires its name); buckets, log groups and the admin key secret
    # get generated names. The visitor-token key's parameter has a fixed name, but its writer adopts a
    # parameter left by an earlier stack instead of failing (infra/constructs/identity.py).
    named = {
        r["Type"]
        for r in prod.resources.values()
        if r.get("DeletionPolicy") in ("Retain", "RetainExceptOnCreate")
        and any(key in r["Properties"] for key in ("TableName", "Name", "LogGroupName", "RoleName"))
        # aws-cdk-lib's BucketDeployment log group is named after its function, whose name is generated
        and "CustomCDKBucketDeployment" not in json.dumps(r["Properties"].get("LogGroupName", ""))
    }
    assert named == {"AWS::DynamoDB::Table", "Custom::SecureParameter"}
    for secret in prod.of_type("AWS::SecretsManager::Secret").values():
        assert "Name" not in secret["Properties"]
    # Nothing is retained even when its own creation failed (plain Retain), except the account-level
    # API Gateway logging role (generated name; other APIs' logging depends on it, websocket_api.py).
    plain_retain = {r["Type"] for r in prod.resources.values() if r.get("DeletionPolicy") == "Retain"}
    assert plain_retain == {"AWS::IAM::Role"}


# --- SQS -----------------------------------------------------------------------------------------


def test_generate_queue_is_fifo_with_dead_letters(dev: Synth) -> None:
    queues = {r["Properties"]["QueueName"]: (lid, r["Properties"]) for lid, r in dev.of_type("AWS::SQS::Queue").items()}
    dlq_id, dlq = queues["kefu-dev-generate-dlq.fifo"]
    _, jobs = queues["kefu-dev-generate.fifo"]
    for props in (jobs, dlq):
        assert props["FifoQueue"] is True
        assert props["ContentBasedDeduplication"] is False  # the message function sets the dedup id
        assert props["SqsManagedSseEnabled"] is True
    assert jobs["RedrivePolicy"] == {"deadLetterTargetArn": {"Fn::GetAtt": [dlq_id, "Arn"]}, "maxReceiveCount": 3}
    # A job being answered must not reappear: visibility longer than the generate timeout.
    assert jobs["VisibilityTimeout"] > SPECS["generate"].timeout.to_seconds()
    assert dev.function("generate")["Properties"]["Timeout"] == SPECS["generate"].timeout.to_seconds()


def test_generate_settles_every_job_within_its_own_timeout(dev: Synth) -> None:
    """The model deadlines (the longest first-token budget a tenant may set, plus the whole-answer
    limit) leave room for retrieval and storing inside the generate timeout: a job is settled by the
    function (answer, cut answer or model_unavailable), never by the Lambda timeout and a redelivery."""
    settings = Settings()
    longest_budget = ModelConfig.model_fields["first_token_budget_seconds"].metadata
    tenant_budget = max(m.le for m in longest_budget if getattr(m, "le", None) is not None)
    model_seconds = max(tenant_budget, settings.llm_first_token_budget_seconds) + settings.llm_answer_timeout_seconds
    retrieval_and_storing = 20
    timeout = dev.function("generate")["Properties"]["Timeout"]
    assert model_seconds + retrieval_and_storing <= timeout
    queues = {r["Properties"]["QueueName"]: r["Properties"] for r in dev.of_type("AWS::SQS::Queue").values()}
    # A crash is redelivered only after the visibility timeout; it must outlast a running job.
    assert queues["kefu-dev-generate.fifo"]["VisibilityTimeout"] >= VISIBILITY_TIMEOUT_FACTOR * timeout


@pytest.mark.parametrize("profile", PROFILES)
def test_every_queue_outlasts_six_times_its_consumer(profile: str, request: pytest.FixtureRequest) -> None:
    """Every SQS event source of every profile: the queue's visibility timeout is at least 6x the
    consuming function's timeout (AWS's advice), so the poller's retries of a throttled invocation
    do not make a job visible again (and count toward the dead-letter queue) while it may still run."""
    synth: Synth = request.getfixturevalue(profile)
    mappings = synth.of_type("AWS::Lambda::EventSourceMapping").values()
    assert mappings
    for mapping in mappings:
        props = mapping["Properties"]
        queue_id = props["EventSourceArn"]["Fn::GetAtt"][0]
        queue = synth.resources[queue_id]
        assert queue["Type"] == "AWS::SQS::Queue"
        function_ref = props["FunctionName"]
        function_id = function_ref["Ref"] if "Ref" in function_ref else function_ref["Fn::GetAtt"][0]
        timeout = synth.resources[function_id]["Properties"].get("Timeout", 3)  # Lambda's default
        assert queue["Properties"]["VisibilityTimeout"] >= VISIBILITY_TIMEOUT_FACTOR * timeout, (queue_id, timeout)
    assert VISIBILITY_TIMEOUT_FACTOR >= 6


def test_queues_refuse_plain_http(dev: Synth) -> None:
    policies = dev.of_type("AWS::SQS::QueuePolicy").values()
    assert len(policies) == 2
    for policy in policies:
        [deny] = [s for s in policy["Properties"]["PolicyDocument"]["Statement"] if s["Effect"] == "Deny"]
        assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


def test_generate_consumes_one_job_at_a_time(dev: Synth) -> None:
    [mapping] = dev.of_type("AWS::Lambda::EventSourceMapping").values()
    props = mapping["Properties"]
    assert props["FunctionName"] == {"Ref": dev.function_id("generate")}
    assert props["BatchSize"] == 1
    assert props["FunctionResponseTypes"] == ["ReportBatchItemFailures"]


# --- API Gateway ---------------------------------------------------------------------------------


def _integration_target(dev: Synth, integration_ref: dict[str, Any]) -> str:
    integration = dev.resources[integration_ref["Fn::Join"][1][1]["Ref"]]
    uri = json.dumps(integration["Properties"]["IntegrationUri"])
    return next(name for name in FUNCTIONS if dev.function_id(name) in uri)


def test_websocket_routes(dev: Synth) -> None:
    [api_id] = [
        lid
        for lid, r in dev.of_type("AWS::ApiGatewayV2::Api").items()
        if r["Properties"]["ProtocolType"] == "WEBSOCKET"
    ]
    assert dev.resources[api_id]["Properties"]["RouteSelectionExpression"] == "$request.body.action"
    routes = {
        r["Properties"]["RouteKey"]: _integration_target(dev, r["Properties"]["Target"])
        for r in dev.of_type("AWS::ApiGatewayV2::Route").values()
        if r["Properties"]["ApiId"] == {"Ref": api_id}
    }
    assert routes == {
        "$connect": "connect",
        "$disconnect": "connect",
        SEND_MESSAGE_ROUTE: "message",
        "$default": "message",
    }


def test_stages_are_throttled_and_logged(dev: Synth) -> None:
    for stage in dev.of_type("AWS::ApiGatewayV2::Stage").values():
        props = stage["Properties"]
        assert props["AutoDeploy"] is True
        assert props["DefaultRouteSettings"]["ThrottlingRateLimit"] > 0
        assert "DestinationArn" in props["AccessLogSettings"]
        access_format = json.loads(props["AccessLogSettings"]["Format"])
        # The $connect query string carries the widget key: never logged.
        assert not any("querystring" in value.lower() for value in access_format.values())


def _admin_route(synth: Synth) -> dict[str, Any]:
    [api_id] = [
        lid for lid, r in synth.of_type("AWS::ApiGatewayV2::Api").items() if r["Properties"]["ProtocolType"] == "HTTP"
    ]
    [route] = [
        r
        for r in synth.of_type("AWS::ApiGatewayV2::Route").values()
        if r["Properties"]["ApiId"] == {"Ref": api_id} and r["Properties"]["RouteKey"] == "$default"
    ]
    return dict(route["Properties"])


def test_admin_http_api_proxies_everything_to_admin(dev: Synth) -> None:
    route = _admin_route(dev)
    assert route["RouteKey"] == "$default"
    assert _integration_target(dev, route["Target"]) == "admin"
    assert route.get("AuthorizationType", "NONE") == "NONE"  # the bearer key, checked by the function


def test_admin_iam_auth_puts_the_admin_api_behind_sigv4(prod: Synth) -> None:
    # Given admin_iam_auth=true (the prod profile) / Then API Gateway demands IAM-signed requests.
    assert _admin_route(prod)["AuthorizationType"] == "AWS_IAM"


def test_outputs(dev: Synth) -> None:
    assert {"WebSocketUrl", "AdminUrl", "AdminKeySecretArn", "VisitorTokenKeyParameter", "KnowledgeEndpoint"} <= set(
        dev.outputs
    )
    assert "wss://" in json.dumps(dev.outputs["WebSocketUrl"]["Value"])


# --- OpenSearch Serverless -----------------------------------------------------------------------


def test_vector_collection_and_its_policies(opensearch: Synth) -> None:
    dev = opensearch  # -c retrieval=opensearch on the dev environment
    [collection] = dev.of_type("AWS::OpenSearchServerless::Collection").values()
    assert collection["Properties"]["Type"] == "VECTORSEARCH"
    assert collection["Properties"]["StandbyReplicas"] == "DISABLED"  # dev: half the OCU floor
    name = collection["Properties"]["Name"]
    policies = {p["Properties"]["Type"]: p for p in dev.of_type("AWS::OpenSearchServerless::SecurityPolicy").values()}
    encryption = json.loads(policies["encryption"]["Properties"]["Policy"])
    assert encryption == {
        "Rules": [{"ResourceType": "collection", "Resource": [f"collection/{name}"]}],
        "AWSOwnedKey": True,
    }
    network = json.loads(policies["network"]["Properties"]["Policy"])
    assert network[0]["Rules"] == [{"ResourceType": "collection", "Resource": [f"collection/{name}"]}]
    # The encryption policy must exist before the collection, or its creation fails.
    assert set(collection["DependsOn"]) >= {
        lid for lid, r in dev.of_type("AWS::OpenSearchServerless::SecurityPolicy").items()
    }


def test_data_access_policy_names_only_retrieve_admin_and_ingest(opensearch: Synth) -> None:
    dev = opensearch
    [policy] = dev.of_type("AWS::OpenSearchServerless::AccessPolicy").values()
    rendered = json.dumps(policy["Properties"]["Policy"])
    principals = {name for name in FUNCTIONS if dev.role_id(name) in rendered}
    assert principals == {"retrieve", "admin", "ingest"}
    # retrieve can read but not write documents
    parts = policy["Properties"]["Policy"]["Fn::Join"][1]
    text = "".join(p if isinstance(p, str) else json.dumps(p) for p in parts)
    reader_rule, writer_rule = text.split('"Description"')[1:3]
    assert dev.role_id("retrieve") in reader_rule and "aoss:WriteDocument" not in reader_rule
    assert dev.role_id("admin") in writer_rule and "aoss:WriteDocument" in writer_rule
    assert dev.role_id("ingest") in writer_rule and dev.role_id("ingest") not in reader_rule


# --- Functions -----------------------------------------------------------------------------------


def test_functions_run_arm64_python_with_the_shared_layer(dev: Synth) -> None:
    [layer_id] = [lid for lid, r in dev.of_type("AWS::Lambda::LayerVersion").items() if "Shared" in lid]
    for name in FUNCTIONS:
        props = dev.function(name)["Properties"]
        assert props["Architectures"] == ["arm64"]
        assert props["Runtime"] == f"python{PYTHON_VERSION}"
        assert props["Handler"] == "handler.handler"
        assert props["Layers"] == [{"Ref": layer_id}]
        assert props["TracingConfig"] == {"Mode": "Active"}
        assert props["MemorySize"] == SPECS[name].memory_mb


def test_every_kefu_env_var_is_a_settings_field(dev: Synth, existing_domain: Synth) -> None:
    fields = set(Settings.model_fields)
    seen: set[str] = set()
    for synth in (dev, existing_domain):
        for function in synth.of_type("AWS::Lambda::Function").values():
            for variable in function["Properties"].get("Environment", {}).get("Variables", {}):
                if variable.startswith("KEFU_"):
                    seen.add(variable)
                    assert variable.removeprefix("KEFU_").lower() in fields, variable
    # and the variables the brief lists are all set somewhere
    assert {
        "KEFU_TENANTS_TABLE",
        "KEFU_GENERATE_QUEUE_URL",
        "KEFU_RETRIEVE_FUNCTION",
        "KEFU_OPENSEARCH_ENDPOINT",
        "KEFU_ADMIN_KEY_SECRET_ARN",
        "KEFU_REDIS_URL",
        "KEFU_LLM_API_KEY_SECRET",
    } <= seen


def test_function_environments(dev: Synth) -> None:
    def env(name: FunctionName) -> dict[str, Any]:
        variables: dict[str, Any] = dev.function(name)["Properties"]["Environment"]["Variables"]
        return variables

    assert env("generate")["KEFU_RETRIEVE_FUNCTION"] == {"Ref": dev.function_id("retrieve")}
    assert "KEFU_GENERATE_QUEUE_URL" in env("message")
    for name in ("retrieve", "admin"):  # the default: the index on S3 (test_infra_knowledge.py)
        assert env(name)["KEFU_KNOWLEDGE_BACKEND"] == "s3"
        assert "Ref" in env(name)["KEFU_KNOWLEDGE_BUCKET"] and "KEFU_OPENSEARCH_ENDPOINT" not in env(name)
    assert "KEFU_ADMIN_KEY_SECRET_ARN" in env("admin")
    for name in FUNCTIONS:  # chat text never lands in X-Ray metadata
        assert env(name)["POWERTOOLS_TRACER_CAPTURE_RESPONSE"] == "false"
    # No Redis unless asked for: the state layer works on DynamoDB alone.
    assert not any("KEFU_REDIS_URL" in env(name) for name in FUNCTIONS)
    # Nothing secret in plain text: the admin key is read from Secrets Manager at run time.
    assert not any("KEFU_ADMIN_KEY" in env(name) for name in FUNCTIONS)


def test_optional_redis_llm_and_existing_domain(existing_domain: Synth) -> None:
    synth = existing_domain
    synth.template.resource_count_is("AWS::OpenSearchServerless::Collection", 0)
    synth.template.resource_count_is("AWS::OpenSearchServerless::AccessPolicy", 0)

    def env(name: FunctionName) -> dict[str, Any]:
        variables: dict[str, Any] = synth.function(name)["Properties"]["Environment"]["Variables"]
        return variables

    assert env("retrieve")["KEFU_OPENSEARCH_ENDPOINT"] == "https://search-kefu-abc123.eu-west-1.es.amazonaws.com"
    assert env("retrieve")["KEFU_OPENSEARCH_SERVICE"] == "es"
    assert env("message")["KEFU_REDIS_URL"] == env("generate")["KEFU_REDIS_URL"] == "rediss://cache.example.com:6379/0"
    assert "KEFU_REDIS_URL" not in env("connect")
    assert env("generate")["KEFU_LLM_PROVIDER"] == "openai"
    # The key stays in Secrets Manager: generate reads it by name at cold start (not in the template
    # nor in the function's environment).
    assert env("generate")["KEFU_LLM_API_KEY_SECRET"] == "kefu/llm-api-key"
    assert "KEFU_LLM_API_KEY" not in env("generate")
    reads = [str(s["Resource"]) for s in synth.statements("generate") if "secretsmanager:GetSecretValue" in s["Action"]]
    assert any("kefu/llm-api-key-??????" in resource for resource in reads)
    retrieve_es = {
        a
        for s in synth.statements("retrieve")
        for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])
        if a.startswith("es:")
    }
    assert retrieve_es == {"es:ESHttpGet", "es:ESHttpHead", "es:ESHttpPost"}
    assert "es:ESHttpPut" in synth.actions("admin")
    [read] = [s for s in synth.statements("retrieve") if "es:ESHttpPost" in s["Action"]]
    assert set(read["Resource"]) == {
        "arn:aws:es:eu-west-1:111122223333:domain/kefu/kefu-chunks-*",
        "arn:aws:es:eu-west-1:111122223333:domain/kefu/_msearch",  # searches are multi-searches
    }
