"""Where document bytes live: one append-only file per document under the data directory.

A PDF incremental update only appends, so revision N is the first `size_N` bytes of the
file: history is kept without copying gigabytes, and each revision is addressed by the
SHA-256 of its bytes (recorded in `document_revisions`). Uploads stream to a temporary file
and are renamed into place (atomic); bytes a crashed signing appended past the last
recorded revision are cut off before the next append.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

CHUNK = 8 * 1024 * 1024  # large reads: hashing a gigabyte is then bound by SHA-256 itself


class UploadTooLarge(Exception):
    def __init__(self, limit: int) -> None:
        super().__init__(f"the file is larger than {limit} bytes")
        self.limit = limit


@dataclass(frozen=True)
class Received:
    path: Path
    size: int
    sha256: str


class DocumentStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, document_id: str) -> Path:
        return self.root / document_id[:2] / f"{document_id}.pdf"

    def receive(self, source: BinaryIO, max_bytes: int) -> Received:
        """Copy an upload to a temporary file in chunks, hashing as it goes."""
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

    def adopt(self, received: Received, document_id: str) -> Path:
        """Move a received upload into place as the document's file (atomic rename)."""
        target = self.path(document_id)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(received.path, target)
        return target

    def discard(self, received: Received) -> None:
        received.path.unlink(missing_ok=True)

    def prepare_append(self, document_id: str, committed_size: int) -> Path:
        """The document's file, cut back to its last committed revision: a signing that
        crashed after appending but before its revision was recorded leaves bytes behind."""
        path = self.path(document_id)
        actual = path.stat().st_size
        if actual < committed_size:
            raise OSError(f"{path} is shorter ({actual}) than its last revision ({committed_size})")
        if actual > committed_size:
            with path.open("r+b") as handle:
                handle.truncate(committed_size)
                handle.flush()
                os.fsync(handle.fileno())
        return path

    def sync(self, document_id: str) -> None:
        with self.path(document_id).open("rb+") as handle:
            os.fsync(handle.fileno())

    def digest(self, document_id: str, size: int) -> str:
        """SHA-256 of the first `size` bytes: one revision's address."""
        digest = hashlib.sha256()
        for chunk in self.read(document_id, size):
            digest.update(chunk)
        return digest.hexdigest()

    def read(self, document_id: str, size: int) -> Iterator[bytes]:
        """A revision's bytes in chunks, for downloads of any size."""
        remaining = size
        with self.path(document_id).open("rb") as handle:
            while remaining > 0:
                chunk = handle.read(min(CHUNK, remaining))
                if not chunk:
                    raise OSError(f"document {document_id} is shorter than its revision")
                remaining -= len(chunk)
                yield chunk
