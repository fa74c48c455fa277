"""S3HybridIndex against in-memory fakes of its ports (object store, version pointer): versions,
visibility to warm readers, concurrent writers, deletion, cleanup of old versions, the /tmp cache."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

from shared.errors import BadRequest, UpstreamError
from shared.knowledge.base import EMPTY_VERSION, Document
from shared.knowledge.local_index import LocalHybridIndex
from shared.knowledge.s3_index import (
    BUNDLE_SUFFIX,
    ObjectStore,
    Pointer,
    S3HybridIndex,
    StoredObject,
    VersionPointer,
    pack_bundle,
)
from tests.unit.test_knowledge_local_index import DOCS, FakeEmbedder


class FakeObjectStore(ObjectStore):
    """A dict of bytes with modification times, counting the calls that cost money."""

    def __init__(self) -> None:
        self.objects: dict[str, tuple[bytes, float]] = {}
        self.gets = 0
        self.puts = 0
        self.now = 1_000_000.0
        self._lock = threading.Lock()

    def get(self, key: str) -> bytes | None:
        with self._lock:
            self.gets += 1
            found = self.objects.get(key)
            return None if found is None else found[0]

    def put(self, key: str, data: bytes) -> None:
        with self._lock:
            self.puts += 1
            self.objects[key] = (data, self.now)

    def delete(self, keys: list[str]) -> None:
        with self._lock:
            for key in keys:
                self.objects.pop(key, None)

    def list(self, prefix: str) -> list[StoredObject]:
        with self._lock:
            return [StoredObject(key, when) for key, (_, when) in self.objects.items() if key.startswith(prefix)]


class FakeVersionPointer(VersionPointer):
    """Compare-and-set under a lock, as DynamoDB's conditional write; ``before_swap`` lets a test run
    another writer between a write's read of the pointer and its swap."""

    def __init__(self) -> None:
        self.pointers: dict[str, Pointer] = {}
        self.reads = 0
        self.lost_swaps = 0
        self.before_swap: list[object] = []
        self._lock = threading.Lock()

    def read(self, tenant_id: str, *, consistent: bool = False) -> Pointer | None:
        with self._lock:
            self.reads += 1
            return self.pointers.get(tenant_id)

    def swap(self, tenant_id: str, expected: str | None, new: str) -> bool:
        while self.before_swap:
            self.before_swap.pop(0)()  # type: ignore[operator]
        with self._lock:
            current = self.pointers.get(tenant_id)
            if (current.version if current else None) != expected:
                self.lost_swaps += 1
                return False
            self.pointers[tenant_id] = Pointer(new, expected)
            return True


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def store() -> FakeObjectStore:
    return FakeObjectStore()


@pytest.fixture
def pointer() -> FakeVersionPointer:
    return FakeVersionPointer()


def make_index(store: FakeObjectStore, pointer: FakeVersionPointer, cache: Path, **options: object) -> S3HybridIndex:
    options.setdefault("wall_clock", lambda: store.now)
    return S3HybridIndex(store, pointer, FakeEmbedder(), cache, **options)  # type: ignore[arg-type]


def test_an_upload_is_one_object_per_version_and_searchable(
    store: FakeObjectStore, pointer: FakeVersionPointer, tmp_path: Path
) -> None:
    index = make_index(store, pointer, tmp_path / "writer")
    assert index.version("acme") == EMPTY_VERSION and index.search("acme", "refund", 3) == []
    result = index.index("acme", DOCS)
    assert (result.documents, result.chunks) == (3, 3)
    assert result.version == index.version("acme") == pointer.pointers["kefu-chunks-use-512/acme"].version
    assert list(store.objects) == [f"kefu-chunks-use-512/acme/{result.version}{BUNDLE_SUFFIX}"]
    passages = index.search("acme", "how many days do I have to return an item?", 2)
    assert passages[0].document_id == "returns" and passages[0].url == "https://s.example/r"
    assert index.search("other", "refund", 3) == []  # another tenant sees nothing


def test_rankings_and_scores_match_the_embedded_index_it_wraps(
    store: FakeObjectStore, pointer: FakeVersionPointer, tmp_path: Path
) -> None:
    local = LocalHybridIndex(tmp_path / "local", FakeEmbedder())
    local.index("acme", DOCS)
    make_index(store, pointer, tmp_path / "writer").index("acme", DOCS)
    reader = make_index(store, pointer, tmp_path / "reader")
    for query in ("return an item for a refund", "delivery days", "怎么开电子发票？", "opening hours"):
        expected = local.search("acme", query, 3)
        found = reader.search("acme", query, 3)
        assert [p.document_id for p in found] == [p.document_id for p in expected]
        # float16 storage moves a score by rounding noise only
        assert np.allclose([p.score for p in found], [p.score for p in expected], atol=2e-3)


