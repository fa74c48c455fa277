"""An embedded hybrid index on local disk: BM25 (bm25s) + cosine over USE vectors, fused.

Layout, one directory per tenant under the root (``Settings.knowledge_dir``)::

    <root>/<tenant>/manifest.json           {"format", "version", "dimension", "chunks", "documents"}
    <root>/<tenant>/chunks-<version>.json   chunk records (document id/title/url/text + BM25 tokens)
    <root>/<tenant>/vectors-<version>.npy   float32 (chunks, dimension), unit rows, same order
    <root>/<tenant>/entries-<version>.npz   the FAQ entry model and its phrasings' vectors (only when
                                            the FAQ has paraphrases to learn from; entry_model.py)
    <root>/<tenant>/.lock                   writers serialise on it (flock)

A write produces a new generation (new version) and then atomically replaces the manifest that points
to it, so a reader sees either the old or the new index, never half of one, even after a crash. Readers
stat the manifest on every search and reload when another process (the admin API) replaced it.

BM25 runs on bm25s: it accepts pre-tokenised corpora (lists of str), so jieba's Chinese words go in
unchanged. The BM25 structure is rebuilt from the stored tokens when a generation is loaded (a few
milliseconds for thousands of chunks) rather than persisted in bm25s' own multi-file format, which
would need its own atomic-swap handling.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import tempfile
import threading
import uuid
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict

import numpy as np

from shared.errors import UpstreamError
from shared.knowledge.base import (
    EMPTY_VERSION,
    Document,
    DocumentSummary,
    Embedder,
    IndexResult,
    KnowledgeIndex,
    Passage,
    SearchHits,
)
from shared.knowledge.chunking import DEFAULT_MAX_CHARS, DEFAULT_OVERLAP_CHARS, chunk_document
from shared.knowledge.entry_classifier import (
    EntryModel,
    affordable,
    apply_entry_confidence,
    fit_entry_model,
    worth_fitting,
)
from shared.knowledge.ids import validate_tenant_id
from shared.knowledge.indexing import chunk_rows, embed_rows_with_leads, row_tokens
from shared.knowledge.scoring import (
    BM25_B,
    BM25_K1,
    DEFAULT_KEYWORD_WEIGHT,
    bm25_idf,
    fuse,
    keyword_ratio,
    rank_groups,
    term_bound,
)
from shared.knowledge.text import alternative_terms, fold_chinese, tokenize
from shared.knowledge.vectors import NPY_READ_LOCK, load_npy

if TYPE_CHECKING:
    from numpy.typing import NDArray

FORMAT = 2
READABLE_FORMATS = (1, 2)  # format 1 (one row per chunk, no section) reads as format 2 with defaults
MANIFEST = "manifest.json"
_LOAD_ATTEMPTS = 3


class ChunkRecord(TypedDict, total=False):
    """One index row: a chunk (display fields) matched through one lead (tokens + vector)."""

    document_id: str
    title: str
    url: str | None
    text: str
    # A tuple once loaded: tuples of strings drop out of the cyclic GC's scans, which otherwise walk
    # every token of a large index (100k chunks: ~200 ms pauses at p99).
    tokens: Sequence[str]
    chunk: int  # the chunk's ordinal in its document: rows of one chunk share it
    section: str | None
    kind: str
    lead: str


class _KeywordScorer:
    """BM25 over one tenant's chunks, returning keyword ratios (see scoring.py)."""

    def __init__(self, corpus_tokens: list[Sequence[str]]) -> None:
        import bm25s  # here, not at module import: only processes that search pay for it

        self.doc_count = len(corpus_tokens)
        self.doc_freq: Counter[str] = Counter(term for tokens in corpus_tokens for term in set(tokens))
        self._bm25 = bm25s.BM25(k1=BM25_K1, b=BM25_B, method="lucene")
        self._bm25.index([list(tokens) for tokens in corpus_tokens], show_progress=False)

    def ratios(self, query_tokens: list[str], alternatives: Sequence[str] = ()) -> NDArray[np.float32]:
        """``alternatives`` (text.alternative_terms) count only where the knowledge has them."""
        known = [term for term in alternatives if self.doc_freq.get(term)]
        terms = list(dict.fromkeys([*query_tokens, *known]))  # a repeated query word is not extra evidence
        term_ids = self._bm25.get_tokens_ids(terms)
        if term_ids:
            raw = np.asarray(self._bm25.get_scores_from_ids(term_ids), dtype=np.float32)
        else:
            raw = np.zeros(self.doc_count, dtype=np.float32)
        bound = sum(term_bound(bm25_idf(self.doc_freq.get(term, 0), self.doc_count)) for term in terms)
        return keyword_ratio(raw, bound)


