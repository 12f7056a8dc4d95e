"""The embedded default: document pieces as files under the data directory,
`documents/<id[:2]>/<id>/<start>-<sha256>.pdf`, each written once (temporary file, fsync,
rename) and never changed.

Before pieces, a document was one file, `documents/<id[:2]>/<id>.pdf`, appended to in
place; its recorded revisions are still read from it (each revision is a prefix of it).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from evaluation.documents.revision_file import CHUNK, Segment
from evaluation.documents.store import DocumentStore, Piece, StoredObject, StoredRevision


class LocalDocumentStore(DocumentStore):
    def _directory(self, document_id: str) -> Path:
        return self.root / document_id[:2] / document_id

    def _path(self, document_id: str, piece: Piece) -> Path:
        return self._directory(document_id) / piece.name

    def _legacy(self, document_id: str) -> Path:
        return self.root / document_id[:2] / f"{document_id}.pdf"

    def _put_file(self, document_id: str, piece: Piece, path: Path) -> None:
        target = self._path(document_id, piece)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(path, target)  # the upload was fsynced when received
        _sync_directory(target.parent)

    def _put_bytes(self, document_id: str, piece: Piece, data: bytes) -> None:
        target = self._path(document_id, piece)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=target.parent, suffix=".part")
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            os.replace(name, target)
        except BaseException:
            Path(name).unlink(missing_ok=True)
            raise
        _sync_directory(target.parent)

    def _segments(self, revision: StoredRevision) -> list[Segment]:
        segments: list[Segment] = []
        try:
            for piece in revision.pieces:
                path = self._path(revision.document_id, piece)
                if path.exists():
                    segments.append(Segment.of(path, 0, piece.length))
                else:
                    legacy = self._legacy(revision.document_id)
                    segments.append(Segment.of(legacy, piece.start, piece.length))
        except BaseException:
            for segment in segments:
                segment.handle.close()
            raise
        return segments

    def read(self, revision: StoredRevision) -> Iterator[bytes]:
        with self.open(revision) as file:
            remaining = revision.size
            while remaining > 0:
                chunk = file.read(min(CHUNK, remaining))
                if not chunk:
                    raise OSError(f"document {revision.document_id} is shorter than its revision")
                remaining -= len(chunk)
                yield chunk

    def objects(self) -> Iterator[StoredObject]:
        for path in self.root.glob("??/*/*.pdf"):
            stat = path.stat()
            piece = Piece.parse(path.name, stat.st_size)
            if piece is not None:
                modified = datetime.fromtimestamp(stat.st_mtime, UTC)
                yield StoredObject(path.parent.name, piece, modified)

    def delete(self, document_id: str, piece: Piece) -> None:
        self._path(document_id, piece).unlink(missing_ok=True)


def _sync_directory(directory: Path) -> None:
    # The rename itself must survive a power cut, not only the file's bytes.
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
