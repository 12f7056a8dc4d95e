"""The document store on both implementations (the local directory; S3 through a moto
server): a revision is its predecessor plus one increment stored as a new object, nothing
stored is ever rewritten, a signing that never keeps its bytes leaves nothing, unrecorded
objects are swept, and (S3) any replica reads any revision through a bounded cache."""

from __future__ import annotations

import hashlib
import io
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from evaluation.documents.local_store import LocalDocumentStore
from evaluation.documents.s3_store import S3DocumentStore
from evaluation.documents.store import (
    DocumentStore,
    DocumentStoreUnavailable,
    StoredRevision,
    UploadTooLarge,
    open_store,
    revision_of_rows,
    sweep,
)
from tests.conftest import store_location
from tests.s3_server import S3Server

UPLOAD = b"%PDF-1.7\n" + bytes(range(256)) * 4000 + b"\n%%EOF\n"  # about 1 MB


def _store(root: Path, location: str | None, cache_bytes: int = 1 << 30) -> DocumentStore:
    return open_store(root, location, cache_bytes=cache_bytes)


@pytest.fixture(params=["local", "s3"])
def location(request: pytest.FixtureRequest) -> str | None:
    return store_location(request, request.param)


@pytest.fixture
def store(tmp_path: Path, location: str | None) -> DocumentStore:
    return _store(tmp_path / "replica-a", location)


def _upload(store: DocumentStore, document_id: str, data: bytes = UPLOAD) -> StoredRevision:
    return store.adopt(store.receive(io.BytesIO(data), max_bytes=len(data)), document_id)


def _append(store: DocumentStore, revision: StoredRevision, increment: bytes) -> StoredRevision:
    with store.open(revision) as file:
        file.seek(0, io.SEEK_END)
        file.write(increment)
        return store.keep(revision, file)


def _objects(store: DocumentStore) -> dict[tuple[str, str, int], bytes]:
    """Every stored object with its bytes, read from where the store keeps them."""
    found = {}
    for stored in store.objects():
        key = (stored.document_id, stored.piece.sha256, stored.piece.start)
        if isinstance(store, S3DocumentStore):
            name = f"{store.prefix}{stored.document_id}/{stored.piece.name}"
            found[key] = store.client.get_object(Bucket=store.bucket, Key=name)["Body"].read()
        else:
            root = store.root / stored.document_id[:2] / stored.document_id
            found[key] = (root / stored.piece.name).read_bytes()
    return found


def test_a_revision_is_its_predecessor_plus_an_increment_stored_once(
    store: DocumentStore,
) -> None:
    first = _upload(store, "doc-1")
    assert first.sha256 == hashlib.sha256(UPLOAD).hexdigest() and first.size == len(UPLOAD)
    assert not list((store.root / "incoming").iterdir())  # the upload's temporary file is gone
    before = _objects(store)
    second = _append(store, first, b"\n% signature one\n")
    third = _append(store, second, b"\n% signature two, a little longer\n")
    whole = UPLOAD + b"\n% signature one\n" + b"\n% signature two, a little longer\n"
    assert b"".join(store.read(third)) == whole
    assert third.sha256 == hashlib.sha256(whole).hexdigest()
    assert b"".join(store.read(second)) == whole[: second.size]
    assert store.digest(first) == first.sha256
    after = _objects(store)
    # One new object per revision, holding only its increment; the older ones unchanged.
    assert len(after) == 3 and {k: after[k] for k in before} == before
    assert sorted(len(v) for v in after.values()) == [17, 34, len(UPLOAD)]


def test_a_revision_reads_across_its_pieces_at_any_offset(store: DocumentStore) -> None:
    revision = _append(store, _upload(store, "doc-r"), b"0123456789" * 10)
    whole = b"".join(store.read(revision))
    with store.open(revision) as file:
        for start, length in [(0, 5), (len(UPLOAD) - 3, 10), (len(UPLOAD) + 7, 1000)]:
            file.seek(start)
            assert file.read(length) == whole[start : start + length]
        assert file.seek(0, io.SEEK_END) == revision.size


def test_appending_without_keeping_stores_nothing(store: DocumentStore) -> None:
    """A signing that crashes (or is refused) before its bytes are kept leaves no trace."""
    revision = _upload(store, "doc-2")
    before = _objects(store)
    with store.open(revision) as file:
        file.seek(0, io.SEEK_END)
        file.write(b"half a revision")
        file.truncate(revision.size + 4)
        assert file.appended() == b"half"
    assert _objects(store) == before
    assert b"".join(store.read(revision)) == UPLOAD


def test_what_is_stored_cannot_be_written_or_cut_through_the_file(store: DocumentStore) -> None:
    revision = _upload(store, "doc-3")
    with store.open(revision) as file:
        file.seek(10)
        with pytest.raises(io.UnsupportedOperation):
            file.write(b"X")
        with pytest.raises(io.UnsupportedOperation):
            file.truncate(revision.size - 1)
        with pytest.raises(ValueError, match="nothing was appended"):
            store.keep(revision, file)
    assert b"".join(store.read(revision)) == UPLOAD


