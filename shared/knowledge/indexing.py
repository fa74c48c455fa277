"""Turning chunks into what every backend stores: index rows, their BM25 tokens and vectors.

A chunk is matched through one row per lead (its title/section, or each phrasing of a FAQ question);
search keeps a chunk's best row. Most chunks have exactly one row.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from shared.knowledge.base import Embedder
from shared.knowledge.chunking import Chunk
from shared.knowledge.text import tokenize
from shared.knowledge.vectors import unit_rows

if TYPE_CHECKING:
    from numpy.typing import NDArray


@dataclass(frozen=True)
class Row:
    chunk: Chunk
    lead: str


def chunk_rows(chunks: list[Chunk]) -> list[Row]:
    return [Row(chunk, lead) for chunk in chunks for lead in chunk.match_leads]


def row_tokens(row: Row) -> list[str]:
    """BM25 terms of a row: its lead counts as part of the chunk's text."""
    return tokenize(f"{row.lead}\n{row.chunk.text}")


def embed_rows(embedder: Embedder, rows: list[Row]) -> NDArray[np.float32]:
    """One unit vector per row: the normalised sum of its lead's and its chunk text's embeddings.

    FAQ questions are usually phrased like the title; the text carries the answer's vocabulary. The
    sum matches either (on StackFAQ it beats embedding "title + text" as one string). Each distinct
    string is embedded once.
    """
    return embed_rows_with_leads(embedder, rows)[0]


def embed_rows_with_leads(embedder: Embedder, rows: list[Row]) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
    """``embed_rows`` and, from the same embedding pass, each row's lead alone (unit vectors): the
    FAQ entry model (entry_model.py) learns from the phrasings themselves."""
    if not rows:
        empty = np.zeros((0, embedder.dimension), dtype=np.float32)
        return empty, empty
    strings = list(dict.fromkeys([row.lead for row in rows] + [row.chunk.text for row in rows]))
    position = {text: n for n, text in enumerate(strings)}
    matrix = embedder.embed_matrix(strings)
    leads = matrix[[position[row.lead] for row in rows]]
    combined = leads + matrix[[position[row.chunk.text] for row in rows]]
    return unit_rows(combined), unit_rows(leads)
