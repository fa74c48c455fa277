"""The knowledge index port: tenants' documents in, ranked passages out."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, Field, model_validator

from shared.state.records import Citation

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

    from shared.knowledge.chunking import Chunk

BlockKind = Literal["text", "qa", "table"]
MAX_DOCUMENT_CHARS = 1_000_000


class Block(BaseModel):
    """One structural piece of a document, as the parsers (shared/ingest) produce it.

    - ``text``: prose under a heading; split on sentence boundaries.
    - ``qa``: a FAQ entry; ``questions[0]`` is the question, the rest are other phrasings of it; the
      answer is ``text``. Always one chunk (a Q/A pair is never split).
    - ``table``: ``header`` + ``rows``; split between rows, the header repeated in every chunk.
    """

    kind: BlockKind = "text"
    # Where the block sits in the document ("Returns > Refunds"); cited with the passage.
    section: str | None = Field(default=None, max_length=512)
    text: str = Field(default="", max_length=MAX_DOCUMENT_CHARS)
    questions: list[str] = Field(default_factory=list, max_length=200)
    header: list[str] = Field(default_factory=list, max_length=200)
    rows: list[list[str]] = Field(default_factory=list, max_length=100_000)

    @model_validator(mode="after")
    def _complete(self) -> Block:
        if self.kind == "qa" and not (self.questions and any(q.strip() for q in self.questions)):
            raise ValueError("a qa block needs at least one question")
        if self.kind == "table" and not self.rows:
            raise ValueError("a table block needs rows")
        if self.kind == "text" and not self.text.strip():
            raise ValueError("a text block needs text")
        return self


class Document(BaseModel):
    """A tenant's knowledge document as the admin API receives it: plain ``text``, or ``blocks``."""

    id: str = Field(min_length=1, max_length=256)
    title: str = Field(min_length=1, max_length=512)
    text: str = Field(default="", max_length=MAX_DOCUMENT_CHARS)
    url: str | None = Field(default=None, max_length=2048)
    blocks: list[Block] | None = Field(default=None, max_length=100_000)

    @model_validator(mode="after")
    def _has_content(self) -> Document:
        if not self.text and not self.blocks:
            raise ValueError("a document needs text or blocks")
        return self


class Passage(BaseModel):
    """One retrieved chunk of a document, with what a citation needs."""

    document_id: str
    title: str
    text: str
    url: str | None = None
    section: str | None = None
    score: float

    def snippet(self, max_chars: int = 240) -> str:
        text = " ".join(self.text.split())
        return text if len(text) <= max_chars else text[: max_chars - 1].rstrip() + "…"

    def citation(self) -> Citation:
        return Citation(document_id=self.document_id, title=self.title, snippet=self.snippet(), url=self.url)


class IndexResult(BaseModel):
    documents: int
    chunks: int
    # The tenant's knowledge version after the write (see KnowledgeIndex.version).
    version: str = ""
    # Chunks stored for each document written.
    chunks_by_document: dict[str, int] = Field(default_factory=dict)

    @classmethod
    def of(cls, chunks: Sequence[Chunk], documents: int, version: str) -> IndexResult:
        counts = Counter(chunk.document_id for chunk in chunks)
        return cls(documents=documents, chunks=len(chunks), version=version, chunks_by_document=dict(counts))


class DocumentSummary(BaseModel):
    """One document of a tenant's knowledge base, as a listing shows it (its id is what delete takes)."""

    document_id: str
    title: str
    url: str | None = None
    chunks: int


class SearchHits(BaseModel):
    """Passages and the knowledge version they were read from (one consistent snapshot)."""

    passages: list[Passage]
    version: str


EMPTY_VERSION = "empty"


class KnowledgeIndex(ABC):
    """Per-tenant hybrid (keyword + vector) index. Every call is scoped to one tenant."""

    @abstractmethod
    def index(self, tenant_id: str, documents: list[Document]) -> IndexResult:
        """Add or replace documents (re-indexing a document id replaces its chunks)."""

    @abstractmethod
    def search_hits(self, tenant_id: str, query: str, k: int, *, keyword_weight: float | None = None) -> SearchHits:
        """The k best passages, best first, with the version searched. Scores are absolute (0..1):
        comparable across queries, so one threshold means the same for every question.
        ``keyword_weight`` (0..1) overrides the index's default weight of the BM25 side."""

    @abstractmethod
    def delete_document(self, tenant_id: str, document_id: str) -> bool:
        """Remove a document's chunks; False when it was not indexed."""

    @abstractmethod
    def documents(self, tenant_id: str) -> list[DocumentSummary]:
        """Every document of the tenant, sorted by id."""

    @abstractmethod
    def version(self, tenant_id: str) -> str:
        """An opaque token that changes whenever the tenant's searchable knowledge changes (any add,
        replace or delete); caches of answers key on it."""

    def search(self, tenant_id: str, query: str, k: int, *, keyword_weight: float | None = None) -> list[Passage]:
        """The k best passages, best first (see ``search_hits``)."""
        return self.search_hits(tenant_id, query, k, keyword_weight=keyword_weight).passages

    def sample_questions(self, tenant_id: str, limit: int) -> list[str]:
        """Up to ``limit`` questions the knowledge answers (FAQ questions, titles, sections), for
        threshold calibration. Adapters override; the default knows none."""
        return []


class Embedder(ABC):
    """Turns texts into unit-length dense vectors."""

    dimension: int
    # Cosines at or below the floor count as no evidence, at or above the ceiling as full evidence
    # (scoring.dense_evidence). Each model has its own range: these defaults suit USE multilingual.
    cosine_floor: float = 0.2
    cosine_ceiling: float = 0.8

    @abstractmethod
    def embed(self, texts: list[str]) -> list[list[float]]: ...

    def embed_matrix(self, texts: list[str]) -> NDArray[np.float32]:
        """The embeddings as one float32 (len(texts), dimension) array; adapters may override."""
        import numpy as np

        return np.asarray(self.embed(texts), dtype=np.float32).reshape(len(texts), self.dimension)

    def embed_query(self, query: str) -> NDArray[np.float32]:
        """One query's vector. Models with separate query/document modes (Cohere) override it."""
        vector: NDArray[np.float32] = self.embed_matrix([query])[0]
        return vector