@dataclass
class _EntryData:
    """The FAQ entry model of a generation, with what a later write needs to fit it again."""

    model: EntryModel
    row_entries: NDArray[np.int64]  # per row: its FAQ entry (0..n-1), -1 for other rows
    lead_vectors: NDArray[np.float32]  # the phrasing alone, for the rows with an entry, in row order

    def leads_by_row(self) -> dict[int, NDArray[np.float32]]:
        rows = np.flatnonzero(self.row_entries >= 0)
        return {int(row): self.lead_vectors[n] for n, row in enumerate(rows)}

    def to_arrays(self) -> dict[str, Any]:
        return {**self.model.to_arrays(), "row_entries": self.row_entries, "lead_vectors": self.lead_vectors}

    @classmethod
    def from_arrays(cls, arrays: Any) -> _EntryData:
        return cls(
            EntryModel.from_arrays(arrays),
            np.asarray(arrays["row_entries"], dtype=np.int64),
            np.asarray(arrays["lead_vectors"], dtype=np.float32),
        )


@dataclass
class _Generation:
    """One tenant's index as loaded from one manifest version."""

    version: str
    records: list[ChunkRecord]
    vectors: NDArray[np.float32]
    entries: _EntryData | None = None
    _keyword: _KeywordScorer | None = None
    _groups: list[int] | None = None
    _has_tokens: bool | None = None

    def groups(self) -> list[int]:
        """Per row, a number shared by the rows of the same chunk."""
        if self._groups is None:
            keys: dict[tuple[str, int], int] = {}
            self._groups = [
                keys.setdefault((record["document_id"], record.get("chunk", -1 - n)), len(keys))
                for n, record in enumerate(self.records)
            ]
        return self._groups

    def keyword_ratios(self, query_tokens: list[str], alternatives: Sequence[str] = ()) -> NDArray[np.float32]:
        if self._has_tokens is None:
            self._has_tokens = any(record["tokens"] for record in self.records)
        if not (query_tokens or alternatives) or not self._has_tokens:
            return np.zeros(len(self.records), dtype=np.float32)
        if self._keyword is None:
            self._keyword = _KeywordScorer([record["tokens"] for record in self.records])
        return self._keyword.ratios(query_tokens, alternatives)