def test_the_stored_vectors_are_half_the_size_of_the_float32_files(
    store: FakeObjectStore, pointer: FakeVersionPointer, tmp_path: Path
) -> None:
    local = LocalHybridIndex(tmp_path / "local", FakeEmbedder())
    many = [Document(id=f"d{n}", title=f"Topic {n}", text=f"Answer number {n} about parcels.") for n in range(200)]
    version = local.index("acme", many).version
    vectors_bytes = (tmp_path / "local" / "acme" / f"vectors-{version}.npy").stat().st_size
    bundle = pack_bundle(tmp_path / "local" / "acme")
    assert len(bundle) < vectors_bytes * 0.6


def test_a_warm_reader_sees_a_new_upload_once_its_pointer_ttl_passed(
    store: FakeObjectStore, pointer: FakeVersionPointer, tmp_path: Path
) -> None:
    writer = make_index(store, pointer, tmp_path / "writer")
    writer.index("acme", DOCS[:1])
    clock = Clock()
    reader = make_index(store, pointer, tmp_path / "reader", pointer_ttl_seconds=2.0, clock=clock)
    assert [p.document_id for p in reader.search("acme", "delivery working days", 3)] == ["returns"]
    gets = store.gets
    writer.index("acme", [DOCS[1]])
    clock.now = 1.0  # within the TTL: the version this reader knows
    assert "shipping" not in {p.document_id for p in reader.search("acme", "delivery working days", 3)}
    clock.now = 2.5
    hits = reader.search_hits("acme", "delivery working days", 3)
    assert hits.passages[0].document_id == "shipping" and hits.version == writer.version("acme")
    assert store.gets == gets + 1  # one GET for the new version, none for the searches that followed
    reader.search("acme", "refund", 3)
    assert store.gets == gets + 1


def test_with_no_ttl_every_search_reads_the_pointer(
    store: FakeObjectStore, pointer: FakeVersionPointer, tmp_path: Path
) -> None:
    make_index(store, pointer, tmp_path / "writer").index("acme", DOCS)
    reader = make_index(store, pointer, tmp_path / "reader", pointer_ttl_seconds=0.0)
    reads = pointer.reads
    for _ in range(3):
        reader.search("acme", "refund", 1)
    assert pointer.reads == reads + 3 and store.gets == 1


def test_a_restarted_handler_reuses_the_unpacked_version_in_its_cache_dir(
    store: FakeObjectStore, pointer: FakeVersionPointer, tmp_path: Path
) -> None:
    make_index(store, pointer, tmp_path / "writer").index("acme", DOCS)
    make_index(store, pointer, tmp_path / "tmp").search("acme", "refund", 1)
    assert store.gets == 1
    again = make_index(store, pointer, tmp_path / "tmp")  # same /tmp, new process memory
    assert again.search("acme", "refund", 1)[0].document_id == "returns"
    assert store.gets == 1


def test_concurrent_writers_of_one_tenant_lose_no_document(
    store: FakeObjectStore, pointer: FakeVersionPointer, tmp_path: Path
) -> None:
    # Given writer A has read the pointer and built its version, writer B stores its own first
    first = make_index(store, pointer, tmp_path / "a")
    second = make_index(store, pointer, tmp_path / "b")
    first.index("acme", [DOCS[0]])
    embedder = first.embedder
    assert isinstance(embedder, FakeEmbedder)
    pointer.before_swap.append(lambda: second.index("acme", [DOCS[2]]))
    calls_before = len(embedder.calls)
    # When A swaps / Then it loses, applies its change again on B's version, and keeps both
    result = first.index("acme", [DOCS[1]])
    assert pointer.lost_swaps == 1
    assert result.version == pointer.pointers["kefu-chunks-use-512/acme"].version
    reader = make_index(store, pointer, tmp_path / "reader")
    found = {p.document_id for p in reader.search("acme", "return refund delivery 发票", 10)}
    assert found == {"returns", "shipping", "invoice"}
    # its retry did not embed again, and its losing object is gone
    assert len(embedder.calls) == calls_before + 1
    assert len(store.objects) == 3  # A's first, B's, A's retry; the lost attempt deleted


