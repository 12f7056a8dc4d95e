"""Reading and writing the PDF files themselves: the budget check before parsing, the
locked append-then-roll-back of a signature's revision, `check_pdf`."""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, BinaryIO, cast

from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.misc import PdfError
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.fields import (
    enumerate_sig_fields,
)

from signing.pdf_budget import PdfBudget, PdfOverBudget, scan_pdf

# Hashing reads the file in chunks of this size (pyHanko's default is 4 KiB: 250 000 reads
# for a 1 GB file). The chunk is the only part of the document held in memory.
CHUNK_SIZE = 1 << 20
DIGEST_ALGORITHM = "sha256"


class PdfRejected(Exception):
    """The input is not a PDF we accept: not a PDF at all, encrypted, structurally
    broken (bad cross-reference table, truncated) or over a reading budget (`limit`
    names which, see pdf_budget)."""

    def __init__(self, detail: str, *, limit: str | None = None) -> None:
        super().__init__(detail)
        self.limit = limit


def within_budget(source: Path | IO[bytes]) -> None:
    # Before any parser builds objects from bytes someone else made.
    try:
        scan_pdf(source)
    except PdfOverBudget as exc:
        raise PdfRejected(str(exc), limit=exc.limit) from exc


@dataclass(frozen=True)
class PdfInfo:
    page_count: int
    page_sizes: list[tuple[float, float]]
    signature_fields: list[str]
    signed_fields: list[str]
    encrypted: bool = False


# --- files ---------------------------------------------------------------------------------


def check_header(stream: IO[bytes]) -> None:
    stream.seek(0)
    # ISO 32000 allows junk before the header; readers accept it within the first 1 KiB.
    if b"%PDF-" not in stream.read(1024):
        raise PdfRejected("not a PDF file (no %PDF- header)")
    stream.seek(0)


def open_reader(stream: IO[bytes]) -> PdfFileReader:
    check_header(stream)
    try:
        reader = PdfFileReader(stream, strict=True)
        encrypted = reader.encrypted
        reader.root  # noqa: B018 - resolving the catalog exercises the xref
    except PdfError as exc:
        raise PdfRejected(f"the PDF structure is broken: {exc}") from exc
    except (ValueError, KeyError, TypeError, IndexError, EOFError, RecursionError) as exc:
        # pyHanko's parser lets some malformed input surface as these.
        raise PdfRejected(f"the PDF structure is broken: {exc!r}") from exc
    if encrypted:
        raise PdfRejected("the PDF is encrypted; only unencrypted documents are accepted")
    return reader


def page_sizes(reader: PdfFileReader) -> list[tuple[float, float]]:
    sizes: list[tuple[float, float]] = []
    seen: set[tuple[int, int]] = set()
    most = PdfBudget().max_pages
    over = PdfRejected(f"the PDF has over {most} pages", limit="max_pages")
    claimed = reader.root["/Pages"].get("/Count")
    if isinstance(claimed, int) and claimed > most:
        raise over

    def walk(node: generic.DictionaryObject, media_box: Any, depth: int) -> None:
        if depth > 64:
            raise PdfRejected("the page tree is too deep")
        box = node.get("/MediaBox", media_box)
        if node.get("/Type") == "/Pages" or "/Kids" in node:
            for kid in node.raw_get("/Kids"):
                key = (kid.idnum, kid.generation)
                if key in seen:
                    raise PdfRejected("the page tree has a cycle")
                seen.add(key)
                if len(seen) > 2 * most:  # empty /Pages nodes cost a walk as much as pages
                    raise over
                walk(kid.get_object(), box, depth + 1)
            return
        if box is None:
            raise PdfRejected(f"page {len(sizes) + 1} has no /MediaBox")
        x1, y1, x2, y2 = (float(v) for v in box)
        sizes.append((abs(x2 - x1), abs(y2 - y1)))
        if len(sizes) > most:
            raise over

    walk(reader.root["/Pages"], None, 0)
    return sizes


