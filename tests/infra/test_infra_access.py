"""Least privilege: each function's role can do what its code calls, and nothing else."""

from __future__ import annotations

import json
from typing import Any

import pytest

from infra.constants import FUNCTIONS, FunctionName
from infra.constructs.access import POSTS_TO_CONNECTIONS, TABLE_ACCESS
from tests.infra.synthesis import Synth

_LOGS = {"logs:CreateLogStream", "logs:PutLogEvents"}
_XRAY = {"xray:PutTraceSegments", "xray:PutTelemetryRecords"}


def _actions(statement: dict[str, Any]) -> list[str]:
    action = statement["Action"]
    return action if isinstance(action, list) else [action]


def _resources(statement: dict[str, Any]) -> list[Any]:
    resource = statement["Resource"]
    return resource if isinstance(resource, list) else [resource]


def test_roles_have_no_managed_policies_and_no_wildcard_actions(dev: Synth) -> None:
    for name in FUNCTIONS:
        role = dev.resources[dev.role_id(name)]["Properties"]
        assert "ManagedPolicyArns" not in role, name
        assert role["AssumeRolePolicyDocument"]["Statement"][0]["Principal"] == {"Service": "lambda.amazonaws.com"}
        for statement in dev.statements(name):
            assert statement["Effect"] == "Allow"
            assert not any(a == "*" or a.endswith(":*") for a in _actions(statement)), (name, statement)


def test_only_xray_is_granted_on_every_resource(dev: Synth) -> None:
    for name in FUNCTIONS:
        for statement in dev.statements(name):
            if "*" in _resources(statement):
                assert set(_actions(statement)) == _XRAY, (name, statement)


def test_each_role_writes_only_its_own_log_group(dev: Synth) -> None:
    for name in FUNCTIONS:
        log_group_id = dev.function(name)["Properties"]["LoggingConfig"]["LogGroup"]["Ref"]
        [logs] = [s for s in dev.statements(name) if set(_actions(s)) & _LOGS]
        assert set(_actions(logs)) == _LOGS
        assert _resources(logs) == [{"Fn::GetAtt": [log_group_id, "Arn"]}]


@pytest.mark.parametrize("name", FUNCTIONS)
def test_dynamodb_actions_are_exactly_the_access_table(dev: Synth, name: FunctionName) -> None:
    # Given the role's DynamoDB statements, by table
    table_ids = {
        lid: r["Properties"]["TableName"].removeprefix("kefu-dev-")
        for lid, r in dev.of_type("AWS::DynamoDB::Table").items()
    }
    granted: dict[str, set[str]] = {}
    for statement in dev.statements(name):
        actions = [a for a in _actions(statement) if a.startswith("dynamodb:")]
        if not actions:
            continue
        for resource in _resources(statement):  # minimized policies list several tables at once
            rendered = json.dumps(resource)
            [table] = [t for lid, t in table_ids.items() if lid in rendered]
            granted.setdefault(table, set()).update(actions)
    # Then they are what access.py declares, per table, and nothing broader (the knowledge pointers:
    # retrieve reads them, admin moves them; infra/constructs/knowledge.py)
    expected = {table: set(access.actions) for table, access in TABLE_ACCESS[name].items()}
    expected |= {
        "retrieve": {"knowledge": {"dynamodb:GetItem"}},
        "admin": {"knowledge": {"dynamodb:GetItem", "dynamodb:PutItem"}},
        "ingest": {"knowledge": {"dynamodb:GetItem", "dynamodb:PutItem"}},
    }.get(name, {})
    assert granted == expected


def test_connect_cannot_queue_invoke_or_read_other_secrets(dev: Synth) -> None:
    actions = dev.actions("connect")
    assert "sqs:SendMessage" not in actions
    assert "lambda:InvokeFunction" not in actions
    assert not any(a.startswith("aoss:") for a in actions)
    assert not any(a.startswith("secretsmanager:") for a in actions)  # its key is an SSM parameter
    assert {a for a in actions if a.startswith("ssm:")} == {"ssm:GetParameter"}


def _queue_id(dev: Synth, name: str) -> str:
    return next(lid for lid, r in dev.of_type("AWS::SQS::Queue").items() if r["Properties"]["QueueName"] == name)


def test_only_the_intakes_and_the_admin_redrive_can_queue_jobs(dev: Synth) -> None:
    # message and channels take visitors' messages, generate WeCom's pulled ones; admin redrives
    queuing = {"message", "channels", "generate", "admin"}
    assert {name for name in FUNCTIONS if "sqs:SendMessage" in dev.actions(name)} == queuing
    queue_id = _queue_id(dev, "kefu-dev-generate.fifo")
    for name in queuing:
        [send] = [s for s in dev.statements(name) if "sqs:SendMessage" in _actions(s)]
        assert _resources(send) == [{"Fn::GetAtt": [queue_id, "Arn"]}]


