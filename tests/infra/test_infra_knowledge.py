"""The OpenSearch collection and its access match what the adapter (shared/knowledge/opensearch_index.py)
does: a vector collection, the index name the functions are given, the admin function allowed to create
that index with its mapping on first write, retrieve allowed to read it, and the tenants table readable
by retrieve (per-tenant retrieval settings)."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from infra.config import ConfigError, DeployConfig
from infra.constants import FunctionName
from infra.constructs.access import USES_KNOWLEDGE_MODELS
from shared.knowledge.factory import CHUNK_INDEX_PREFIX, chunk_index_name, embedding_model_name
from shared.knowledge.opensearch_index import index_body
from shared.settings import Settings
from tests.infra.synthesis import Synth


def _policy_rules(dev: Synth) -> list[dict[str, Any]]:
    """The data-access rules of the collection (``-c retrieval=opensearch``)."""
    (policy,) = list(dev.of_type("AWS::OpenSearchServerless::AccessPolicy").values())
    document = policy["Properties"]["Policy"]
    if isinstance(document, dict):  # Fn::Join of role ARNs: keep only the literal parts
        parts = document["Fn::Join"][1]
        document = "".join(p if isinstance(p, str) else '"ROLE"' for p in parts).replace('""ROLE""', '"ROLE"')
    return list(json.loads(document))


def test_the_collection_is_a_vector_collection_and_functions_get_the_adapters_index(opensearch: Synth) -> None:
    dev = opensearch
    (collection,) = dev.of_type("AWS::OpenSearchServerless::Collection").values()
    assert collection["Properties"]["Type"] == "VECTORSEARCH"
    for name in ("retrieve", "admin"):
        env = dev.function(name)["Properties"]["Environment"]["Variables"]
        assert env["KEFU_OPENSEARCH_INDEX"] == "kefu-chunks-use-512"  # the bundled USE model's vectors
        assert env["KEFU_OPENSEARCH_SERVICE"] == "aoss" and env["KEFU_KNOWLEDGE_BACKEND"] == "opensearch"
    assert "KEFU_TENANTS_TABLE" in dev.function("retrieve")["Properties"]["Environment"]["Variables"]


def test_admin_may_create_the_index_and_retrieve_may_only_read_it(opensearch: Synth) -> None:
    dev = opensearch
    rules = {rule["Description"]: rule["Rules"] for rule in _policy_rules(dev)}
    index_rules = {
        what: next(r for r in rules[what] if r["ResourceType"] == "index")
        for what in ("functions that index the knowledge index", "functions that search the knowledge index")
    }
    writer = index_rules["functions that index the knowledge index"]
    reader = index_rules["functions that search the knowledge index"]
    # Every embedder's index, so a rebuild's new index needs no new grant
    assert writer["Resource"][0].endswith(f"/{CHUNK_INDEX_PREFIX}-*") and reader["Resource"] == writer["Resource"]
    assert {"aoss:CreateIndex", "aoss:WriteDocument", "aoss:ReadDocument"} <= set(writer["Permission"])
    assert set(reader["Permission"]) == {"aoss:DescribeIndex", "aoss:ReadDocument"}


def test_the_mapping_uses_only_what_serverless_offers() -> None:
    body = index_body(512)
    vector = body["mappings"]["properties"]["embedding"]
    assert vector["method"]["engine"] == "faiss"  # Serverless vector collections: faiss (and lucene), not nmslib
    analyzers = {spec.get("analyzer") for spec in body["mappings"]["properties"].values() if isinstance(spec, dict)} - {
        None
    }
    assert analyzers <= {"whitespace", "cjk", "standard", "english"}  # built in: no plugins on Serverless
    assert set(body["settings"]["index"]) == {"knn"}  # no shard/replica settings (Serverless refuses them)


@pytest.mark.parametrize("profile", ["dev", "bedrock", "on_prem", "rebuild", "opensearch"])
def test_the_index_the_stack_names_is_the_one_the_functions_would_derive(
    profile: str, request: pytest.FixtureRequest
) -> None:
    # Given a profile's functions / When their settings are read as Lambda reads them
    synth: Synth = request.getfixturevalue(profile)
    for name in ("retrieve", "admin"):
        env = synth.function(name)["Properties"]["Environment"]["Variables"]
        fields = {k.removeprefix("KEFU_").lower(): v for k, v in env.items() if k.startswith("KEFU_")}
        settings = Settings.model_validate(
            {
                k: v
                for k, v in fields.items()
                if isinstance(v, str) and k not in ("opensearch_index", "knowledge_prefix")
            }
        )
        dimension = settings.embedding_dimension or {"use": 512, "bedrock": 1024}[settings.embedding_provider]
        # Then the pinned name (OpenSearch index, or S3 prefix of versions and pointers) is the
        # factory's own name for that embedder and size
        expected = chunk_index_name(embedding_model_name(settings), dimension)
        if settings.knowledge_backend == "s3":
            assert env["KEFU_KNOWLEDGE_PREFIX"] == f"{expected}/", name
        else:
            assert env["KEFU_OPENSEARCH_INDEX"] == expected, name


def test_a_rebuild_ingests_into_the_next_embedders_index_while_retrieve_serves_the_current(rebuild: Synth) -> None:
    def env(name: FunctionName) -> dict[str, Any]:
        variables: dict[str, Any] = rebuild.function(name)["Properties"]["Environment"]["Variables"]
        return variables

    assert env("retrieve")["KEFU_KNOWLEDGE_PREFIX"] == "kefu-chunks-use-512/"
    assert "KEFU_EMBEDDING_PROVIDER" not in env("retrieve")  # the default USE model
    assert env("admin")["KEFU_KNOWLEDGE_PREFIX"] == "kefu-chunks-amazon-titan-embed-text-v2-0-1024/"
    assert env("admin")["KEFU_EMBEDDING_PROVIDER"] == "bedrock"
    # Only admin may call the next model (it embeds passages); retrieve calls no Bedrock model yet
    invokes = {
        name: [
            s
            for s in rebuild.statements(name)
            if "bedrock:InvokeModel" in (s["Action"] if isinstance(s["Action"], list) else [s["Action"]])
        ]
        for name in USES_KNOWLEDGE_MODELS
    }
    assert not invokes["retrieve"]
    [grant] = invokes["admin"]
    assert "foundation-model/amazon.titan-embed-text-v2:0" in json.dumps(grant["Resource"])


@pytest.mark.parametrize(
    ("rebuild", "message"),
    [
        ('{"provider": "use"}', "names the current embedder"),
        ('{"provider": "openai", "model": "bge-m3"}', "needs 'embedding_base_url'"),
        ('{"provider": "bedrock", "dimension": 768}', "256, 512 or 1024"),
        ('{"provider": "bedrock", "size": 256}', "unknown keys ['size']"),
        ('["bedrock"]', "not a JSON object"),
    ],
)
def test_a_bad_rebuild_target_is_refused_with_a_reason(rebuild: str, message: str) -> None:
    import aws_cdk as cdk

    with pytest.raises(ConfigError, match=re.escape(message)):
        DeployConfig.from_context(cdk.App(context={"rebuild_embedding": rebuild}).node)


# --- the default: the embedded index on S3 ----------------------------------------------------------


def _knowledge_bucket(synth: Synth) -> dict[str, Any]:
    [bucket] = [r for lid, r in synth.of_type("AWS::S3::Bucket").items() if lid.startswith("Knowledge")]
    return bucket


def test_the_default_keeps_the_index_in_a_private_encrypted_bucket(dev: Synth) -> None:
    properties = _knowledge_bucket(dev)["Properties"]
    assert properties["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True,
        "BlockPublicPolicy": True,
        "IgnorePublicAcls": True,
        "RestrictPublicBuckets": True,
    }
    [rule] = properties["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert rule["ServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    assert "VersioningConfiguration" not in properties  # a deleted version is gone, not kept as noncurrent
    [lifecycle] = properties["LifecycleConfiguration"]["Rules"]
    assert lifecycle["AbortIncompleteMultipartUpload"] == {"DaysAfterInitiation": 1}
    # TLS only: the bucket policy denies every request without it
    [policy] = [
        p for p in dev.of_type("AWS::S3::BucketPolicy").values() if "Knowledge" in json.dumps(p["Properties"]["Bucket"])
    ]
    [deny] = policy["Properties"]["PolicyDocument"]["Statement"]
    assert deny["Effect"] == "Deny" and deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


def test_the_pointer_table_is_the_models_and_functions_are_pointed_at_bucket_and_table(dev: Synth) -> None:
    from shared.state.tables import KnowledgePointerModel

    [table] = [
        t for t in dev.of_type("AWS::DynamoDB::Table").values() if t["Properties"]["TableName"] == "kefu-dev-knowledge"
    ]
    assert table["Properties"]["KeySchema"] == [
        {"AttributeName": KnowledgePointerModel._hash_keyname, "KeyType": "HASH"}
    ]
    assert table["Properties"]["BillingMode"] == "PAY_PER_REQUEST"
    [bucket_id] = [lid for lid in dev.of_type("AWS::S3::Bucket") if lid.startswith("Knowledge")]
    for name in ("retrieve", "admin"):
        env = dev.function(name)["Properties"]["Environment"]["Variables"]
        assert env["KEFU_KNOWLEDGE_BACKEND"] == "s3" and env["KEFU_KNOWLEDGE_BUCKET"] == {"Ref": bucket_id}
        assert "KEFU_KNOWLEDGE_TABLE" in env and "KEFU_OPENSEARCH_ENDPOINT" not in env
    for name in ("connect", "message", "generate"):
        assert "KEFU_KNOWLEDGE_BUCKET" not in dev.function(name)["Properties"]["Environment"]["Variables"]


@pytest.mark.parametrize(
    ("context", "message"),
    [
        ({"retrieval": "elasticsearch"}, "must be one of s3, opensearch"),
        (
            {
                "retrieval": "s3",
                "opensearch_endpoint": "https://x.es.amazonaws.com",
                "opensearch_domain_arn": "arn:aws:es:us-east-1:111122223333:domain/x",
            },
            "needs 'retrieval=opensearch'",
        ),
    ],
)
def test_a_bad_retrieval_choice_is_refused_with_a_reason(context: dict[str, str], message: str) -> None:
    import aws_cdk as cdk

    with pytest.raises(ConfigError, match=re.escape(message)):
        DeployConfig.from_context(cdk.App(context=context).node)


def test_an_existing_domain_implies_opensearch() -> None:
    import aws_cdk as cdk

    context = {
        "opensearch_endpoint": "https://x.es.amazonaws.com",
        "opensearch_domain_arn": "arn:aws:es:us-east-1:111122223333:domain/x",
    }
    assert DeployConfig.from_context(cdk.App(context=context).node).retrieval == "opensearch"
    assert DeployConfig.from_context(cdk.App().node).retrieval == "s3"


def test_retrieve_and_admin_have_room_in_tmp_for_unpacked_versions(dev: Synth) -> None:
    for name in ("retrieve", "admin"):
        assert dev.function(name)["Properties"]["EphemeralStorage"] == {"Size": 2048}
