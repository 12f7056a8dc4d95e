"""Hostile PDFs, built here byte by byte (written independently of signing/pdf_budget.py):
each a small valid file with one construction an attacker would send."""

from __future__ import annotations

import zlib
from collections.abc import Callable

MB = 1 << 20


def assemble(objects: list[bytes], *, trailer_extra: bytes = b"", prev: int | None = None) -> bytes:
    """Objects numbered from 1 (the catalog first), with a correct xref table."""
    out = bytearray(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for index, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % index
        out += body
        out += b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    for offset in offsets:
        out += b"%010d 00000 n \n" % offset
    prev_entry = b"" if prev is None else b" /Prev %d" % (xref if prev < 0 else prev)
    out += b"trailer\n<< /Size %d /Root 1 0 R%s%s >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        prev_entry,
        trailer_extra,
        xref,
    )
    return bytes(out)


PAGE = b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] >>"


def _plain(catalog_extra: bytes = b"", *more: bytes) -> bytes:
    return assemble(
        [
            b"<< /Type /Catalog /Pages 2 0 R" + catalog_extra + b" >>",
            b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
            PAGE,
            *more,
        ]
    )


def plain() -> bytes:
    return _plain()


def deep_nesting() -> bytes:
    return _plain(b" /Deep " + b"[" * 1000 + b"]" * 1000)


def deep_dictionaries() -> bytes:
    return _plain(b" /Deep " + b"<< /A " * 1000 + b"1" + b" >>" * 1000)


def huge_hex_string() -> bytes:
    return _plain(b" /Junk <" + b"41" * (4 * MB) + b">")


def huge_literal_string() -> bytes:
    return _plain(b" /Junk (" + b"A" * (8 * MB) + b")")


