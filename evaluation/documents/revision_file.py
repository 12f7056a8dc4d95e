"""One stored revision opened as a file: its pieces (the upload, then each increment) read
in order from local files, and whatever a signing appends kept in memory past its end.

Signing appends an incremental update to the PDF and, on failure, cuts it off again. Done
on this view, the stored pieces are never written: the appended bytes (a few hundred KB)
become the next piece only when the caller keeps them, so a crash leaves nothing behind.
"""

from __future__ import annotations

import bisect
import hashlib
import io
import os
from dataclasses import dataclass
from typing import BinaryIO, cast

CHUNK = 8 * 1024 * 1024


@dataclass(frozen=True)
class Segment:
    """`length` bytes of an open local file from `offset`: one piece of the revision."""

    handle: io.BufferedReader
    offset: int
    length: int

    @classmethod
    def of(cls, path: str | os.PathLike[str], offset: int, length: int) -> Segment:
        # Closed with the RevisionFile that reads it, not here.
        return cls(open(path, "rb"), offset, length)


class RevisionFile(io.RawIOBase):
    def __init__(self, segments: list[Segment]) -> None:
        super().__init__()
        self._segments = segments
        self._starts: list[int] = []
        position = 0
        for segment in segments:
            self._starts.append(position)
            position += segment.length
        self.base_size = position
        self._tail = bytearray()
        self._position = 0

    @property
    def stream(self) -> BinaryIO:
        """This file where a binary file is expected (it is one; typing.BinaryIO is
        nominal)."""
        return cast(BinaryIO, self)

    def readable(self) -> bool:
        return True

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    @property
    def size(self) -> int:
        return self.base_size + len(self._tail)

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        if whence == os.SEEK_SET:
            position = offset
        elif whence == os.SEEK_CUR:
            position = self._position + offset
        elif whence == os.SEEK_END:
            position = self.size + offset
        else:
            raise ValueError(f"whence {whence}")
        if position < 0:
            raise OSError("negative seek position")
        self._position = position
        return position

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        # Filled across piece boundaries: readers take a short read for the end of file.
        view = memoryview(buffer).cast("B")
        done = 0
        while done < len(view) and self._position < self.size:
            got = self._read_some(view[done:])
            self._position += got
            done += got
        return done

    def _read_some(self, view: memoryview) -> int:
        position = self._position
        if position >= self.base_size:
            start = position - self.base_size
            data = self._tail[start : start + len(view)]
            view[: len(data)] = data
            return len(data)
        index = bisect.bisect_right(self._starts, position) - 1
        segment, start = self._segments[index], self._starts[index]
        within = position - start
        wanted = min(len(view), segment.length - within)
        segment.handle.seek(segment.offset + within)
        got = segment.handle.readinto(view[:wanted])
        if not got:
            raise OSError("a stored piece is shorter than its revision says")
        return got

    def write(self, data: bytes | bytearray | memoryview) -> int:  # type: ignore[override]
        # What is stored is immutable; only what this signing appended may change.
        if self._position < self.base_size:
            raise io.UnsupportedOperation("the stored revision is read-only")
        start = self._position - self.base_size
        if start > len(self._tail):
            self._tail.extend(bytes(start - len(self._tail)))
        chunk = bytes(data)
        self._tail[start : start + len(chunk)] = chunk
        self._position += len(chunk)
        return len(chunk)

    def truncate(self, size: int | None = None) -> int:
        size = self._position if size is None else size
        if size < self.base_size:
            raise io.UnsupportedOperation("the stored revision cannot be cut")
        del self._tail[size - self.base_size :]
        return size

    def appended(self) -> bytes:
        """What was written past the stored revision: the next increment, if kept."""
        return bytes(self._tail)

    def sha256(self) -> str:
        """SHA-256 of the whole file as it stands, appended bytes included."""
        digest = hashlib.sha256()
        self.seek(0)
        buffer = bytearray(CHUNK)
        while got := self.readinto(buffer):
            digest.update(memoryview(buffer)[:got])
        return digest.hexdigest()

    def close(self) -> None:
        if not self.closed:
            for segment in self._segments:
                segment.handle.close()
        super().close()