def test_only_generate_consumes_jobs_and_admin_only_dead_letters(dev: Synth) -> None:
    assert {name for name in FUNCTIONS if "sqs:ReceiveMessage" in dev.actions(name)} == {"generate", "admin"}
    [receive] = [s for s in dev.statements("admin") if "sqs:ReceiveMessage" in _actions(s)]
    assert _resources(receive) == [{"Fn::GetAtt": [_queue_id(dev, "kefu-dev-generate-dlq.fifo"), "Arn"]}]


def test_only_generate_may_invoke_retrieve(dev: Synth) -> None:
    assert {name for name in FUNCTIONS if "lambda:InvokeFunction" in dev.actions(name)} == {"generate"}
    [invoke] = [s for s in dev.statements("generate") if "lambda:InvokeFunction" in _actions(s)]
    retrieve_arn = {"Fn::GetAtt": [dev.function_id("retrieve"), "Arn"]}
    # the function and its $LATEST version; no other function, no "*" qualifier
    resources = _resources(invoke)
    assert len(resources) == 2
    assert retrieve_arn in resources and {"Fn::Join": ["", [retrieve_arn, ":$LATEST"]]} in resources


def test_only_the_chat_functions_and_admin_use_connections(dev: Synth) -> None:
    [api_id] = [
        lid
        for lid, r in dev.of_type("AWS::ApiGatewayV2::Api").items()
        if r["Properties"]["ProtocolType"] == "WEBSOCKET"
    ]
    posting = {name for name in FUNCTIONS if "execute-api:ManageConnections" in dev.actions(name)}
    # connect: an agent's last tab closing tells the colleagues' consoles; admin: a key rotation
    # closes the agent's consoles (and tells the colleagues)
    assert posting == set(POSTS_TO_CONNECTIONS) == {"connect", "message", "generate", "admin", "channels"}
    for name in posting:
        statements = [s for s in dev.statements(name) if "execute-api:ManageConnections" in _actions(s)]
        # this API, the chat stage, POST only (admin: and DELETE)
        endings = set()
        for arn in (arn for manage in statements for arn in _resources(manage)):
            parts = arn["Fn::Join"][1]
            assert parts[-2] == {"Ref": api_id}
            endings.add(parts[-1])
        expected = {"/chat/POST/@connections/*"} | ({"/chat/DELETE/@connections/*"} if name == "admin" else set())
        assert endings == expected


def _s3_grants(dev: Synth, name: FunctionName) -> dict[str, list[Any]]:
    """Resources by S3 action (in a stable order: policies may list them either way)."""
    return {
        action: sorted(
            (resource for s in dev.statements(name) if action in _actions(s) for resource in _resources(s)),
            key=json.dumps,
        )
        for action in dev.actions(name)
        if action.startswith("s3:")
    }


def test_knowledge_and_upload_access_on_s3(dev: Synth) -> None:
    [bucket_id] = [lid for lid in dev.of_type("AWS::S3::Bucket") if lid.startswith("Knowledge")]
    [uploads_id] = [lid for lid in dev.of_type("AWS::S3::Bucket") if lid.startswith("Uploads")]
    users = {name for name in FUNCTIONS if any(a.startswith("s3:") for a in dev.actions(name))}
    assert users == {"retrieve", "admin", "ingest"}  # generate goes through retrieve
    objects = {"Fn::Join": ["", [{"Fn::GetAtt": [bucket_id, "Arn"]}, "/*"]]}
    uploads = {"Fn::Join": ["", [{"Fn::GetAtt": [uploads_id, "Arn"]}, "/uploads/*"]]}
    granted = {name: _s3_grants(dev, name) for name in users}
    # retrieve only reads index objects; admin and ingest write new versions, list and delete old ones
    assert granted["retrieve"] == {"s3:GetObject": [objects]}
    writer = {
        "s3:GetObject": [objects],
        "s3:PutObject": [objects],
        "s3:DeleteObject": [objects],
        "s3:ListBucket": [{"Fn::GetAtt": [bucket_id, "Arn"]}],
    }
    # Uploads: admin only signs POSTs (PutObject under uploads/); ingest reads and removes an upload.
    both = sorted([objects, uploads], key=json.dumps)
    assert granted["admin"] == writer | {"s3:PutObject": both}
    assert granted["ingest"] == writer | {"s3:GetObject": both, "s3:DeleteObject": both}


def test_ingest_has_none_of_admins_other_powers(dev: Synth) -> None:
    """The ingest function runs on S3 events: no keys, queues, @connections, secrets or invokes."""
    actions = dev.actions("ingest")
    assert not [a for a in actions if a.split(":")[0] in ("sqs", "secretsmanager", "ssm", "execute-api", "lambda")]
    assert "dynamodb:Query" not in actions and "dynamodb:DeleteItem" not in actions


