"""The knowledge index port: tenants' documents in, ranked passages out."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING

from pydantic import BaseModel, Field

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray


class Document(BaseModel):
    """A tenant's knowledge document as the admin API receives it."""

    id: str = Field(min_length=1, max_length=256)
    title: str = Field(min_length=1, max_length=512)
    text: str = Field(min_length=1, max_length=1_000_000)
    url: str | None = Field(default=None, max_length=2048)


class Passage(BaseModel):
    """One retrieved chunk of a document, with what a citation needs."""

    document_id: str
    title: str
    text: str
    url: str | None = None
    score: float

    def snippet(self, max_chars: int = 240) -> str:
        text = " ".join(self.text.split())
        return text if len(text) <= max_chars else text[: max_chars - 1].rstrip() + "…"


class IndexResult(BaseModel):
    documents: int
    chunks: int


class KnowledgeIndex(ABC):
    """Per-tenant hybrid (keyword + vector) index. Every call is scoped to one tenant."""

    @abstractmethod
    def index(self, tenant_id: str, documents: list[Document]) -> IndexResult:
        """Add or replace documents (re-indexing a document id replaces its chunks)."""

    @abstractmethod
    def search(self, tenant_id: str, query: str, k: int) -> list[Passage]:
        """The k best passages, best first. Scores are comparable across queries (0..1)."""

    @abstractmethod
    def delete_document(self, tenant_id: str, document_id: str) -> bool:
        """Remove a document's chunks; False when it was not indexed."""


class Embedder(ABC):
    """Turns texts into unit-length dense vectors."""

    dimension: int

    @abstractmethod
    def embed(self, texts: list[str]) -> list[list[float]]: ...

    def embed_matrix(self, texts: list[str]) -> NDArray[np.float32]:
        """The embeddings as one float32 (len(texts), dimension) array; adapters may override."""
        import numpy as np

        return np.asarray(self.embed(texts), dtype=np.float32).reshape(len(texts), self.dimension)
