"""Turning documents into what every backend stores: chunks, their BM25 tokens and vectors."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from shared.knowledge.base import Embedder
from shared.knowledge.text import Chunk, tokenize

if TYPE_CHECKING:
    from numpy.typing import NDArray


def chunk_tokens(chunk: Chunk) -> list[str]:
    """BM25 terms of a chunk: its document's title counts as part of every chunk."""
    return tokenize(f"{chunk.title}\n{chunk.text}")


def embed_chunks(embedder: Embedder, chunks: list[Chunk]) -> NDArray[np.float32]:
    """One unit vector per chunk: the normalised sum of its title's and its text's embeddings.

    FAQ questions are usually phrased like the title; the text carries the answer's vocabulary. The
    sum matches either (on StackFAQ it beats embedding "title + text" as one string).
    """
    if not chunks:
        return np.zeros((0, embedder.dimension), dtype=np.float32)
    titles = list(dict.fromkeys(chunk.title for chunk in chunks))
    title_row = {title: n for n, title in enumerate(titles)}
    matrix = embedder.embed_matrix(titles + [chunk.text for chunk in chunks])
    title_vectors, text_vectors = matrix[: len(titles)], matrix[len(titles) :]
    combined = text_vectors + title_vectors[[title_row[chunk.title] for chunk in chunks]]
    norms = np.linalg.norm(combined, axis=1, keepdims=True)
    return (combined / np.maximum(norms, 1e-12)).astype(np.float32)
