"""Retrieval on S3 (`python -m local.bench retrieval_s3`): the S3-backed index (shared/knowledge/s3_index.py)
against moto's server over the real S3 and DynamoDB wire protocols, at 1k, 10k and 100k chunks.

Per size: the stored object's size (float16 vectors) beside the float32 files it unpacks to; a cold
function's first search (pointer GetItem + S3 GET + unpack to /tmp + load + BM25 build + the search),
with the GET timed alone; a restarted handler's first search from its /tmp copy; query latency of a warm
function with the default pointer TTL (1 s) and with a GetItem per search (TTL 0); how long a new
upload takes to reach a warm function that polls; the memory a loaded index holds; and the cost of a
one-document upload into an index of that size (the whole version is rewritten).

Corpora and stored vectors as in the retrieval part (local/bench/retrieval.py): synthetic Zipf text,
hashing vectors of USE's shape, questions embedded by the real USE encoder.
"""

from __future__ import annotations

import gc
import random
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from local.bench import machine_line
from local.bench.retrieval import SEED, SIZES, Corpus, HashingEmbedder, _load_average, _percentiles
from local.services import MotoServer
from shared.knowledge.base import Document
from shared.knowledge.factory import build_s3_index
from shared.knowledge.s3_index import S3HybridIndex
from shared.knowledge.use_embedder import UseEmbedder
from shared.settings import Settings

QUERIES = 100
PASSES = 3  # the machine may be shared: cold loads take the fastest, latencies the quietest pass
TENANT = "bench"
# The retrieve function's memory (infra/constructs/functions.py) and the admin API's timeout: the
# HTTP API cuts a request at 30 s, so an upload must be written within it.
FUNCTION_MEMORY_MB = 2048
ADMIN_TIMEOUT_S = 30.0


def _rss_mb() -> float:
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * 4096 / 1e6


def _settings(server: MotoServer, cache: Path, ttl: float) -> Settings:
    return Settings(
        dynamodb_endpoint=server.url,
        knowledge_backend="s3",
        s3_endpoint=server.url,
        knowledge_bucket="kefu-bench",
        knowledge_table="bench-knowledge",
        knowledge_cache_dir=cache,
        knowledge_version_ttl_seconds=ttl,
    )


def _index(server: MotoServer, cache: Path, encoder: UseEmbedder, ttl: float = 1.0) -> S3HybridIndex:
    index = build_s3_index(_settings(server, cache, ttl), HashingEmbedder(encoder))
    assert isinstance(index, S3HybridIndex)
    return index


def _latencies(index: S3HybridIndex, queries: list[str]) -> tuple[float, float, float]:
    """p50/p99/mean of the quietest of PASSES passes (lowest p99)."""
    passes = []
    for _ in range(PASSES):
        samples = []
        for query in queries:
            started = time.perf_counter()
            index.search_hits(TENANT, query, 4)
            samples.append((time.perf_counter() - started) * 1000)
        passes.append(_percentiles(samples))
    return min(passes, key=lambda p: p[1])


def _warm_up(encoder: UseEmbedder, work: Path) -> None:
    """Imports and dictionaries every retrieve cold start loads whatever the index (bm25s, jieba's
    dictionary): loaded here so the cold figures below are the index's own."""
    from shared.knowledge.local_index import LocalHybridIndex

    index = LocalHybridIndex(work / "warm-up", HashingEmbedder(encoder))
    index.index(TENANT, [Document(id="w", title="Warm up", text="warm up the tokenizer 预热")])
    index.search_hits(TENANT, "warm up 预热", 1)


