"""The embedded hybrid index (local_index.py) kept on S3, one object per tenant and knowledge version,
with the current version named by a pointer item in DynamoDB. No server runs, so nothing costs while
no one asks: a search is one pointer read (or none, within ``pointer_ttl_seconds``) plus the
in-memory index; a function's first search of a version pays one S3 GET.

Objects, under ``<prefix><tenant>/``::

    <version>.kidx     a zip: manifest.json, chunks.json (deflated), vectors.npy (float16, half the
                       size of the float32 the index searches with), entries.npz when the FAQ has an
                       entry model

A write (upload or delete) reads the current version, applies the change to a copy of it with the
embedded index itself (``LocalHybridIndex`` in a scratch folder: same chunking, embedding, entry model
and scoring), uploads the new version's object, then moves the pointer with a conditional write
(only if it still names the version the change was applied to). A writer that loses that race
deletes its object and applies its change again on the winner's version, so concurrent uploads of one
tenant never lose a document; embeddings are kept across attempts, so a retry does not embed again.

Readers keep each tenant's loaded version in memory and its unpacked files in ``cache_dir`` (Lambda's
``/tmp``): a warm function that sees a new pointer loads that version; one that restarts in the same
sandbox unpacks nothing again. Old versions are deleted by the writer that replaced them, once they
are older than ``keep_seconds`` and neither current nor previous (a reader may still be loading the
previous one; a writer still running may be about to point at its own new object).
"""

from __future__ import annotations

import contextlib
import functools
import io
import json
import shutil
import tempfile
import threading
import time
import zipfile
from abc import ABC, abstractmethod
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from shared.errors import UpstreamError
from shared.knowledge.base import (
    EMPTY_VERSION,
    Document,
    DocumentSummary,
    Embedder,
    IndexResult,
    KnowledgeIndex,
    SearchHits,
)
from shared.knowledge.ids import validate_tenant_id
from shared.knowledge.local_index import MANIFEST, LocalHybridIndex
from shared.knowledge.vectors import load_npy, unit_rows

if TYPE_CHECKING:
    from numpy.typing import NDArray

BUNDLE_SUFFIX = ".kidx"
# A change applied this many times in a row on a version another writer replaced meanwhile fails
# (one tenant's uploads are rarely concurrent; each attempt reuses the embeddings of the first).
WRITE_ATTEMPTS = 8


# --- ports ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StoredObject:
    key: str
    modified: float  # epoch seconds


class ObjectStore(ABC):
    """The few object-storage calls the index needs (S3 in AWS and locally through moto)."""

    @abstractmethod
    def get(self, key: str) -> bytes | None:
        """The object's bytes, or None when there is no such object."""

    @abstractmethod
    def put(self, key: str, data: bytes) -> None: ...

    @abstractmethod
    def delete(self, keys: list[str]) -> None: ...

    @abstractmethod
    def list(self, prefix: str) -> list[StoredObject]: ...


@dataclass(frozen=True)
class Pointer:
    version: str
    previous: str | None = None


class VersionPointer(ABC):
    """The current version of each index (one tenant under one embedder's prefix, ``<prefix><tenant>``),
    moved only by compare-and-set."""

    @abstractmethod
    def read(self, index_key: str, *, consistent: bool = False) -> Pointer | None:
        """None: nothing was ever indexed there."""

    @abstractmethod
    def swap(self, index_key: str, expected: str | None, new: str) -> bool:
        """Point at ``new`` if the pointer still names ``expected`` (None: no pointer yet), keeping
        ``expected`` as the previous version; False when another writer moved it first."""


# --- the index -----------------------------------------------------------------------------------