def test_threads_uploading_to_one_tenant_at_once_keep_every_document(
    store: FakeObjectStore, pointer: FakeVersionPointer, tmp_path: Path
) -> None:
    writers = [make_index(store, pointer, tmp_path / f"w{n}") for n in range(4)]
    documents = [Document(id=f"doc{n}", title=f"Topic {n}", text=f"Fact number {n} about parcels.") for n in range(8)]
    errors: list[BaseException] = []

    def upload(n: int) -> None:
        try:
            writers[n % 4].index("acme", [documents[n]])
        except BaseException as error:  # pragma: no cover - reported below
            errors.append(error)

    threads = [threading.Thread(target=upload, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    reader = make_index(store, pointer, tmp_path / "reader")
    assert {p.document_id for p in reader.search("acme", "fact about parcels", 20)} == {d.id for d in documents}


def test_deleting_a_document_makes_a_new_version_and_deleting_nothing_does_not(
    store: FakeObjectStore, pointer: FakeVersionPointer, tmp_path: Path
) -> None:
    index = make_index(store, pointer, tmp_path / "writer")
    first = index.index("acme", DOCS).version
    assert index.delete_document("acme", "returns") is True
    second = index.version("acme")
    assert second not in (first, EMPTY_VERSION)
    reader = make_index(store, pointer, tmp_path / "reader")
    assert "returns" not in {p.document_id for p in reader.search("acme", "return refund", 5)}
    puts = store.puts
    assert index.delete_document("acme", "returns") is False
    assert index.delete_document("nobody", "returns") is False
    assert index.version("acme") == second and store.puts == puts


def test_old_versions_are_deleted_once_neither_current_nor_previous_nor_recent(
    store: FakeObjectStore, pointer: FakeVersionPointer, tmp_path: Path
) -> None:
    index = make_index(store, pointer, tmp_path / "writer", keep_seconds=60)
    versions = []
    for n in range(4):
        versions.append(index.index("acme", [Document(id=f"d{n}", title="T", text=f"text {n}")]).version)
    assert len(store.objects) == 4  # all younger than keep_seconds (a writer may still point at one)
    store.now += 120
    versions.append(index.index("acme", [Document(id="d9", title="T", text="text 9")]).version)
    assert sorted(store.objects) == sorted(f"kefu-chunks-use-512/acme/{v}{BUNDLE_SUFFIX}" for v in versions[-2:])


def test_a_version_missing_from_storage_is_an_upstream_error(
    store: FakeObjectStore, pointer: FakeVersionPointer, tmp_path: Path
) -> None:
    make_index(store, pointer, tmp_path / "writer").index("acme", DOCS)
    store.objects.clear()
    with pytest.raises(UpstreamError, match="missing"):
        make_index(store, pointer, tmp_path / "reader").search("acme", "refund", 1)


def test_unsafe_tenant_ids_are_refused(store: FakeObjectStore, pointer: FakeVersionPointer, tmp_path: Path) -> None:
    index = make_index(store, pointer, tmp_path)
    with pytest.raises(BadRequest):
        index.index("../etc", DOCS)
    with pytest.raises(BadRequest):
        index.search("a/b", "refund", 1)


def test_a_function_that_writes_and_searches_keeps_serving_while_its_tmp_is_pruned(
    store: FakeObjectStore, pointer: FakeVersionPointer, tmp_path: Path
) -> None:
    # Given one function (the admin API) that searched a version and then writes two more
    clock = Clock()
    index = make_index(store, pointer, tmp_path / "tmp", pointer_ttl_seconds=60.0, clock=clock)
    index.index("acme", DOCS[:1])
    assert index.search("acme", "return refund", 1)[0].document_id == "returns"
    index.index("acme", [DOCS[1]])
    index.index("acme", [DOCS[2]])
    # Then its searches see its own last write, and /tmp holds at most the loaded and the newest version
    assert {p.document_id for p in index.search("acme", "return refund delivery 发票", 5)} == {
        "returns",
        "shipping",
        "invoice",
    }
    assert len([p for p in (tmp_path / "tmp" / "acme").iterdir() if not p.name.startswith(".")]) <= 2


def test_memory_and_tmp_hold_at_most_the_cached_tenants(
    store: FakeObjectStore, pointer: FakeVersionPointer, tmp_path: Path
) -> None:
    writer = make_index(store, pointer, tmp_path / "writer")
    writer.index("acme", DOCS[:1])
    writer.index("globex", DOCS[1:2])
    reader = make_index(store, pointer, tmp_path / "reader", cached_tenants=1)
    assert reader.search("acme", "return refund", 1)[0].document_id == "returns"
    assert reader.search("globex", "delivery days", 1)[0].document_id == "shipping"
    assert sorted(p.name for p in (tmp_path / "reader").iterdir()) == ["globex"]
    gets = store.gets
    assert reader.search("acme", "return refund", 1)[0].document_id == "returns"  # loaded again
    assert store.gets == gets + 1