def measure(server: MotoServer, encoder: UseEmbedder, size: int, queries: list[str], work: Path) -> dict[str, Any]:
    tenant_dir = work / f"size-{size}"
    writer = _index(server, tenant_dir / "admin-tmp", encoder)
    writer.keep_seconds = 0
    corpus = Corpus(SEED + size)
    started = time.perf_counter()
    version = writer.index(TENANT, corpus.manual(size)).version
    write_s = time.perf_counter() - started
    stored = len(writer.objects.get(writer.key(TENANT, version)) or b"")
    unpacked = sum(f.stat().st_size for f in (tenant_dir / "admin-tmp").rglob("*") if f.is_file())

    # A cold function: nothing in memory, nothing in /tmp (fastest of PASSES, each in a fresh /tmp).
    colds, held = [], []
    cold = None
    for attempt in range(PASSES):
        cold = None
        gc.collect()
        rss_before = _rss_mb()
        cold = _index(server, tenant_dir / f"retrieve-tmp-{attempt}", encoder)
        started = time.perf_counter()
        cold.search_hits(TENANT, queries[0], 4)
        colds.append(time.perf_counter() - started)
        gc.collect()
        held.append(_rss_mb() - rss_before)
    assert cold is not None
    cold_s, held_mb = min(colds), statistics.median(held)
    gets = []
    for _ in range(PASSES):
        started = time.perf_counter()
        cold.objects.get(cold.key(TENANT, version))
        gets.append(time.perf_counter() - started)
    get_s = min(gets)

    # A restarted handler in the same sandbox: /tmp still has the version.
    tmps = []
    for _ in range(PASSES):
        restarted = _index(server, tenant_dir / "retrieve-tmp-0", encoder)
        started = time.perf_counter()
        restarted.search_hits(TENANT, queries[0], 4)
        tmps.append(time.perf_counter() - started)
        del restarted
    tmp_s = min(tmps)

    warm = _latencies(cold, queries)
    per_query = _index(server, tenant_dir / "retrieve-tmp-0", encoder, ttl=0.0)
    per_query.search_hits(TENANT, queries[0], 4)
    every_search = _latencies(per_query, queries)
    del per_query

    # A one-document upload into this index, and how long until the warm function searches it.
    started = time.perf_counter()
    new_version = writer.index(TENANT, [Document(id=f"new-{uuid.uuid4().hex}", title="New", text="fresh")]).version
    upload_s = time.perf_counter() - started
    seen_started = time.perf_counter()
    while cold.search_hits(TENANT, queries[0], 4).version != new_version:
        time.sleep(0.01)
    visible_s = time.perf_counter() - seen_started
    del cold, writer
    gc.collect()
    return {
        "size": size,
        "colds": colds,
        "stored_mb": stored / 1e6,
        "unpacked_mb": unpacked / 1e6,
        "write_s": write_s,
        "get_s": get_s,
        "cold_s": cold_s,
        "tmp_s": tmp_s,
        "held_mb": held_mb,
        "warm": warm,
        "every_search": every_search,
        "upload_s": upload_s,
        "visible_s": visible_s,
    }


