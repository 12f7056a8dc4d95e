"""Document pieces in S3-compatible object storage (AWS S3, MinIO, Ceph RGW, a cloud's),
`s3://BUCKET/PREFIX` with credentials, region and endpoint from the standard AWS_*
variables (AWS_ENDPOINT_URL for anything but AWS itself).

Objects are `PREFIX<document id>/<start>-<sha256>.pdf`, written once. Downloads stream
from the bucket; signing needs a seekable file, so the pieces it reads are spilled to a
local cache (keyed by piece, hence by revision SHA-256), bounded in bytes: memory stays
bounded for a document of any size, and a replica that has the pieces reads none again.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import boto3
from boto3.exceptions import Boto3Error
from boto3.s3.transfer import TransferConfig
from botocore.exceptions import BotoCoreError, ClientError

from evaluation.documents.revision_file import CHUNK, Segment
from evaluation.documents.store import (
    DocumentStore,
    DocumentStoreUnavailable,
    Piece,
    StoredObject,
    StoredRevision,
)

# Multipart uploads of large documents: a few 16 MiB parts in flight, bounded memory.
_TRANSFER = TransferConfig(
    multipart_threshold=64 * 1024 * 1024,
    multipart_chunksize=16 * 1024 * 1024,
    max_concurrency=4,
)

_T = TypeVar("_T")
# What "the store cannot be reached or refused" looks like from boto3 (uploads through the
# transfer manager raise boto3's own errors).
_FAILURES = (BotoCoreError, ClientError, Boto3Error)


def parse_location(location: str) -> tuple[str, str]:
    """(bucket, prefix) of `s3://BUCKET/PREFIX`; the prefix ends in "/" when not empty."""
    if not location.startswith("s3://"):
        raise ValueError(f"not an s3:// location: {location!r}")
    bucket, _, prefix = location.removeprefix("s3://").partition("/")
    if not bucket:
        raise ValueError(f"no bucket in {location!r}")
    prefix = prefix.strip("/")
    return bucket, f"{prefix}/" if prefix else ""


class S3DocumentStore(DocumentStore):
    def __init__(self, root: Path, location: str, *, cache_bytes: int, client: Any = None) -> None:
        super().__init__(root)
        self.bucket, self.prefix = parse_location(location)
        self.cache = root / "cache"
        self.cache_bytes = cache_bytes
        self.client = client if client is not None else boto3.client("s3")

    def _key(self, document_id: str, piece: Piece) -> str:
        return f"{self.prefix}{document_id}/{piece.name}"

    def _cached(self, piece: Piece) -> Path:
        # The revision's SHA-256 with its range names the bytes, whichever document has them.
        return self.cache / f"{piece.sha256}-{piece.start}-{piece.end}.pdf"

    def _put_file(self, document_id: str, piece: Piece, path: Path) -> None:
        _call(
            lambda: self.client.upload_file(
                str(path), self.bucket, self._key(document_id, piece), Config=_TRANSFER
            )
        )
        # This replica will sign it next: keep the bytes it already has.
        self.cache.mkdir(parents=True, exist_ok=True)
        os.replace(path, self._cached(piece))
        self._evict(keep={self._cached(piece)})

    def _put_bytes(self, document_id: str, piece: Piece, data: bytes) -> None:
        _call(
            lambda: self.client.put_object(
                Bucket=self.bucket, Key=self._key(document_id, piece), Body=data
            )
        )

    def _segments(self, revision: StoredRevision) -> list[Segment]:
        self.cache.mkdir(parents=True, exist_ok=True)
        segments: list[Segment] = []
        try:
            for piece in revision.pieces:
                path = self._cached(piece)
                if not path.exists():
                    self._fetch(revision.document_id, piece, path)
                # Open before evicting: an evicted piece stays readable through its handle.
                segments.append(Segment.of(path, 0, piece.length))
                os.utime(path)  # recently used, evicted last
        except BaseException:
            for segment in segments:
                segment.handle.close()
            raise
        self._evict(keep={self._cached(piece) for piece in revision.pieces})
        return segments

    def _fetch(self, document_id: str, piece: Piece, path: Path) -> None:
        fd, name = tempfile.mkstemp(dir=self.cache, suffix=".part")
        try:
            with os.fdopen(fd, "wb") as out:
                for chunk in self._chunks(document_id, piece):
                    out.write(chunk)
            if Path(name).stat().st_size != piece.length:
                raise OSError(f"object {self._key(document_id, piece)} has the wrong size")
            os.replace(name, path)
        except BaseException:
            Path(name).unlink(missing_ok=True)
            raise

    def _chunks(self, document_id: str, piece: Piece) -> Iterator[bytes]:
        key = self._key(document_id, piece)
        body = _call(lambda: self.client.get_object(Bucket=self.bucket, Key=key))["Body"]
        try:
            yield from _call(lambda: body.iter_chunks(CHUNK))
        except _FAILURES as exc:
            raise DocumentStoreUnavailable(f"reading {key}: {exc}") from exc
        finally:
            body.close()

    def _evict(self, keep: set[Path]) -> None:
        """Remove the least recently used pieces until the cache fits its bound."""
        entries = []
        for path in self.cache.glob("*.pdf"):
            try:
                stat = path.stat()
            except FileNotFoundError:  # another request evicted it meanwhile
                continue
            entries.append((stat.st_mtime, stat.st_size, path))
        total = sum(size for _, size, _ in entries)
        for _, size, path in sorted(entries):
            if total <= self.cache_bytes:
                break
            if path in keep:
                continue
            path.unlink(missing_ok=True)
            total -= size

    def read(self, revision: StoredRevision) -> Iterator[bytes]:
        for piece in revision.pieces:
            yield from self._chunks(revision.document_id, piece)

    def objects(self) -> Iterator[StoredObject]:
        paginator = self.client.get_paginator("list_objects_v2")
        for page in _call(lambda: paginator.paginate(Bucket=self.bucket, Prefix=self.prefix)):
            for entry in page.get("Contents", []):
                document_id, _, name = entry["Key"].removeprefix(self.prefix).partition("/")
                piece = Piece.parse(name, int(entry["Size"]))
                if piece is not None and document_id:
                    yield StoredObject(document_id, piece, entry["LastModified"])

    def delete(self, document_id: str, piece: Piece) -> None:
        key = self._key(document_id, piece)
        _call(lambda: self.client.delete_object(Bucket=self.bucket, Key=key))
        self._cached(piece).unlink(missing_ok=True)


def _call(action: Callable[[], _T]) -> _T:
    try:
        return action()
    except _FAILURES as exc:
        raise DocumentStoreUnavailable(str(exc)) from exc
