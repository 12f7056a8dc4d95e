"""Where document bytes live: immutable objects, one per revision's increment.

A PDF incremental update only appends, so a revision is the previous revision plus the
bytes its signature (or time-stamp) appended. The upload is stored as one object (a
*piece*), each later revision as one more piece holding just its increment; nothing is
ever rewritten. A piece is named by the document, where it starts and the SHA-256 of the
whole revision it completes (recorded in `document_revisions`), so any replica can rebuild
any revision from the database rows alone. A piece becomes part of a revision only when
its row is committed: a crash mid-signing leaves at most an unrecorded object (see
`sweep`), never a half revision.

Two implementations: a local directory (the embedded default, `local_store.py`) and
S3-compatible object storage (`s3_store.py`, `EVALSIGN_DOCUMENT_STORE=s3://BUCKET/PREFIX`).
Uploads first stream to a temporary file under the local working directory either way.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import BinaryIO

from evaluation.documents.revision_file import CHUNK, RevisionFile, Segment
from evaluation.kernel.errors import DomainError


class UploadTooLarge(Exception):
    def __init__(self, limit: int) -> None:
        super().__init__(f"the file is larger than {limit} bytes")
        self.limit = limit


class DocumentStoreUnavailable(DomainError):
    status = 503
    code = "document-store-unavailable"
    title = "The document store cannot be reached; nothing changed, try again"


@dataclass(frozen=True)
class Received:
    path: Path
    size: int
    sha256: str


@dataclass(frozen=True)
class Piece:
    """Bytes [start, end) of a document: the increment that makes the revision whose
    whole content has SHA-256 `sha256` (for the upload, start is 0)."""

    sha256: str
    start: int
    end: int

    @property
    def length(self) -> int:
        return self.end - self.start

    @property
    def name(self) -> str:
        return f"{self.start:012d}-{self.sha256}.pdf"

    @classmethod
    def parse(cls, name: str, size: int) -> Piece | None:
        """The piece a stored object's name stands for (its size gives the end)."""
        stem, dot, suffix = name.partition(".")
        start, dash, sha256 = stem.partition("-")
        if not (dot and suffix == "pdf" and dash and start.isdigit() and len(sha256) == 64):
            return None
        return cls(sha256, int(start), int(start) + size)


@dataclass(frozen=True)
class StoredRevision:
    """A revision as the store knows it: its document and its pieces, in order."""

    document_id: str
    pieces: tuple[Piece, ...]

    @property
    def size(self) -> int:
        return self.pieces[-1].end

    @property
    def sha256(self) -> str:
        return self.pieces[-1].sha256

    def then(self, piece: Piece) -> StoredRevision:
        return StoredRevision(self.document_id, (*self.pieces, piece))


@dataclass(frozen=True)
class StoredObject:
    """One object under the store, as `sweep` sees it."""

    document_id: str
    piece: Piece
    modified_at: datetime


class DocumentStore(ABC):
    def __init__(self, root: Path) -> None:
        self.root = root  # this replica's working directory: uploads in flight, caches

    def receive(self, source: BinaryIO, max_bytes: int) -> Received:
        """Copy an upload to a temporary file in chunks, hashing as it goes; the file is
        removed on every failure."""
        incoming = self.root / "incoming"
        incoming.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=incoming, suffix=".pdf")
        digest, size = hashlib.sha256(), 0
        try:
            with os.fdopen(fd, "wb") as out:
                while chunk := source.read(CHUNK):
                    size += len(chunk)
                    if size > max_bytes:
                        raise UploadTooLarge(max_bytes)
                    digest.update(chunk)
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
        except BaseException:
            Path(name).unlink(missing_ok=True)
            raise
        return Received(Path(name), size, digest.hexdigest())

    def discard(self, received: Received) -> None:
        received.path.unlink(missing_ok=True)

    def adopt(self, received: Received, document_id: str) -> StoredRevision:
        """Keep a received upload as the document's first piece (revision 0); the
        temporary file is gone afterwards, kept or not."""
        piece = Piece(received.sha256, 0, received.size)
        try:
            self._put_file(document_id, piece, received.path)
        finally:
            self.discard(received)
        return StoredRevision(document_id, (piece,))

    @contextmanager
    def open(self, revision: StoredRevision) -> Iterator[RevisionFile]:
        """The revision as a seekable file; appending to it writes nothing stored."""
        file = RevisionFile(self._segments(revision))
        try:
            yield file
        finally:
            file.close()

    def keep(self, revision: StoredRevision, file: RevisionFile) -> StoredRevision:
        """What was appended to `file` (opened on `revision`) stored as the next piece;
        the new revision it makes, to be recorded by the caller."""
        if file.base_size != revision.size or not file.appended():
            raise ValueError("nothing was appended to this revision")
        piece = Piece(file.sha256(), revision.size, file.size)
        self._put_bytes(revision.document_id, piece, file.appended())
        return revision.then(piece)

    def digest(self, revision: StoredRevision) -> str:
        """SHA-256 of the revision's bytes as stored now."""
        with self.open(revision) as file:
            return file.sha256()

    @abstractmethod
    def read(self, revision: StoredRevision) -> Iterator[bytes]:
        """The revision's bytes in chunks, for downloads of any size."""

    @abstractmethod
    def objects(self) -> Iterator[StoredObject]:
        """Every piece stored, recorded or not."""

    @abstractmethod
    def delete(self, document_id: str, piece: Piece) -> None: ...

    @abstractmethod
    def _put_file(self, document_id: str, piece: Piece, path: Path) -> None: ...

    @abstractmethod
    def _put_bytes(self, document_id: str, piece: Piece, data: bytes) -> None: ...

    @abstractmethod
    def _segments(self, revision: StoredRevision) -> list[Segment]:
        """The revision's pieces as open local files, in order."""


def sweep(
    store: DocumentStore,
    recorded: Callable[[str], set[tuple[str, int]]],
    older_than: datetime,
) -> list[StoredObject]:
    """Delete the objects no revision records, left by crashed signings or uploads whose
    transaction never committed. `recorded(document_id)` gives the (sha256, size) of the
    document's revisions. Only objects older than `older_than` go, so a signing or an
    upload still in flight keeps its piece."""
    removed = []
    known: dict[str, set[tuple[str, int]]] = {}
    for stored in store.objects():
        if stored.modified_at >= older_than:
            continue
        if stored.document_id not in known:
            known.clear()  # objects come grouped by document: keep one document's rows
            known[stored.document_id] = recorded(stored.document_id)
        if (stored.piece.sha256, stored.piece.end) in known[stored.document_id]:
            continue
        store.delete(stored.document_id, stored.piece)
        removed.append(stored)
    return removed


def revision_of_rows(document_id: str, rows: Sequence[tuple[int, str]]) -> StoredRevision:
    """The stored revision made of recorded revisions' (size, sha256), oldest first."""
    pieces, start = [], 0
    for size, sha256 in rows:
        pieces.append(Piece(sha256, start, size))
        start = size
    return StoredRevision(document_id, tuple(pieces))


def open_store(root: Path, location: str | None, *, cache_bytes: int) -> DocumentStore:
    """The store `EVALSIGN_DOCUMENT_STORE` names: unset for the local directory `root`,
    `s3://BUCKET/PREFIX` for object storage (with `root` as this replica's cache)."""
    # Imported here: each needs this module, and boto3 only loads where S3 is used.
    if location is None:
        from evaluation.documents.local_store import LocalDocumentStore

        return LocalDocumentStore(root)
    from evaluation.documents.s3_store import S3DocumentStore

    return S3DocumentStore(root, location, cache_bytes=cache_bytes)