def run() -> str:
    load = _load_average()
    encoder = UseEmbedder()
    encoder.embed_matrix(["warm up the encoder"])
    corpus = Corpus()
    queries = [corpus.sentence(random.Random(SEED + n).randint(3, 9)) for n in range(QUERIES)]
    server = MotoServer().start()
    try:
        with tempfile.TemporaryDirectory(prefix="kefu-bench-s3-") as work:
            _warm_up(encoder, Path(work))
            gc.collect()
            baseline_mb = _rss_mb()  # the process with the USE model, before any index
            from shared.knowledge.aws_storage import create_bucket
            from shared.state.tables import create_tables

            settings = _settings(server, Path(work), 1.0)
            create_tables(settings)
            create_bucket(settings)
            rows = [measure(server, encoder, size, queries, Path(work)) for size in SIZES]
    finally:
        server.stop()
    end_load = _load_average()
    lines = [
        "## Retrieval on S3 (the default deployment's index)",
        "",
        machine_line(),
        "`python -m local.bench retrieval_s3` (local/bench/retrieval_s3.py): the S3-backed index against "
        "moto's server on loopback (S3 and DynamoDB wire protocols), corpora as in the retrieval part; "
        f"cold loads: fastest of {PASSES} (each in a fresh /tmp); latencies: {QUERIES} questions, the quietest "
        f"of {PASSES} passes (1/5/15-minute load averages when the part started: {load}; when it ended: {end_load}).",
        "",
        "| chunks | stored object (float16) | unpacked in /tmp (float32) | cold first search | of which S3 GET "
        "| first search from /tmp | memory held | warm p50 / p99 ms (TTL 1 s) | p50 / p99 ms (GetItem every search) "
        "| 1-document upload | visible to the warm function after |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row['size']:,} | {row['stored_mb']:.1f} MB | {row['unpacked_mb']:.1f} MB | {row['cold_s']:.2f} s | "
            f"{row['get_s']:.2f} s | {row['tmp_s']:.2f} s | {row['held_mb']:.0f} MB | "
            f"{row['warm'][0]:.1f} / {row['warm'][1]:.1f} | "
            f"{row['every_search'][0]:.1f} / {row['every_search'][1]:.1f} | "
            f"{row['upload_s']:.1f} s | {row['visible_s']:.2f} s |"
        )
    big = rows[-1]
    held_per_chunk_mb = big["held_mb"] / big["size"]
    get_cost = statistics.median(r["every_search"][0] - r["warm"][0] for r in rows)
    # While a warm function switches versions it holds both (the old serves until the new is loaded).
    memory_line = int((FUNCTION_MEMORY_MB - baseline_mb) / (2 * held_per_chunk_mb))
    upload_per_chunk_s = big["upload_s"] / big["size"]
    upload_line = int(ADMIN_TIMEOUT_S / upload_per_chunk_s)
    line = min(memory_line, upload_line)
    lines += [
        "",
        f"- Size: {big['stored_mb'] / big['size'] * 1e3:.2f} kB per chunk stored (vectors as float16, chunk "
        f"text deflated), {big['unpacked_mb'] / big['stored_mb']:.1f}x that unpacked in /tmp.",
        f"- Freshness: a GetItem on the version pointer per search costs ~{get_cost:.1f} ms at p50 here "
        "(moto on loopback); the default `KEFU_KNOWLEDGE_VERSION_TTL_SECONDS=1` reads it at most once a second "
        "per tenant and warm function, so an upload is searched about a second after it is stored, plus "
        "the new version's load (last column).",
        f"- Memory: {held_per_chunk_mb * 1e3:.1f} kB per chunk held by a loaded index at {big['size']:,} chunks "
        f"(vectors, chunk records, BM25); this process held {baseline_mb:.0f} MB before any index (runtime, "
        "USE model). A warm function holds two versions while it switches, so one retrieve function "
        f"({FUNCTION_MEMORY_MB:,} MB) holds a tenant of up to ~{memory_line:,} chunks.",
        f"- Writes: every upload or delete rewrites the tenant's version ({big['upload_s']:.0f} s for one "
        f"document at {big['size']:,} chunks here), and the admin API must answer within {ADMIN_TIMEOUT_S:.0f} s: "
        f"~{upload_line:,} chunks at this rate.",
        f"- Cold start: the first search of a version reads and unpacks it whole ({big['cold_s']:.1f} s at "
        f"{big['size']:,} chunks here, {big['tmp_s']:.1f} s from /tmp).",
        "",
        f"**Where the line is: about {line:,} chunks per tenant on this machine** (the lower of the memory and "
        "the write limit above). Below it the S3 index costs nothing idle; a deployment with tenants beyond it "
        "(or whose uploads must land faster than the rewrite above) belongs on OpenSearch: "
        "`npx cdk deploy -c retrieval=opensearch` (docs/deploy.md). Lambda's arm64 vCPUs differ from this "
        "machine's cores; re-run on the target before sizing a large tenant.",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    print(run())
