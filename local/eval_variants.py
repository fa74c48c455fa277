"""Ranking variants that were measured and not kept (docs/quality.md, *Variants measured*).

    python -m local.eval_variants [--data /work/shared/eval]

`make eval` measures what kefu does; this measures what it could do instead, in one process and on
the same index: telecom_zh and StackFAQ are indexed as `make eval` uploads them (LocalHybridIndex, the
default USE embedder), then each variant re-scores every row from the same signals (BM25 keyword
ratios, USE cosines) and ranks documents by their best row. The first row of each table is kefu's
own fusion and matches `make eval`'s figures. Nothing here is fitted to the test questions: each
variant has the one setting written in its name, chosen before the run. telecom_zh also gets the
separation between in-scope and out-of-scope questions (how high a question's best score is), which
bounds the share answered right at any threshold.

Prints a markdown report on stdout.
"""

from __future__ import annotations

import argparse
import datetime as dt
import re
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from local.bench import machine_line
from local.eval_quality import DEFAULT_DATA, ranking_metrics, read_jsonl
from shared.knowledge.scoring import DEFAULT_KEYWORD_WEIGHT, fuse
from shared.knowledge.vectors import unit_rows as unit

Matrix = NDArray[np.float32]
_CJK_WORD = re.compile(r"^[\u3400-\u9fff]{2,}$")
_CLAUSE = re.compile(r"[，,。！!？?；;、\s]+")


@dataclass
class Corpus:
    name: str
    documents: list[dict[str, str]]
    queries: list[str]
    golds: list[set[str]]
    out_of_scope: list[str]


@dataclass
class Signals:
    """Everything a variant may re-score: per row, per question."""

    index: Any  # LocalHybridIndex
    generation: Any  # its loaded generation (records, vectors, keyword scorer)
    lead_vectors: Matrix  # each row's lead (title / question) alone, unit
    text_vectors: Matrix  # each row's chunk text alone, unit
    queries: Matrix  # the questions as the index embeds them (traditional folded), unit
    ratios: Matrix  # BM25 keyword ratios, question x row

    def embed(self, texts: list[str]) -> Matrix:
        return embed_unit(self.index.embedder, texts)


def embed_unit(embedder: Any, texts: list[str]) -> Matrix:
    return unit(np.asarray(embedder.embed_matrix(texts), dtype=np.float32))


def telecom(data: Path) -> Corpus:
    folder = data / "telecom_zh"
    queries = read_jsonl(folder / "queries.jsonl")
    entries = read_jsonl(folder / "kb.jsonl")
    return Corpus(
        "telecom_zh",
        [{"id": str(e["id"]), "title": str(e["title"]), "text": str(e["text"])} for e in entries],
        [str(q["query"]) for q in queries],
        [set(map(str, q["gold"])) for q in queries],
        [str(q["query"]) for q in read_jsonl(folder / "oos.jsonl")],
    )


def stackfaq(data: Path) -> Corpus:
    folder = data / "stackfaq"
    queries = read_jsonl(folder / "queries.jsonl")
    threads = read_jsonl(folder / "kb_threads.jsonl")
    return Corpus(
        "StackFAQ",
        [{"id": str(t["id"]), "title": str(t["question"]), "text": str(t["text"])} for t in threads],
        [str(q["query"]) for q in queries],
        [set(map(str, q["gold"])) for q in queries],
        [],
    )


def signals_for(corpus: Corpus, root: Path) -> Signals:
    from shared.knowledge.base import Document
    from shared.knowledge.local_index import LocalHybridIndex
    from shared.knowledge.text import fold_chinese
    from shared.knowledge.use_embedder import shared_embedder

    index = LocalHybridIndex(root, shared_embedder())
    index.index(corpus.name, [Document(**d) for d in corpus.documents])
    generation = index._load(corpus.name, index._tenant_dir(corpus.name))
    records = generation.records
    return Signals(
        index,
        generation,
        embed_unit(index.embedder, [r["lead"] for r in records]),
        embed_unit(index.embedder, [r["text"] for r in records]),
        embed_unit(index.embedder, [fold_chinese(q) for q in corpus.queries]),
        keyword_ratios(generation, corpus.queries),
    )


def keyword_ratios(generation: Any, questions: Sequence[str], extra: Sequence[Sequence[str]] = ()) -> Matrix:
    from shared.knowledge.text import alternative_terms, tokenize

    rows = []
    for n, question in enumerate(questions):
        more = list(extra[n]) if extra else []
        rows.append(generation.keyword_ratios(tokenize(question), [*alternative_terms(question), *more]))
    return np.stack(rows).astype(np.float32)


def document_ranking(records: list[Any], scores: NDArray[Any]) -> tuple[list[str], dict[str, float]]:
    best: dict[str, float] = {}
    for n, record in enumerate(records):
        document = record["document_id"]
        best[document] = max(best.get(document, -np.inf), float(scores[n]))
    return sorted(best, key=lambda d: -best[d]), best


