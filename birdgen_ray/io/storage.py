"""One output location, local disk or object storage, behind fsspec.

Publishing is atomic on both: on local disk a file is written under a temporary name and renamed;
on object storage a single PUT is already all-or-nothing, so readers never see half a file.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import fsspec
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from birdgen_ray.io.errors import CorruptFile

TMP_MARKER = ".tmp-"
# The content checksum `Output.write_table` keeps in a table's footer: page checksums guard the pages,
# not the footer, where a flipped bit can rename a column or change a type.
TABLE_CHECKSUM_KEY = b"birdgen_ray.sha256"
CHECKSUM_KEYS = (TABLE_CHECKSUM_KEY, b"birdgen_ray.plan.sha256")  # plan/checksum.py's, for plans


def content_sha256(table: pa.Table) -> str:
    """SHA-256 of a table's column names, types, values and metadata (checksum keys aside), as its
    Arrow IPC stream once it has been through Parquet: what a reader gets back is hashed the same way
    as what the writer held, whatever its chunking, the bytes under its nulls or the name of its list
    items. A column name that is not UTF-8 raises UnicodeDecodeError."""
    metadata = {k: v for k, v in (table.schema.metadata or {}).items() if k not in CHECKSUM_KEYS}
    table = _through_parquet(table.replace_schema_metadata(None)).replace_schema_metadata(metadata or None)
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return hashlib.sha256(sink.getvalue()).hexdigest()


def _through_parquet(table: pa.Table) -> pa.Table:
    buffer = pa.BufferOutputStream()
    pq.write_table(table, buffer, compression="none", write_statistics=False)
    return pq.read_table(pa.BufferReader(buffer.getvalue())).combine_chunks()


def checksum_mismatch(table: pa.Table, key: bytes = TABLE_CHECKSUM_KEY) -> bool:
    """Whether the table carries a content checksum under `key` that its content does not match."""
    stored = (table.schema.metadata or {}).get(key)
    if stored is None:
        return False
    try:
        return stored.decode("latin-1") != content_sha256(table)
    except (UnicodeDecodeError, pa.ArrowException):
        return True


def read_parquet(data: bytes) -> pa.Table:
    """A whole Parquet file from its bytes, read from an Arrow-owned copy.

    Not `pq.read_table(io.BytesIO(data))`, nor a buffer over the Python bytes: Arrow's reader
    threads drop their last reference to a Python-backed source some time after the table is
    returned, and that release takes the GIL. If the interpreter is already finalising (a short
    command exiting), Python ends such a thread with pthread_exit and the C++ runtime aborts:
    "terminate called without an active exception", exit status 134. Memory Arrow allocated
    itself is released without Python.

    Page checksums (CRC32, written by `write_table` below and by `plan`) are verified: a flipped bit
    in a page is an error, never a silently changed prompt or seed. A file without them (pandas,
    older writers) reads as before.
    """
    buffer = pa.allocate_buffer(len(data))
    np.frombuffer(buffer, dtype=np.uint8)[:] = np.frombuffer(data, dtype=np.uint8)
    return pq.read_table(pa.BufferReader(buffer), page_checksum_verification=True)


@dataclass
class Output:
    """The root of one run's output, e.g. `out/` or `s3://bucket/prefix`."""

    uri: str
    storage_options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # Other processes write here all the time: never answer exists/list from a cached listing.
        options = {"use_listings_cache": False, **self.storage_options}
        self.fs, self.root = fsspec.core.url_to_fs(self.uri, **options)
        self.root = self.root.rstrip("/")
        self.is_local = "file" in _protocols(self.fs)

    # -- paths ---------------------------------------------------------------------------------
    def path(self, rel: str) -> str:
        return f"{self.root}/{rel}"

    # -- reads ---------------------------------------------------------------------------------
    def exists(self, rel: str) -> bool:
        return self.fs.exists(self.path(rel))

    def read_bytes(self, rel: str) -> bytes:
        return self.fs.cat_file(self.path(rel))

    def read_range(self, rel: str, start: int, size: int) -> bytes:
        return self.fs.cat_file(self.path(rel), start=start, end=start + size)

    def read_many(self, rels: list[str], workers: int = 16) -> dict[str, bytes]:
        """Several whole files, fetched concurrently off local disk; a file that vanished is skipped."""

        def fetch(rel: str) -> bytes | None:
            try:
                return self.read_bytes(rel)
            except FileNotFoundError:
                return None

        if self.is_local or len(rels) < 2:
            blobs = map(fetch, rels)
        else:  # one request per shard index: thousands of them on a big run, so not one by one
            with ThreadPoolExecutor(max_workers=workers) as pool:
                blobs = list(pool.map(fetch, rels))
        return {rel: data for rel, data in zip(rels, blobs) if data is not None}

    def size(self, rel: str) -> int:
        """The stored size of one file in bytes."""
        return int(self.fs.size(self.path(rel)))

    def sizes(self, rel_dir: str) -> dict[str, int]:
        """Name -> size of every file in a folder, from one listing (one request on object storage)."""
        try:
            entries = self.fs.ls(self.path(rel_dir), detail=True, refresh=True)
        except FileNotFoundError:
            return {}
        return {e["name"].rstrip("/").rsplit("/", 1)[-1]: int(e.get("size") or 0) for e in entries}

    def read_json(self, rel: str) -> dict:
        return json.loads(self.read_bytes(rel))

    def read_table(self, rel: str) -> pa.Table:
        """A Parquet file of the output; a checksum mismatch or unparsable bytes raise CorruptFile naming it."""
        data = self.read_bytes(rel)
        where = f"{str(self.uri).rstrip('/')}/{rel}"
        try:
            table = read_parquet(data)
        except (pa.ArrowException, OSError) as exc:
            raise CorruptFile(where, str(exc).strip().splitlines()[0]) from None
        if checksum_mismatch(table):
            raise CorruptFile(where, "its content checksum does not match (a changed value, column name or type)")
        return table

    def list(self, rel_dir: str, suffix: str = "") -> list[str]:
        """Names (not paths) of the files in a folder, temporary files excluded, sorted."""
        try:
            entries = self.fs.ls(self.path(rel_dir), detail=False, refresh=True)
        except FileNotFoundError:
            return []
        names = (e.rstrip("/").rsplit("/", 1)[-1] for e in entries)
        return sorted(n for n in names if n.endswith(suffix) and TMP_MARKER not in n)

    # -- writes --------------------------------------------------------------------------------
    def write_bytes(self, rel: str, data: bytes) -> None:
        """Publish `data` at `rel` atomically."""
        target = self.path(rel)
        if not self.is_local:
            self.fs.pipe_file(target, data)
            return
        write_file_atomic(target, data)

    def write_json(self, rel: str, obj: Any) -> None:
        self.write_bytes(rel, json.dumps(obj, indent=2, sort_keys=True).encode())

    def write_table(self, rel: str, table: pa.Table) -> None:
        """Zstd Parquet with page checksums and a content checksum (read_table verifies both)."""
        metadata = {**(table.schema.metadata or {}), TABLE_CHECKSUM_KEY: content_sha256(table).encode()}
        table = table.replace_schema_metadata(metadata)
        buf = io.BytesIO()
        pq.write_table(table, buf, compression="zstd", write_page_checksum=True)
        self.write_bytes(rel, buf.getvalue())

    def create_exclusive(self, rel: str, data: bytes) -> bool:
        """Create `rel` with `data` only if it does not exist; False if it already does (the lease).

        Never a half-written file: on local disk the data goes to a temporary file that is then
        hard-linked into place (link fails if the target exists); on object storage it is one
        conditional PUT.
        """
        target = self.path(rel)
        if self.is_local:
            os.makedirs(os.path.dirname(target), exist_ok=True)
            tmp = _write_temporary(target, data)
            try:
                os.link(tmp, target)
            except FileExistsError:
                return False
            finally:
                os.remove(tmp)
            return True
        try:
            with self.fs.open(target, "xb") as fh:
                fh.write(data)
        except FileExistsError:
            return False
        return True

    def remove(self, rel: str) -> None:
        try:
            self.fs.rm_file(self.path(rel))
        except FileNotFoundError:
            pass

    def remove_leftovers(self, rel_dir: str) -> int:
        """Delete temporary files a crashed local writer left behind; returns how many."""
        if not self.is_local or not os.path.isdir(self.path(rel_dir)):
            return 0
        removed = 0
        for name in os.listdir(self.path(rel_dir)):
            if TMP_MARKER in name:
                try:
                    os.remove(os.path.join(self.path(rel_dir), name))
                    removed += 1
                except FileNotFoundError:
                    pass
        return removed


def write_file_atomic(path: str | os.PathLike, data: bytes) -> None:
    """Write a local file under a unique temporary name, then rename: readers never see half a file."""
    path = os.fspath(path)
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    os.replace(_write_temporary(path, data), path)


def _write_temporary(path: str, data: bytes) -> str:
    """`data` in a new temporary file beside `path`; removed again if writing fails (a full disk)."""
    tmp = f"{path}{TMP_MARKER}{uuid.uuid4().hex[:8]}"
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
    except BaseException:
        try:
            os.remove(tmp)
        except OSError:
            pass
        raise
    return tmp


def _protocols(fs) -> tuple[str, ...]:
    proto = fs.protocol
    return (proto,) if isinstance(proto, str) else tuple(proto)
