"""A pass over a PDF's raw bytes before any parser builds objects from them: nesting depth,
string length, object count and numbers, and the time spent, each within a budget. The
parsers (pyHanko, pdfium) recurse on nesting and hold whole strings as Python objects; a
hostile file would cost them seconds and gigabytes. Streams are skipped, not budgeted (their
size is the upload limit's business), except object streams, whose objects are scanned."""

from __future__ import annotations

import io
import mmap
import os
import re
import time
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import IO

__all__ = ["PdfBudget", "PdfOverBudget", "scan_pdf"]


@dataclass(frozen=True)
class PdfBudget:
    max_depth: int = 64  # arrays and dictionaries inside one another
    max_string_bytes: int = 1 << 20  # one literal or hex string, as written
    max_objects: int = 1_000_000  # "N G obj" headers, object streams' entries included
    max_object_number: int = 8_388_607  # ISO 32000-1 annex C's limit
    # One object's syntax outside its stream: pyHanko parses ~0.2 MB/s of dense references.
    max_object_bytes: int = 1 << 20
    max_object_stream_bytes: int = 32 << 20  # one object stream, inflated
    max_seconds: float = 10.0
    # Pages, counted as the page tree is walked (pades): pyHanko keeps each page it reads,
    # ~0.17 ms and ~4.5 KB a page (100,000 pages took 17 s and 476 MB). A bid document of
    # thousands of scanned pages fits; a tree of a million one-line pages does not.
    max_pages: int = 20_000
    # Form fields, counted as the AcroForm tree is walked (pades), for the same reason:
    # 100,000 empty signature fields took 20 s and 518 MB to enumerate. A report or a
    # contract has tens; a large government form, a few thousand.
    max_fields: int = 10_000


class PdfOverBudget(ValueError):
    """The file exceeds one of the budgets; `limit` names which."""

    def __init__(self, limit: str, detail: str) -> None:
        super().__init__(detail)
        self.limit = limit


_TOKEN = re.compile(
    rb"<<|>>|[\[\]()<%]"
    rb"|(?<![A-Za-z])stream(?:\r\n|\n|\r)|endobj"
    rb"|(\d+)[ \t\r\n\f\x00]+(\d+)[ \t\r\n\f\x00]+obj\b"
)
_STRING_CHARS = re.compile(rb"[()\\]")
_LINE_END = re.compile(rb"[\r\n]")
_OBJSTM = re.compile(rb"/Type\s*/ObjStm")
_FLATE = re.compile(rb"/Filter\s*(?:\[\s*)?/FlateDecode\s*\]?")
_OTHER_FILTER = re.compile(rb"/DecodeParms|/Filter\s*\[\s*/\w+\s+/")
_WINDOW = 16 << 20  # pages already scanned are given back to the kernel this often
_LOOKBACK = 4096  # how far before `stream` its dictionary is looked for