def test_knowledge_access_on_opensearch(opensearch: Synth) -> None:
    dev = opensearch
    [collection_id] = dev.of_type("AWS::OpenSearchServerless::Collection")
    holders = {name for name in FUNCTIONS if "aoss:APIAccessAll" in dev.actions(name)}
    assert holders == {"retrieve", "admin", "ingest"}  # generate goes through retrieve
    for name in holders:
        [statement] = [s for s in dev.statements(name) if "aoss:APIAccessAll" in _actions(s)]
        assert _resources(statement) == [{"Fn::GetAtt": [collection_id, "Arn"]}]


def _secret_id(dev: Synth, construct: str) -> str:
    [secret_id] = [lid for lid in dev.of_type("AWS::SecretsManager::Secret") if lid.startswith(construct)]
    return secret_id


def test_only_admin_reads_the_admin_key(dev: Synth) -> None:
    secret_id = _secret_id(dev, "AdminKey")
    assert len(dev.of_type("AWS::SecretsManager::Secret")) == 1  # the admin key (the visitor-token key: SSM)
    readers = {name for name in FUNCTIONS if "secretsmanager:GetSecretValue" in dev.actions(name)}
    # generate reads tenants' model secrets, under their own prefix only (test_infra_model_gateway.py);
    # channels, generate and message read tenants' channel secrets (test_infra_channels.py)
    assert readers == {"admin", "generate", "channels", "message"}
    [read] = [s for s in dev.statements("admin") if "secretsmanager:GetSecretValue" in _actions(s)]
    assert _resources(read) == [{"Ref": secret_id}]
    [model_secrets] = [s for s in dev.statements("generate") if "secretsmanager:GetSecretValue" in _actions(s)]
    assert _actions(model_secrets) == ["secretsmanager:GetSecretValue"]
    assert "secret:kefu/dev/models/*" in json.dumps(_resources(model_secrets))
    assert {"Ref": secret_id} not in _resources(model_secrets)


def _parameter_arn(dev: Synth) -> dict[str, Any]:
    [key] = dev.of_type("Custom::SecureParameter").values()
    name = key["Properties"]["Name"]
    assert name == "/kefu/dev/visitor-token-key"
    return {
        "Fn::Join": [
            "",
            [
                "arn:",
                {"Ref": "AWS::Partition"},
                ":ssm:",
                {"Ref": "AWS::Region"},
                ":",
                {"Ref": "AWS::AccountId"},
                ":parameter" + name,
            ],
        ]
    }


def test_only_connect_and_message_read_the_visitor_token_key(dev: Synth) -> None:
    arn = _parameter_arn(dev)
    readers = {name for name in FUNCTIONS if any(a.startswith("ssm:") for a in dev.actions(name))}
    assert readers == {"connect", "message"}
    for name in readers:
        [read] = [s for s in dev.statements(name) if any(a.startswith("ssm:") for a in _actions(s))]
        assert _actions(read) == ["ssm:GetParameter"]
        assert _resources(read) == [arn]
        # the key exists before either function takes a visitor
        [key_id] = dev.of_type("Custom::SecureParameter")
        assert key_id in dev.function(name)["DependsOn"]
        assert dev.function(name)["Properties"]["Environment"]["Variables"]["KEFU_VISITOR_TOKEN_PARAMETER"] == (
            "/kefu/dev/visitor-token-key"
        )


def test_the_key_writer_only_puts_and_deletes_that_parameter(dev: Synth) -> None:
    [key] = dev.of_type("Custom::SecureParameter").values()
    writer_id = key["Properties"]["ServiceToken"]["Fn::GetAtt"][0]
    writer = dev.resources[writer_id]
    role_id = writer["Properties"]["Role"]["Fn::GetAtt"][0]
    statements = [
        statement
        for policy in dev.of_type("AWS::IAM::Policy").values()
        if {"Ref": role_id} in policy["Properties"]["Roles"]
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
    ]
    ssm = [s for s in statements if any(a.startswith("ssm:") for a in _actions(s))]
    assert [sorted(_actions(s)) for s in ssm] == [["ssm:DeleteParameter", "ssm:PutParameter"]]
    assert _resources(ssm[0]) == [_parameter_arn(dev)]
    assert {a.split(":")[0] for s in statements for a in _actions(s)} == {"ssm", "logs"}
    # the value is generated in the function, never in the template
    assert "Value" not in key["Properties"]


def test_prod_retains_the_visitor_token_key(prod: Synth) -> None:
    [key] = prod.of_type("Custom::SecureParameter").values()
    assert (key["DeletionPolicy"], key["UpdateReplacePolicy"]) == ("RetainExceptOnCreate", "Retain")