def fields_within_budget(reader: PdfFileReader) -> None:
    """Count the form's fields (every node of the AcroForm tree) before pyHanko
    enumerates them, and refuse a form over the budget or with a cycle."""
    most = PdfBudget().max_fields
    form = reader.root.get("/AcroForm")
    if form is None:
        return
    form = form.get_object()
    if not isinstance(form, generic.DictionaryObject) or "/Fields" not in form:
        return
    seen: set[tuple[int, int]] = set()
    pending = [form.raw_get("/Fields")]
    while pending:
        kids = pending.pop()
        if isinstance(kids, generic.IndirectObject):
            kids = kids.get_object()  # type: ignore[no-untyped-call]
        if not isinstance(kids, generic.ArrayObject):
            continue
        for kid in kids:
            if isinstance(kid, generic.IndirectObject):
                key = (kid.idnum, kid.generation)
                if key in seen:
                    raise PdfRejected("the form's field tree has a cycle")
                seen.add(key)
                if len(seen) > most:
                    raise PdfRejected(f"the PDF has over {most} form fields", limit="max_fields")
                kid = kid.get_object()  # type: ignore[no-untyped-call]
            if isinstance(kid, generic.DictionaryObject) and "/Kids" in kid:
                pending.append(kid.raw_get("/Kids"))


def check_pdf(source: Path | BinaryIO) -> PdfInfo:
    """Open the file with pyHanko's strict reader (which reads the cross-reference data,
    not the whole file) and describe it; PdfRejected if it is not a PDF we can sign."""
    with _reading(source) as stream:
        check_header(stream)
        if isinstance(source, Path):
            # A file from outside (an upload, a letter) is scanned before any parser builds
            # objects from it; a stored revision passed this scan when it arrived.
            within_budget(stream)
        reader = open_reader(stream)
        with structure_read():
            fields_within_budget(reader)
            sizes = page_sizes(reader)
            all_fields = [name for name, _, _ in enumerate_sig_fields(reader)]
            signed = [name for name, _, _ in enumerate_sig_fields(reader, filled_status=True)]
    return PdfInfo(len(sizes), sizes, all_fields, signed)


@contextmanager
def structure_read() -> Iterator[None]:
    """Reading a file's pages and fields: pyHanko lets malformed structure surface as
    these errors, each a PdfRejected here."""
    try:
        yield
    except PdfRejected:
        raise
    except (
        PdfError,
        ValueError,
        KeyError,
        TypeError,
        AttributeError,
        IndexError,
        RecursionError,
    ) as exc:
        raise PdfRejected(f"the PDF structure is broken: {exc!r}") from exc


def _reading(source: Path | BinaryIO) -> AbstractContextManager[IO[bytes]]:
    if isinstance(source, Path):
        return source.open("rb")
    source.seek(0)
    return nullcontext(source)


def writing(document: Path | BinaryIO) -> AbstractContextManager[BinaryIO]:
    """A path opened under its lock, or a stream as it is (its owner serializes writers)."""
    return _Locked(document) if isinstance(document, Path) else nullcontext(document)


class _Locked:
    """The file opened r+b under an exclusive advisory lock: two signatures appended to
    the same file at once would corrupt it."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __enter__(self) -> BinaryIO:
        self.stream = cast(BinaryIO, self.path.open("r+b"))
        fcntl.flock(self.stream.fileno(), fcntl.LOCK_EX)
        return self.stream

    def __exit__(self, *exc: object) -> None:
        try:
            fcntl.flock(self.stream.fileno(), fcntl.LOCK_UN)
        finally:
            self.stream.close()


def finish_writing(stream: BinaryIO) -> int:
    stream.flush()
    # Not a file: whoever keeps the appended bytes makes them durable.
    with suppress(OSError, AttributeError):
        os.fsync(stream.fileno())
    return stream.seek(0, os.SEEK_END)


def roll_back(stream: BinaryIO, size: int) -> None:
    # The appended revision is useless without its signature; drop it.
    stream.flush()
    stream.truncate(size)
    stream.flush()