def fused(ratios: Matrix, cosines: Matrix, keyword_weight: float = DEFAULT_KEYWORD_WEIGHT) -> Matrix:
    return np.stack([fuse(r, c, keyword_weight) for r, c in zip(ratios, cosines, strict=True)])


# --- variants: each returns question x row scores --------------------------------------------------


def kefu_default(s: Signals, corpus: Corpus) -> Matrix:
    return fused(s.ratios, s.queries @ s.generation.vectors.T)


def dense_only(s: Signals, corpus: Corpus) -> Matrix:
    return fused(s.ratios, s.queries @ s.generation.vectors.T, 0.0)


def row_vectors(lead_weight: float) -> Callable[[Signals, Corpus], Matrix]:
    def variant(s: Signals, corpus: Corpus) -> Matrix:
        rows = unit(lead_weight * s.lead_vectors + s.text_vectors)
        return fused(s.ratios, s.queries @ rows.T)

    return variant


def mean_centred(s: Signals, corpus: Corpus) -> Matrix:
    """Cosines after removing the knowledge's mean direction (what every entry of one domain shares)."""
    mean = s.generation.vectors.mean(axis=0)
    return fused(s.ratios, unit(s.queries - mean) @ unit(s.generation.vectors - mean).T)


def clause_views(s: Signals, corpus: Corpus) -> Matrix:
    """A long question's best clause may match better than the whole (chit-chat dilutes it)."""
    from shared.knowledge.text import fold_chinese

    cosines = s.queries @ s.generation.vectors.T
    for n, question in enumerate(corpus.queries):
        clauses = [c for c in _CLAUSE.split(fold_chinese(question)) if len(c) >= 2]
        if len(clauses) >= 2:
            cosines[n] = np.maximum(cosines[n], (s.embed(clauses) @ s.generation.vectors.T).max(axis=0))
    return fused(s.ratios, cosines)


def neighbour_expansion(threshold: float) -> Callable[[Signals, Corpus], Matrix]:
    """A question word the knowledge never uses gains its nearest knowledge word (USE cosine of the two
    words at least ``threshold``) as an extra BM25 term: synonyms without a hand-written list."""

    def variant(s: Signals, corpus: Corpus) -> Matrix:
        from shared.knowledge.text import fold_chinese

        generation = s.generation
        generation.keyword_ratios(["warm"])  # builds the keyword scorer (document frequencies)
        known = generation._keyword.doc_freq
        vocabulary = sorted({t for r in generation.records for t in r["tokens"] if _CJK_WORD.match(t)})
        if not vocabulary:
            return kefu_default(s, corpus)
        vocabulary_vectors = s.embed(vocabulary)
        import jieba

        extra: list[list[str]] = []
        for question in corpus.queries:
            unknown = [w for w in dict.fromkeys(jieba.cut(fold_chinese(question))) if _CJK_WORD.match(w)]
            unknown = [w for w in unknown if not known.get(w)]
            added: list[str] = []
            if unknown:
                similarity = s.embed(unknown) @ vocabulary_vectors.T
                best = similarity.argmax(axis=1)
                added = [vocabulary[j] for i, j in enumerate(best) if similarity[i, j] >= threshold]
            extra.append(added)
        return fused(keyword_ratios(generation, corpus.queries, extra), s.queries @ generation.vectors.T)

    return variant


def probe_normalised(s: Signals, corpus: Corpus) -> Matrix:
    """Each channel re-expressed against the tenant's own off-topic probes (kefu's generic probes plus
    near misses made from its titles, as calibration makes them): (x - median) / (q90 - median) of the
    probes' best value, then averaged. Scores then mean "how far above off-topic", per tenant."""
    from shared.knowledge.calibration import generic_probes, knowledge_languages, near_miss_probes
    from shared.knowledge.text import fold_chinese

    titles = [d["title"] for d in corpus.documents]
    probes = generic_probes(knowledge_languages(titles))
    probes += near_miss_probes(titles, probes)
    probe_cosines = (s.embed([fold_chinese(p) for p in probes]) @ s.generation.vectors.T).max(axis=1)
    probe_ratios = np.clip(keyword_ratios(s.generation, probes), 0.0, 1.0).max(axis=1)

    def standardised(values: Matrix, probe_best: NDArray[Any]) -> Matrix:
        middle = float(np.median(probe_best))
        spread = max(float(np.quantile(probe_best, 0.9)) - middle, 1e-3)
        return ((values - middle) / spread).astype(np.float32)

    cosines = s.queries @ s.generation.vectors.T
    return 0.5 * standardised(cosines, probe_cosines) + 0.5 * standardised(np.clip(s.ratios, 0.0, 1.0), probe_ratios)