class S3HybridIndex(KnowledgeIndex):
    """``LocalHybridIndex`` per tenant and version, stored in an ObjectStore, current by a VersionPointer."""

    def __init__(
        self,
        objects: ObjectStore,
        pointer: VersionPointer,
        embedder: Embedder,
        cache_dir: Path,
        *,
        prefix: str = "kefu-chunks-use-512/",
        pointer_ttl_seconds: float = 1.0,
        keep_seconds: float = 900.0,
        cached_tenants: int = 16,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        **index_options: Any,
    ) -> None:
        self.objects = objects
        self.pointer = pointer
        self.embedder = embedder
        self.cache_dir = Path(cache_dir)
        self.prefix = prefix
        self.pointer_ttl_seconds = pointer_ttl_seconds
        self.keep_seconds = keep_seconds
        self.cached_tenants = cached_tenants
        self._clock = clock
        self._wall_clock = wall_clock
        self._index_options = index_options
        # tenant -> (when read, version or None)
        self._pointers: dict[str, tuple[float, str | None]] = {}
        # tenant -> (version, the loaded index); least recently used first
        self._loaded: OrderedDict[str, tuple[str, LocalHybridIndex]] = OrderedDict()
        self._lock = threading.Lock()
        self._tenant_locks: dict[str, threading.Lock] = {}

    # --- KnowledgeIndex ---

    def index(self, tenant_id: str, documents: list[Document]) -> IndexResult:
        result: IndexResult = self._write(tenant_id, lambda writer: writer.index(tenant_id, documents))
        return result

    def delete_document(self, tenant_id: str, document_id: str) -> bool:
        deleted: bool = self._write(tenant_id, lambda writer: writer.delete_document(tenant_id, document_id))
        return deleted

    def search_hits(self, tenant_id: str, query: str, k: int, *, keyword_weight: float | None = None) -> SearchHits:
        loaded = self._current(tenant_id)
        if loaded is None:
            return SearchHits(passages=[], version=EMPTY_VERSION)
        return loaded.search_hits(tenant_id, query, k, keyword_weight=keyword_weight)

    def version(self, tenant_id: str) -> str:
        return self._pointed(tenant_id) or EMPTY_VERSION

    def sample_questions(self, tenant_id: str, limit: int) -> list[str]:
        loaded = self._current(tenant_id)
        return [] if loaded is None else loaded.sample_questions(tenant_id, limit)

    def documents(self, tenant_id: str) -> list[DocumentSummary]:
        loaded = self._current(tenant_id)
        return [] if loaded is None else loaded.documents(tenant_id)

    # --- reading ---

    def index_key(self, tenant_id: str) -> str:
        """The tenant's index under this prefix (the embedder's): its pointer and its objects' folder."""
        return f"{self.prefix}{validate_tenant_id(tenant_id)}"

    def key(self, tenant_id: str, version: str) -> str:
        return f"{self.index_key(tenant_id)}/{version}{BUNDLE_SUFFIX}"

    def _pointed(self, tenant_id: str) -> str | None:
        """The current version, read again once ``pointer_ttl_seconds`` passed since the last read."""
        validate_tenant_id(tenant_id)
        now = self._clock()
        with self._lock:
            cached = self._pointers.get(tenant_id)
        if cached is not None and now - cached[0] < self.pointer_ttl_seconds:
            return cached[1]
        pointer = self.pointer.read(self.index_key(tenant_id))
        version = pointer.version if pointer else None
        self._remember_pointer(tenant_id, version, now)
        return version

    def _remember_pointer(self, tenant_id: str, version: str | None, when: float) -> None:
        with self._lock:
            if len(self._pointers) > 10_000:
                self._pointers.clear()
            self._pointers[tenant_id] = (when, version)

    def _current(self, tenant_id: str) -> LocalHybridIndex | None:
        version = self._pointed(tenant_id)
        return None if version is None else self._open(tenant_id, version)

    def _open(self, tenant_id: str, version: str) -> LocalHybridIndex:
        """The loaded index of this version: from memory, else from ``cache_dir``, else from the store."""
        with self._lock:
            loaded = self._loaded.get(tenant_id)
            if loaded is not None and loaded[0] == version:
                self._loaded.move_to_end(tenant_id)
                return loaded[1]
            tenant_lock = self._tenant_locks.setdefault(tenant_id, threading.Lock())
        with tenant_lock:  # one download per tenant and version, however many threads ask
            with self._lock:
                loaded = self._loaded.get(tenant_id)
            if loaded is not None and loaded[0] == version:
                return loaded[1]
            root = self._version_dir(tenant_id, version)
            if not (root / tenant_id / MANIFEST).is_file():
                data = self.objects.get(self.key(tenant_id, version))
                if data is None:
                    raise UpstreamError(f"knowledge version {version} of tenant {tenant_id!r} is missing from storage")
                self._install(tenant_id, version, lambda target: unpack_bundle(data, target))
            index = LocalHybridIndex(root, self.embedder, **self._index_options)
            index.version(tenant_id)  # load it now, under the lock, not in the first search
            with self._lock:
                replaced = self._loaded.get(tenant_id)
                self._loaded[tenant_id] = (version, index)
                self._loaded.move_to_end(tenant_id)
                evicted = []
                while len(self._loaded) > self.cached_tenants:
                    evicted.append(self._loaded.popitem(last=False)[0])
            for other in evicted:  # /tmp stays bounded like memory: at most cached_tenants tenants
                shutil.rmtree(self.cache_dir / other, ignore_errors=True)
            # The replaced version's files stay until the next switch: a search running on it in
            # another thread still reads its manifest.
            self._prune_cache_dir(tenant_id, keep={version, replaced[0] if replaced else version})
            return index

    def _version_dir(self, tenant_id: str, version: str) -> Path:
        return self.cache_dir / validate_tenant_id(tenant_id) / version

    def _install(self, tenant_id: str, version: str, fill: Callable[[Path], None]) -> None:
        """Fill a new folder, then rename it into ``cache_dir`` (a half-written one is never used)."""
        target = self._version_dir(tenant_id, version)
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = Path(tempfile.mkdtemp(dir=target.parent, prefix=".tmp-"))
        try:
            fill(partial / tenant_id)
            try:
                partial.rename(target)
            except OSError:  # another process of this sandbox installed it first: same content
                pass
        finally:
            shutil.rmtree(partial, ignore_errors=True)

    def _prune_cache_dir(self, tenant_id: str, keep: set[str]) -> None:
        """Remove this tenant's other versions from ``cache_dir`` (Lambda's /tmp is small)."""
        tenant_dir = self.cache_dir / tenant_id
        with contextlib.suppress(FileNotFoundError):
            for path in tenant_dir.iterdir():
                if path.name not in keep and not path.name.startswith(".tmp-"):
                    shutil.rmtree(path, ignore_errors=True)

    # --- writing ---

    def _write(self, tenant_id: str, change: Callable[[LocalHybridIndex], Any]) -> Any:
        validate_tenant_id(tenant_id)
        embedder = _RememberingEmbedder(self.embedder)
        for _ in range(WRITE_ATTEMPTS):
            base = self.pointer.read(self.index_key(tenant_id), consistent=True)
            base_version = base.version if base else None
            with tempfile.TemporaryDirectory(prefix="kefu-write-") as scratch:
                root = Path(scratch)
                if base_version is not None:
                    self._copy_version(tenant_id, base_version, root / tenant_id)
                writer = LocalHybridIndex(root, embedder, **self._index_options)
                outcome = change(writer)
                new_version = writer.version(tenant_id)
                if outcome is False or new_version == (base_version or EMPTY_VERSION):
                    return outcome  # nothing changed (a document that was not there)
                key = self.key(tenant_id, new_version)
                bundle = pack_bundle(root / tenant_id)
                self.objects.put(key, bundle)
                if not self.pointer.swap(self.index_key(tenant_id), base_version, new_version):
                    self.objects.delete([key])  # another writer moved the pointer: apply on its version
                    continue
                # This process serves the new version at once, from what it just stored (the same
                # float16-rounded vectors every other reader gets).
                self._install(tenant_id, new_version, functools.partial(unpack_bundle, bundle))
            with self._lock:
                loaded = self._loaded.get(tenant_id)
            self._prune_cache_dir(tenant_id, keep={new_version, loaded[0] if loaded else new_version})
            self._remember_pointer(tenant_id, new_version, self._clock())
            self._remove_old_versions(tenant_id, keep={new_version, base_version})
            return outcome
        raise UpstreamError(f"knowledge of tenant {tenant_id!r} is changed by other writers; try again")

    def _copy_version(self, tenant_id: str, version: str, target: Path) -> None:
        """The files of ``version`` in ``target`` (from ``cache_dir`` when this process has them)."""
        cached = self._version_dir(tenant_id, version) / tenant_id
        if (cached / MANIFEST).is_file():
            with contextlib.suppress(FileNotFoundError, shutil.Error):  # pruned meanwhile: fetch it instead
                shutil.copytree(cached, target)
                return
            shutil.rmtree(target, ignore_errors=True)
        data = self.objects.get(self.key(tenant_id, version))
        if data is None:
            raise UpstreamError(f"knowledge version {version} of tenant {tenant_id!r} is missing from storage")
        unpack_bundle(data, target)

    def _remove_old_versions(self, tenant_id: str, keep: set[str | None]) -> None:
        """Delete this tenant's objects that are neither kept nor younger than ``keep_seconds``."""
        keep_keys = {self.key(tenant_id, version) for version in keep if version}
        cutoff = self._wall_clock() - self.keep_seconds
        try:
            stale = [
                item.key
                for item in self.objects.list(f"{self.index_key(tenant_id)}/")
                if item.key not in keep_keys and item.modified < cutoff
            ]
            if stale:
                self.objects.delete(stale)
        except Exception:  # the write succeeded; the next one removes what this one could not
            from shared.observability import logger

            logger.exception("could not remove old knowledge versions", extra={"tenant_id": tenant_id})