class _Scan:
    def __init__(self, budget: PdfBudget) -> None:
        self.budget = budget
        self.objects = 0
        self.deadline = time.monotonic() + budget.max_seconds

    def check_time(self) -> None:
        if time.monotonic() > self.deadline:
            raise PdfOverBudget(
                "max_seconds", f"reading the PDF took over {self.budget.max_seconds:g} s"
            )

    def count_object(self, number: int, generation: int) -> None:
        self.objects += 1
        if self.objects > self.budget.max_objects:
            raise PdfOverBudget(
                "max_objects", f"the PDF has over {self.budget.max_objects} objects"
            )
        if number > self.budget.max_object_number or generation > 65535:
            raise PdfOverBudget(
                "max_object_number",
                f"object number {number} {generation} is beyond "
                f"{self.budget.max_object_number} 65535",
            )

    def scan(self, data: mmap.mmap | bytes) -> None:
        budget = self.budget
        depth = 0
        pos = 0
        released = 0
        last_object = 0
        in_object = False
        end = len(data)
        tokens = 0
        while True:
            tokens += 1
            if tokens % 65536 == 0:
                self.check_time()
            if isinstance(data, mmap.mmap) and pos - released > _WINDOW:
                # Scanned pages leave the process's resident set (a 1 GB upload is read
                # through, never held).
                start = released - released % mmap.PAGESIZE
                data.madvise(mmap.MADV_DONTNEED, start, pos - start - pos % mmap.PAGESIZE)
                released = pos
                self.check_time()
            match = _TOKEN.search(data, pos)
            if match is None:
                return
            token = match.group(0)
            pos = match.end()
            if token in (b"<<", b"["):
                depth += 1
                if depth > budget.max_depth:
                    raise PdfOverBudget(
                        "max_depth", f"objects are nested deeper than {budget.max_depth} levels"
                    )
            elif token in (b">>", b"]"):
                depth = max(0, depth - 1)
            elif token == b"(":
                pos = self._literal(data, pos)
            elif token == b"<":
                close = data.find(b">", pos, pos + budget.max_string_bytes + 1)
                if close < 0:
                    if end - pos > budget.max_string_bytes:
                        raise self._string_too_long()
                    return
                pos = close + 1
            elif token == b"%":
                line = _LINE_END.search(data, pos)
                pos = end if line is None else line.end()
            elif token == b"endobj":
                if in_object:
                    self.check_object_size(match.start() - last_object)
                in_object = False
            elif token.startswith(b"stream"):
                if in_object:
                    self.check_object_size(match.start() - last_object)
                in_object = False
                pos = self._stream(data, last_object, match.start(), pos)
                depth = 0
            else:
                if in_object:
                    self.check_object_size(match.start() - last_object)
                self.count_object(int(match.group(1)), int(match.group(2)))
                last_object = match.start()
                in_object = True
                depth = 0

    def check_object_size(self, size: int) -> None:
        if size > self.budget.max_object_bytes:
            raise PdfOverBudget(
                "max_object_bytes",
                f"an object is over {self.budget.max_object_bytes} bytes outside its stream",
            )

    def _string_too_long(self) -> PdfOverBudget:
        limit = self.budget.max_string_bytes
        return PdfOverBudget("max_string_bytes", f"a string in the PDF is over {limit} bytes")

    def _literal(self, data: mmap.mmap | bytes, pos: int) -> int:
        start, nesting = pos, 1
        limit = start + self.budget.max_string_bytes
        while nesting:
            match = _STRING_CHARS.search(data, pos, limit + 1)
            if match is None:
                if len(data) > limit:
                    raise self._string_too_long()
                return len(data)
            char = match.group(0)
            pos = match.end()
            if char == b"\\":
                pos += 1
            elif char == b"(":
                nesting += 1
            else:
                nesting -= 1
        return pos

    def _stream(self, data: mmap.mmap | bytes, last_object: int, at: int, pos: int) -> int:
        close = _find(data, b"endstream", pos)
        stop = len(data) if close < 0 else close
        head = bytes(data[max(last_object, at - _LOOKBACK) : at])
        if _OBJSTM.search(head):
            self._object_stream(head, bytes(data[pos:stop]))
        return stop if close < 0 else close + len(b"endstream")

    def _object_stream(self, head: bytes, raw: bytes) -> None:
        if not _FLATE.search(head) or _OTHER_FILTER.search(head):
            # Predictors and filter chains are left to the parser; uncompressed object
            # streams are scanned as they are.
            if b"/Filter" in head:
                return
            self.scan(raw)
            return
        limit = self.budget.max_object_stream_bytes
        inflater = zlib.decompressobj()
        try:
            inflated = inflater.decompress(raw, limit + 1)
        except zlib.error:
            return  # the parser reports a broken stream in its own words
        if len(inflated) > limit or inflater.unconsumed_tail:
            raise PdfOverBudget(
                "max_object_stream_bytes", f"an object stream inflates to over {limit} bytes"
            )
        self._object_stream_objects(inflated)

    def _object_stream_objects(self, inflated: bytes) -> None:
        # Its header is pairs of "number offset"; each pair is one object.
        numbers = re.match(rb"\s*((?:\d+\s+\d+\s*)*)", inflated)
        pairs = numbers.group(1).split() if numbers else []
        for index in range(0, len(pairs) - 1, 2):
            self.count_object(int(pairs[index]), 0)
        self.scan(inflated)


def _find(data: mmap.mmap | bytes, needle: bytes, pos: int) -> int:
    """data.find, a window at a time, giving back a mapped file's pages behind it."""
    if not isinstance(data, mmap.mmap):
        return data.find(needle, pos)
    start = pos
    while start < len(data):
        stop = min(len(data), start + _WINDOW)
        found = data.find(needle, start, stop + len(needle))
        if found >= 0:
            return found
        aligned = start - start % mmap.PAGESIZE
        if stop - aligned > mmap.PAGESIZE:
            data.madvise(mmap.MADV_DONTNEED, aligned, stop - aligned - stop % mmap.PAGESIZE)
        start = stop
    return -1


def scan_pdf(source: Path | IO[bytes], budget: PdfBudget | None = None) -> None:
    """Raise PdfOverBudget if the PDF exceeds `budget`. A file is read through once,
    mapped, with the pages already read given back as it goes; the stream's position is
    left where it was."""
    scan = _Scan(budget or PdfBudget())
    if isinstance(source, Path):
        with source.open("rb") as handle:
            _scan_file(scan, handle)
        return
    try:
        source.fileno()
    except (AttributeError, OSError, io.UnsupportedOperation):
        position = source.tell()
        scan.scan(source.read())
        source.seek(position)
        return
    _scan_file(scan, source)


def _scan_file(scan: _Scan, handle: IO[bytes]) -> None:
    if os.fstat(handle.fileno()).st_size == 0:
        return
    with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as data:
        scan.scan(data)
    scan.check_time()