def test_objects_no_revision_records_are_swept(store: DocumentStore) -> None:
    recorded = _upload(store, "doc-4")
    orphan = _append(store, recorded, b"\n% a signing whose revision was never recorded\n")

    def rows(document_id: str) -> set[tuple[str, int]]:
        assert document_id == "doc-4"
        return {(p.sha256, p.end) for p in recorded.pieces}

    now = datetime.now(UTC)
    # A piece younger than the grace period may belong to a signing still in flight.
    assert sweep(store, rows, older_than=now - timedelta(hours=1)) == []
    [removed] = sweep(store, rows, older_than=now + timedelta(minutes=1))
    assert removed.piece == orphan.pieces[-1]
    assert len(_objects(store)) == 1
    assert b"".join(store.read(recorded)) == UPLOAD


def test_an_upload_over_the_limit_leaves_no_temporary_file(store: DocumentStore) -> None:
    with pytest.raises(UploadTooLarge):
        store.receive(io.BytesIO(b"x" * 5000), max_bytes=4096)
    assert not list((store.root / "incoming").iterdir())


def test_another_replica_reads_and_extends_any_revision(
    tmp_path: Path, s3_server: S3Server
) -> None:
    location = s3_server.new_location()
    a = _store(tmp_path / "replica-a", location)
    b = _store(tmp_path / "replica-b", location)
    first = _upload(a, "doc-5")
    second = _append(a, first, b"\n% signed on replica a\n")
    # Replica b has nothing on its disk, and rebuilds the revisions from their rows alone.
    rows = [(p.end, p.sha256) for p in second.pieces]
    on_b = revision_of_rows("doc-5", rows)
    assert b.digest(on_b) == second.sha256
    third = _append(b, on_b, b"\n% signed on replica b\n")
    assert a.digest(revision_of_rows("doc-5", [(p.end, p.sha256) for p in third.pieces])) == (
        third.sha256
    )
    assert b"".join(a.read(third)) == b"".join(b.read(third))


def test_the_spill_cache_stays_within_its_bound(tmp_path: Path, s3_server: S3Server) -> None:
    location = s3_server.new_location()
    writer = _store(tmp_path / "writer", location)
    revisions = [_upload(writer, f"doc-c{n}", UPLOAD + bytes([n])) for n in range(4)]
    bound = 2 * len(UPLOAD) + 10
    reader = _store(tmp_path / "reader", location, cache_bytes=bound)
    assert isinstance(reader, S3DocumentStore)
    for revision in revisions:
        assert reader.digest(revision) == revision.sha256
        assert sum(p.stat().st_size for p in reader.cache.glob("*.pdf")) <= bound
    assert len(list(reader.cache.glob("*.pdf"))) == 2  # the two most recently used


def test_an_unreachable_bucket_is_a_clear_error_and_leaves_no_temporary_file(
    tmp_path: Path, s3_server: S3Server
) -> None:
    store = _store(tmp_path / "replica", "s3://no-such-bucket/documents")
    received = store.receive(io.BytesIO(UPLOAD), max_bytes=len(UPLOAD))
    with pytest.raises(DocumentStoreUnavailable):
        store.adopt(received, "doc-6")
    assert not received.path.exists()
    with pytest.raises(DocumentStoreUnavailable):
        b"".join(store.read(revision_of_rows("doc-6", [(len(UPLOAD), "0" * 64)])))


def test_documents_stored_before_pieces_are_still_read(tmp_path: Path) -> None:
    """A document kept as one appended-to file (before this store) reads by its rows; bytes
    a crashed signing left past the last revision are simply not part of any."""
    store = LocalDocumentStore(tmp_path)
    legacy = tmp_path / "do" / "doc-7.pdf"
    legacy.parent.mkdir()
    signed = UPLOAD + b"\n% the first signature\n"
    legacy.write_bytes(signed + b"\n% a crashed signing's leftovers")
    rows = [(len(UPLOAD), hashlib.sha256(UPLOAD).hexdigest())]
    rows.append((len(signed), hashlib.sha256(signed).hexdigest()))
    revision = revision_of_rows("doc-7", rows)
    assert b"".join(store.read(revision)) == signed
    assert store.digest(revision) == revision.sha256
    # The next signature is a piece of its own; the old file is never written again.
    third = _append(store, revision, b"\n% the second signature\n")
    assert b"".join(store.read(third)) == signed + b"\n% the second signature\n"
    assert legacy.read_bytes().endswith(b"leftovers")


def test_the_store_setting_names_an_s3_bucket_or_nothing() -> None:
    from pydantic import ValidationError

    from evaluation.documents.s3_store import parse_location
    from models.settings import Settings

    assert parse_location("s3://evalsign/documents/") == ("evalsign", "documents/")
    assert parse_location("s3://evalsign") == ("evalsign", "")
    for wrong in ("/srv/documents", "http://minio:9000/evalsign", "s3://"):
        with pytest.raises(ValidationError):
            Settings(document_store=wrong)