class _RememberingEmbedder(Embedder):
    """Embeds each distinct text once per write, so a write retried on a newer version (another
    writer won the pointer) does not pay for its embeddings again."""

    def __init__(self, inner: Embedder) -> None:
        self.inner = inner
        self.dimension = inner.dimension
        self.cosine_floor = inner.cosine_floor
        self.cosine_ceiling = inner.cosine_ceiling
        self._known: dict[str, NDArray[np.float32]] = {}

    def embed(self, texts: list[str]) -> list[list[float]]:
        return [list(map(float, row)) for row in self.embed_matrix(texts)]

    def embed_matrix(self, texts: list[str]) -> NDArray[np.float32]:
        missing = list(dict.fromkeys(text for text in texts if text not in self._known))
        if missing:
            self._known.update(zip(missing, self.inner.embed_matrix(missing), strict=True))
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        return np.stack([self._known[text] for text in texts]).astype(np.float32, copy=False)

    def embed_query(self, query: str) -> NDArray[np.float32]:
        return self.inner.embed_query(query)


# --- the stored form of one version ----------------------------------------------------------------

BUNDLE_FORMAT = 1


def pack_bundle(tenant_dir: Path) -> bytes:
    """The current generation of a LocalHybridIndex tenant folder as one zip (vectors as float16)."""
    manifest = json.loads((tenant_dir / MANIFEST).read_text(encoding="utf-8"))
    version = str(manifest["version"])
    vectors = load_npy(tenant_dir / f"vectors-{version}.npy")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as bundle:
        bundle.writestr("bundle.json", json.dumps({"format": BUNDLE_FORMAT, "vectors": "float16"}))
        bundle.writestr(MANIFEST, json.dumps(manifest))
        bundle.writestr(
            "chunks.json",
            (tenant_dir / f"chunks-{version}.json").read_bytes(),
            compress_type=zipfile.ZIP_DEFLATED,
            compresslevel=6,
        )
        half = io.BytesIO()
        np.save(half, vectors.astype(np.float16), allow_pickle=False)
        bundle.writestr("vectors.npy", half.getvalue())  # stored: float16 noise hardly compresses
        entries = tenant_dir / f"entries-{version}.npz"
        if entries.is_file():
            bundle.writestr("entries.npz", entries.read_bytes())
    return buffer.getvalue()


def unpack_bundle(data: bytes, tenant_dir: Path) -> None:
    """A bundle back into LocalHybridIndex's files (vectors float32 again, rows re-normalised)."""
    tenant_dir.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(io.BytesIO(data)) as bundle:
        header = json.loads(bundle.read("bundle.json"))
        if header.get("format") != BUNDLE_FORMAT:
            raise UpstreamError(f"knowledge bundle format {header.get('format')} is not readable; re-index")
        manifest = json.loads(bundle.read(MANIFEST))
        version = str(manifest["version"])
        (tenant_dir / f"chunks-{version}.json").write_bytes(bundle.read("chunks.json"))
        half = load_npy(io.BytesIO(bundle.read("vectors.npy")))
        np.save(tenant_dir / f"vectors-{version}.npy", unit_rows(half), allow_pickle=False)
        if "entries.npz" in bundle.namelist():
            (tenant_dir / f"entries-{version}.npz").write_bytes(bundle.read("entries.npz"))
        # Last: the manifest is what makes the folder a readable index.
        (tenant_dir / MANIFEST).write_text(json.dumps(manifest), encoding="utf-8")