class LocalHybridIndex(KnowledgeIndex):
    """Per-tenant hybrid index persisted under ``root``; safe to share between processes."""

    def __init__(
        self,
        root: Path,
        embedder: Embedder,
        keyword_weight: float = DEFAULT_KEYWORD_WEIGHT,
        max_chunk_chars: int = DEFAULT_MAX_CHARS,
        chunk_overlap_chars: int = DEFAULT_OVERLAP_CHARS,
    ) -> None:
        self.root = Path(root)
        self.embedder = embedder
        self.keyword_weight = keyword_weight
        self.max_chunk_chars = max_chunk_chars
        self.chunk_overlap_chars = chunk_overlap_chars
        self._cache: dict[str, tuple[tuple[int, int, int], _Generation]] = {}
        self._cache_lock = threading.Lock()

    # --- KnowledgeIndex ---

    def index(self, tenant_id: str, documents: list[Document]) -> IndexResult:
        tenant_dir = self._tenant_dir(tenant_id)
        latest = {document.id: document for document in documents}  # a repeated id: the last one wins
        chunks = [
            chunk
            for document in latest.values()
            for chunk in chunk_document(document, self.max_chunk_chars, self.chunk_overlap_chars)
        ]
        rows = chunk_rows(chunks)
        # The slow part (embedding) happens before taking the tenant's write lock.
        vectors, lead_vectors = embed_rows_with_leads(self.embedder, rows)
        records = [
            ChunkRecord(
                document_id=row.chunk.document_id,
                title=row.chunk.title,
                url=row.chunk.url,
                text=row.chunk.text,
                tokens=tuple(row_tokens(row)),
                chunk=row.chunk.ordinal,
                section=row.chunk.section,
                kind=row.chunk.kind,
                lead=row.lead,
            )
            for row in rows
        ]
        tenant_dir.mkdir(parents=True, exist_ok=True)
        with self._write_lock(tenant_dir):
            current = self._load(tenant_id, tenant_dir)
            keep = [n for n, record in enumerate(current.records) if record["document_id"] not in latest]
            known_leads = _kept_leads(current, keep)
            known_leads.update({len(keep) + n: lead_vectors[n] for n, row in enumerate(rows) if row.chunk.kind == "qa"})
            all_records = [current.records[n] for n in keep] + records
            version = self._write(
                tenant_id,
                tenant_dir,
                all_records,
                np.concatenate([current.vectors[keep], vectors]),
                previous_version=current.version,
                entries=self._fit_entries(all_records, known_leads),
            )
        return IndexResult.of(chunks, documents=len(latest), version=version)

    def search_hits(self, tenant_id: str, query: str, k: int, *, keyword_weight: float | None = None) -> SearchHits:
        tenant_dir = self._tenant_dir(tenant_id)
        generation = self._load(tenant_id, tenant_dir)
        version = generation.version or EMPTY_VERSION
        if k <= 0 or not generation.records or not query.strip():
            return SearchHits(passages=[], version=version)
        query_vector = self.embedder.embed_query(fold_chinese(query))  # embedded once, used for every row
        cosines = generation.vectors @ query_vector
        query_tokens = tokenize(query)
        ratios = generation.keyword_ratios(query_tokens, alternative_terms(query))
        weight = self.keyword_weight if keyword_weight is None else keyword_weight
        scores = fuse(ratios, cosines, weight, self.embedder.cosine_floor, self.embedder.cosine_ceiling)
        if generation.entries is not None:
            probabilities = generation.entries.model.probabilities(query_vector, query_tokens)
            scores = apply_entry_confidence(scores, generation.entries.row_entries, probabilities)
        top = rank_groups(scores, ratios, generation.groups(), k)
        passages = []
        for n in top:
            record = generation.records[n]
            passages.append(
                Passage(
                    document_id=record["document_id"],
                    title=record["title"],
                    text=record["text"],
                    url=record.get("url"),
                    section=record.get("section"),
                    score=round(float(scores[n]), 4),
                )
            )
        return SearchHits(passages=passages, version=version)

    def version(self, tenant_id: str) -> str:
        return self._load(tenant_id, self._tenant_dir(tenant_id)).version or EMPTY_VERSION

    def documents(self, tenant_id: str) -> list[DocumentSummary]:
        records = self._load(tenant_id, self._tenant_dir(tenant_id)).records
        chunks: dict[str, set[int]] = {}
        first: dict[str, ChunkRecord] = {}
        for record in records:
            chunks.setdefault(record["document_id"], set()).add(record["chunk"])
            first.setdefault(record["document_id"], record)
        return [
            DocumentSummary(
                document_id=document_id, title=first[document_id]["title"], url=first[document_id].get("url"),
                chunks=len(chunks[document_id]),
            )
            for document_id in sorted(chunks)
        ]

    def sample_questions(self, tenant_id: str, limit: int) -> list[str]:
        generation = self._load(tenant_id, self._tenant_dir(tenant_id))
        return _sample_questions(generation.records, limit)

    def delete_document(self, tenant_id: str, document_id: str) -> bool:
        tenant_dir = self._tenant_dir(tenant_id)
        if not tenant_dir.is_dir():
            return False
        with self._write_lock(tenant_dir):
            current = self._load(tenant_id, tenant_dir)
            keep = [n for n, record in enumerate(current.records) if record["document_id"] != document_id]
            if len(keep) == len(current.records):
                return False
            kept_records = [current.records[n] for n in keep]
            self._write(
                tenant_id,
                tenant_dir,
                kept_records,
                current.vectors[keep],
                previous_version=current.version,
                entries=self._fit_entries(kept_records, _kept_leads(current, keep)),
            )
        return True

    # --- storage ---

    def _fit_entries(
        self, records: list[ChunkRecord], known_leads: dict[int, NDArray[np.float32]]
    ) -> _EntryData | None:
        """The FAQ entry model for these rows (entry_model.py), or None when there is nothing to learn.
        ``known_leads``: phrasing vectors already at hand, by row; missing ones are embedded."""
        faq_rows = [n for n, record in enumerate(records) if record.get("kind") == "qa"]
        keys: dict[tuple[str, int], int] = {}
        labels = [
            keys.setdefault((records[n]["document_id"], records[n].get("chunk", -1)), len(keys)) for n in faq_rows
        ]
        if not worth_fitting(len(faq_rows), len(keys)):
            return None
        lead_tokens = [tokenize(records[n].get("lead", "")) for n in faq_rows]
        vocabulary = len({t for tokens in lead_tokens for t in tokens})
        if not affordable(len(faq_rows), len(keys), self.embedder.dimension, vocabulary):
            return None  # too large to fit on every write: keep the fused scores (no embedding for it)
        missing = [n for n in faq_rows if n not in known_leads]
        if missing:  # rows written before entry models existed, or while the FAQ was too small
            embedded = self.embedder.embed_matrix([records[n].get("lead", "") for n in missing])
            known_leads = {**known_leads, **dict(zip(missing, embedded, strict=True))}
        lead_vectors = np.stack([known_leads[n] for n in faq_rows]).astype(np.float32)
        model = fit_entry_model(lead_vectors, lead_tokens, labels)
        if model is None:
            return None
        row_entries = np.full(len(records), -1, dtype=np.int64)
        row_entries[faq_rows] = labels
        return _EntryData(model, row_entries, lead_vectors)

    def _tenant_dir(self, tenant_id: str) -> Path:
        return self.root / validate_tenant_id(tenant_id)

    def _empty(self) -> _Generation:
        return _Generation("", [], np.zeros((0, self.embedder.dimension), dtype=np.float32))

    def _load(self, tenant_id: str, tenant_dir: Path) -> _Generation:
        """The tenant's current generation: cached while the manifest file is unchanged."""
        for _ in range(_LOAD_ATTEMPTS):
            manifest_path = tenant_dir / MANIFEST
            try:
                stat = manifest_path.stat()
            except FileNotFoundError:
                return self._empty()
            # os.replace gives the manifest a new inode, so this key changes on every write.
            key = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
            with self._cache_lock:
                cached = self._cache.get(tenant_id)
            if cached is not None and cached[0] == key:
                return cached[1]
            try:
                manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
                version = str(manifest["version"])
                if cached is not None and cached[1].version == version:
                    generation = cached[1]
                else:
                    generation = self._read_generation(tenant_dir, manifest)
            except FileNotFoundError:
                # A writer replaced the manifest and removed this generation meanwhile: read again.
                continue
            with self._cache_lock:
                self._cache[tenant_id] = (key, generation)
            return generation
        raise UpstreamError(f"knowledge index of tenant {tenant_id!r} keeps changing while being read")

    def _read_generation(self, tenant_dir: Path, manifest: dict[str, Any]) -> _Generation:
        version = str(manifest["version"])
        if manifest.get("format") not in READABLE_FORMATS or manifest.get("dimension") != self.embedder.dimension:
            raise UpstreamError(
                f"knowledge index in {tenant_dir} has format {manifest.get('format')}/dimension "
                f"{manifest.get('dimension')}; expected {FORMAT}/{self.embedder.dimension}: re-index it"
            )
        records: list[ChunkRecord] = json.loads((tenant_dir / f"chunks-{version}.json").read_text("utf-8"))
        for record in records:
            record["tokens"] = tuple(record["tokens"])
        vectors = load_npy(tenant_dir / f"vectors-{version}.npy")
        if vectors.shape != (len(records), self.embedder.dimension):
            raise UpstreamError(f"knowledge index in {tenant_dir} is inconsistent: re-index it")
        entries = None
        if manifest.get("entryModel"):
            with NPY_READ_LOCK, np.load(tenant_dir / f"entries-{version}.npz", allow_pickle=False) as arrays:
                entries = _EntryData.from_arrays(arrays)
            if len(entries.row_entries) != len(records):
                raise UpstreamError(f"knowledge index in {tenant_dir} is inconsistent: re-index it")
        return _Generation(version, records, vectors.astype(np.float32, copy=False), entries)

    def _write(
        self,
        tenant_id: str,
        tenant_dir: Path,
        records: list[ChunkRecord],
        vectors: NDArray[np.float32],
        previous_version: str,
        entries: _EntryData | None = None,
    ) -> str:
        """Write a new generation, then switch the manifest to it (the atomic step). Caller holds the
        tenant's write lock. Returns the new version."""
        version = uuid.uuid4().hex
        with _atomic_file(tenant_dir / f"chunks-{version}.json") as out:
            out.write(json.dumps(records, ensure_ascii=False).encode("utf-8"))
        with _atomic_file(tenant_dir / f"vectors-{version}.npy") as out:
            np.save(out, np.ascontiguousarray(vectors, dtype=np.float32), allow_pickle=False)
        if entries is not None:
            with _atomic_file(tenant_dir / f"entries-{version}.npz") as out:
                np.savez(out, **entries.to_arrays())
        manifest = {
            "format": FORMAT,
            "version": version,
            "dimension": self.embedder.dimension,
            "chunks": len(records),
            "documents": len({record["document_id"] for record in records}),
            "entryModel": entries is not None,
        }
        with _atomic_file(tenant_dir / MANIFEST) as out:
            out.write(json.dumps(manifest).encode("utf-8"))
        _fsync_dir(tenant_dir)
        # Keep the previous generation: a reader may have read the old manifest a moment ago.
        _remove_stale_files(tenant_dir, keep={version, previous_version})
        with self._cache_lock:
            self._cache.pop(tenant_id, None)
        return version

    @contextlib.contextmanager
    def _write_lock(self, tenant_dir: Path) -> Iterator[None]:
        # flock: writers in other processes (admin API, a CLI) and other threads wait for each other.
        with open(tenant_dir / ".lock", "a+b") as lock_file:
            fcntl.flock(lock_file.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock_file.fileno(), fcntl.LOCK_UN)