def huge_stream() -> bytes:
    # 48 MB of content, as a large scanned document has; not a budget matter.
    data = b"0 0 m 1 1 l S\n" * (48 * MB // 14)
    return _plain(b"", b"<< /Length %d >>\nstream\n" % len(data) + data + b"\nendstream")


def xref_loop() -> bytes:
    # The trailer's /Prev points back at its own xref table.
    return assemble(
        [b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>", PAGE],
        prev=-1,
    )


def object_number_overflow() -> bytes:
    body = _plain()
    extra = b"99999999999999999999 0 obj\n<< /A 1 >>\nendobj\n"
    at = body.index(b"xref\n")
    moved = body[at:].replace(b"startxref\n%d" % at, b"startxref\n%d" % (at + len(extra)))
    return body[:at] + extra + moved


def page_tree_bomb() -> bytes:
    # One page listed 200,000 times: a reader that follows /Kids visits it as often.
    kids = b"3 0 R " * 200_000
    return assemble(
        [
            b"<< /Type /Catalog /Pages 2 0 R >>",
            b"<< /Type /Pages /Kids [" + kids + b"] /Count 200000 >>",
            PAGE,
        ]
    )


def deep_page_tree() -> bytes:
    levels = 500
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>"]
    for level in range(levels):
        number = 2 + level
        objects.append(b"<< /Type /Pages /Kids [%d 0 R] /Count 1 >>" % (number + 1))
    objects.append(b"<< /Type /Page /Parent %d 0 R /MediaBox [0 0 595 842] >>" % (1 + levels))
    return assemble(objects)


def wide_page_tree() -> bytes:
    # 100,000 distinct pages under 1,000 small /Pages nodes, each object well within the
    # budgets, and a root /Count that says 1: only walking the tree finds them all.
    nodes, per = 1_000, 100
    first_node, first_page = 3, 3 + nodes
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids ["
        + b" ".join(b"%d 0 R" % (first_node + n) for n in range(nodes))
        + b"] /Count 1 >>",
    ]
    for n in range(nodes):
        kids = b" ".join(b"%d 0 R" % (first_page + n * per + p) for p in range(per))
        objects.append(b"<< /Type /Pages /Parent 2 0 R /Kids [" + kids + b"] /Count %d >>" % per)
    page = b"<< /Type /Page /Parent %d 0 R /MediaBox [0 0 595 842] >>"
    objects.extend(page % (first_node + n) for n in range(nodes) for _ in range(per))
    return assemble(objects)


def wide_field_tree() -> bytes:
    # 20,000 empty signature fields under 200 small field nodes: each object is small,
    # enumerating them all is not (100,000 took 20 s and 518 MB).
    nodes, per = 200, 100
    first_node = 5
    first_field = first_node + nodes
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R /AcroForm 4 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        PAGE,
        b"<< /Fields [" + b" ".join(b"%d 0 R" % (first_node + n) for n in range(nodes)) + b"] >>",
    ]
    for n in range(nodes):
        kids = b" ".join(b"%d 0 R" % (first_field + n * per + k) for k in range(per))
        objects.append(b"<< /T (n%d) /Kids [" % n + kids + b"] >>")
    field = b"<< /FT /Sig /T (f%d) /Parent %d 0 R /Rect [0 0 0 0] >>"
    objects.extend(field % (k, first_node + n) for n in range(nodes) for k in range(per))
    return assemble(objects)


def flate_bomb() -> bytes:
    # An object stream that inflates 1,000-fold to 512 MB of spaces.
    inflater = zlib.compressobj(9)
    chunk = b" " * MB
    packed = b"".join(inflater.compress(chunk) for _ in range(512)) + inflater.flush()
    header = b"4 0 "
    return _plain(
        b"",
        b"<< /Type /ObjStm /N 1 /First %d /Filter /FlateDecode /Length %d >>\nstream\n"
        % (len(header), len(packed))
        + packed
        + b"\nendstream",
    )


def truncated() -> bytes:
    body = _plain(b"", b"<< /Length 4 >>\nstream\nabcd\nendstream")
    return body[: len(body) // 2]


def garbage_byte_range() -> bytes:
    signature = (
        b"<< /Type /Sig /Filter /Adobe.PPKLite /SubFilter /ETSI.CAdES.detached"
        b" /ByteRange [0 -5 99999999999 18446744073709551617] /Contents <3082000a00> >>"
    )
    return _signed_shape(signature)


def signature_value_array() -> bytes:
    return _signed_shape(b"[1 2 3]", inline=True)


def _signed_shape(value: bytes, *, inline: bool = False) -> bytes:
    field_v = value if inline else b"5 0 R"
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R /AcroForm << /Fields [4 0 R] /SigFlags 3 >> >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Annots [4 0 R] >>",
        b"<< /Type /Annot /Subtype /Widget /FT /Sig /T (Signature1) /Rect [0 0 0 0]"
        b" /P 3 0 R /V " + field_v + b" >>",
    ]
    if not inline:
        objects.append(value)
    return assemble(objects)


# name -> (builder, the limit named in the refusal; None: any refusal; "ok": accepted)
CORPUS: dict[str, tuple[Callable[[], bytes], str | None]] = {
    "deep_nesting": (deep_nesting, "max_depth"),
    "deep_dictionaries": (deep_dictionaries, "max_depth"),
    "huge_hex_string": (huge_hex_string, "max_string_bytes"),
    "huge_literal_string": (huge_literal_string, "max_string_bytes"),
    "huge_stream": (huge_stream, "ok"),
    "xref_loop": (xref_loop, None),
    "object_number_overflow": (object_number_overflow, "max_object_number"),
    "page_tree_bomb": (page_tree_bomb, "max_object_bytes"),
    "deep_page_tree": (deep_page_tree, None),
    "wide_page_tree": (wide_page_tree, "max_pages"),
    "wide_field_tree": (wide_field_tree, "max_fields"),
    "flate_bomb": (flate_bomb, "max_object_stream_bytes"),
    "truncated": (truncated, None),
    "garbage_byte_range": (garbage_byte_range, None),
    "signature_value_array": (signature_value_array, None),
}
