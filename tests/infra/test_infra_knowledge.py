"""The OpenSearch collection and its access match what the adapter (shared/knowledge/opensearch_index.py)
does: a vector collection, the index name the functions are given, the admin function allowed to create
that index with its mapping on first write, retrieve allowed to read it, and the tenants table readable
by retrieve (per-tenant retrieval settings)."""

from __future__ import annotations

import json
from typing import Any

from infra.constants import OPENSEARCH_INDEX
from shared.knowledge.opensearch_index import index_body
from shared.settings import Settings
from tests.infra.synthesis import Synth


def _policy_rules(dev: Synth) -> list[dict[str, Any]]:
    (policy,) = list(dev.of_type("AWS::OpenSearchServerless::AccessPolicy").values())
    document = policy["Properties"]["Policy"]
    if isinstance(document, dict):  # Fn::Join of role ARNs: keep only the literal parts
        parts = document["Fn::Join"][1]
        document = "".join(p if isinstance(p, str) else '"ROLE"' for p in parts).replace('""ROLE""', '"ROLE"')
    return list(json.loads(document))


def test_the_collection_is_a_vector_collection_and_functions_get_the_adapters_index(dev: Synth) -> None:
    (collection,) = dev.of_type("AWS::OpenSearchServerless::Collection").values()
    assert collection["Properties"]["Type"] == "VECTORSEARCH"
    for name in ("retrieve", "admin"):
        env = dev.function(name)["Properties"]["Environment"]["Variables"]
        assert env["KEFU_OPENSEARCH_INDEX"] == OPENSEARCH_INDEX == Settings().opensearch_index
        assert env["KEFU_OPENSEARCH_SERVICE"] == "aoss" and env["KEFU_KNOWLEDGE_BACKEND"] == "opensearch"
    assert "KEFU_TENANTS_TABLE" in dev.function("retrieve")["Properties"]["Environment"]["Variables"]


def test_admin_may_create_the_index_and_retrieve_may_only_read_it(dev: Synth) -> None:
    rules = {rule["Description"]: rule["Rules"] for rule in _policy_rules(dev)}
    index_rules = {
        what: next(r for r in rules[what] if r["ResourceType"] == "index")
        for what in ("functions that index the knowledge index", "functions that search the knowledge index")
    }
    writer = index_rules["functions that index the knowledge index"]
    reader = index_rules["functions that search the knowledge index"]
    assert writer["Resource"][0].endswith(f"/{OPENSEARCH_INDEX}*") and reader["Resource"] == writer["Resource"]
    assert {"aoss:CreateIndex", "aoss:WriteDocument", "aoss:ReadDocument"} <= set(writer["Permission"])
    assert set(reader["Permission"]) == {"aoss:DescribeIndex", "aoss:ReadDocument"}


def test_the_mapping_uses_only_what_serverless_offers() -> None:
    body = index_body(512)
    vector = body["mappings"]["properties"]["embedding"]
    assert vector["method"]["engine"] == "faiss"  # Serverless vector collections: faiss (and lucene), not nmslib
    analyzers = {
        spec.get("analyzer") for spec in body["mappings"]["properties"].values() if isinstance(spec, dict)
    } - {None}
    assert analyzers <= {"whitespace", "cjk", "standard", "english"}  # built in: no plugins on Serverless
    assert set(body["settings"]["index"]) == {"knn"}  # no shard/replica settings (Serverless refuses them)