def _kept_leads(generation: _Generation, keep: list[int]) -> dict[int, NDArray[np.float32]]:
    """Phrasing vectors the generation stored for the rows in ``keep``, by their new position."""
    if generation.entries is None:
        return {}
    stored = generation.entries.leads_by_row()
    return {new: stored[old] for new, old in enumerate(keep) if old in stored}


def _sample_questions(records: list[ChunkRecord], limit: int) -> list[str]:
    """FAQ questions first, then titles and sections: what visitors' questions look like."""
    faq = [record.get("lead", "") for record in records if record.get("kind") == "qa"]
    headings = [record.get("lead") or record["title"] for record in records if record.get("kind") != "qa"]
    unique = [q for q in dict.fromkeys(faq + headings) if q.strip()]
    if len(unique) <= limit:
        return unique
    step = len(unique) / limit  # an even spread over the knowledge base, deterministic
    return [unique[int(n * step)] for n in range(limit)]


@contextlib.contextmanager
def _atomic_file(path: Path) -> Iterator[Any]:
    """Write to a temporary file in the same directory, fsync it, then os.replace it into place."""
    fd, temp_name = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=path.suffix)
    try:
        with os.fdopen(fd, "wb") as out:
            yield out
            out.flush()
            os.fsync(out.fileno())
        os.replace(temp_name, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp_name)
        raise


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _remove_stale_files(tenant_dir: Path, keep: Iterable[str]) -> None:
    """Remove generations other than ``keep`` and temp files of writers that crashed (only a writer
    holding the lock creates temp files, so under the lock every one found is stale)."""
    keep_names = {f"{prefix}-{version}.{ext}" for version in keep for prefix, ext in _GENERATION_FILES}
    stale = list(tenant_dir.glob(".tmp-*"))
    for prefix, ext in _GENERATION_FILES:
        stale.extend(path for path in tenant_dir.glob(f"{prefix}-*.{ext}") if path.name not in keep_names)
    for path in stale:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


_GENERATION_FILES = (("chunks", "json"), ("vectors", "npy"), ("entries", "npz"))