VARIANTS: list[tuple[str, Callable[[Signals, Corpus], Matrix]]] = [
    ("kefu (lead + text vector, keyword weight 0.5) = `make eval`", kefu_default),
    ("dense only (USE)", dense_only),
    ("row vector: lead counted 0.5x", row_vectors(0.5)),
    ("row vector: lead counted 1.5x", row_vectors(1.5)),
    ("mean-centred vectors (domain direction removed)", mean_centred),
    ("question clauses as extra views (max)", clause_views),
    ("unknown question words + nearest knowledge word (USE cosine >= 0.6)", neighbour_expansion(0.6)),
    ("unknown question words + nearest knowledge word (USE cosine >= 0.7)", neighbour_expansion(0.7)),
    ("channels standardised against the tenant's probes", probe_normalised),
]


def ranking_rows(corpus: Corpus, s: Signals) -> list[str]:
    records = s.generation.records
    lines = []
    for name, variant in VARIANTS:
        scores = variant(s, corpus)
        rankings = [document_ranking(records, row)[0] for row in scores]
        m = ranking_metrics(rankings, corpus.golds)
        lines.append(f"| {name} | {m['R@1']:.3f} | {m['R@5']:.3f} | {m['MRR@10']:.3f} |")
    return lines


def miss_positions(corpus: Corpus, s: Signals) -> str:
    """Where kefu's ranking puts a gold entry when it is not first: near misses or far ones."""
    rankings = [document_ranking(s.generation.records, row)[0] for row in kefu_default(s, corpus)]
    positions = [
        next((n for n, document in enumerate(ranking, start=1) if document in gold), len(ranking) + 1)
        for ranking, gold in zip(rankings, corpus.golds, strict=True)
    ]
    bins = [("2nd", 2, 2), ("3rd-5th", 3, 5), ("6th-10th", 6, 10), ("below 10th", 11, 10**9)]
    counts = ", ".join(f"{label} {sum(low <= p <= high for p in positions)}" for label, low, high in bins)
    return f"kefu's misses on {corpus.name} ({sum(p > 1 for p in positions)} questions), gold entry ranked: {counts}."


def separation_rows(corpus: Corpus, s: Signals) -> list[str]:
    """Best scores of in-scope vs out-of-scope questions, for the fusion at several keyword weights:
    AUC, and the label-peeking best answered-right share while declining >= 90% of out-of-scope."""
    from shared.knowledge.text import fold_chinese

    records = s.generation.records
    oos_cosines = s.embed([fold_chinese(q) for q in corpus.out_of_scope]) @ s.generation.vectors.T
    oos_ratios = keyword_ratios(s.generation, corpus.out_of_scope)
    cosines = s.queries @ s.generation.vectors.T
    lines = []
    for weight in (0.0, 0.35, 0.5, 0.65, 1.0):
        inside = [document_ranking(records, row) for row in fused(s.ratios, cosines, weight)]
        best_in = np.array([scores[ranking[0]] for ranking, scores in inside])
        right = np.array([ranking[0] in gold for (ranking, _), gold in zip(inside, corpus.golds, strict=True)])
        best_out = np.array([row.max() for row in fused(oos_ratios, oos_cosines, weight)])
        auc = float(np.mean(best_in[:, None] > best_out[None, :]))
        at = float(np.sort(best_out)[int(np.ceil(0.9 * len(best_out))) - 1]) + 1e-6
        answered_right = float(np.mean((best_in >= at) & right))
        lines.append(f"| {weight:.2f} | {right.mean():.3f} | {auc:.3f} | {answered_right:.3f} |")
    return lines


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    args = parser.parse_args(argv)
    now = dt.datetime.now(dt.UTC)
    out = [
        f"Produced by `python -m local.eval_variants` at {now:%Y-%m-%d %H:%M} UTC.",
        machine_line(),
        "",
    ]
    with tempfile.TemporaryDirectory(prefix="kefu-variants-") as root:
        for corpus in (telecom(args.data), stackfaq(args.data)):
            signals = signals_for(corpus, Path(root))
            out += [
                f"**{corpus.name}** ({len(corpus.documents)} documents, {len(corpus.queries)} questions)",
                "",
                "| variant | R@1 | R@5 | MRR@10 |",
                "|---|---|---|---|",
                *ranking_rows(corpus, signals),
                "",
                miss_positions(corpus, signals),
                "",
            ]
            if corpus.out_of_scope:
                out += [
                    f"{corpus.name}: in-scope vs out-of-scope best scores ({len(corpus.out_of_scope)} out-of-scope)",
                    "",
                    "| keyword weight | R@1 | AUC | answered right at >= 90% declined (label-peeking) |",
                    "|---|---|---|---|",
                    *separation_rows(corpus, signals),
                    "",
                ]
    print("\n".join(out))


if __name__ == "__main__":
    main()
