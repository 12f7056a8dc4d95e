"""What NSS-based PDF readers (poppler's pdfsig, Okular, Evince, LibreOffice) say of a
signed PDF once a center root is trusted in their certificate database."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

HAVE_NSS_TOOLS = bool(shutil.which("pdfsig") and shutil.which("certutil"))


def trusting_database(
    folder: Path, roots: Sequence[x509.Certificate], intermediates: Sequence[x509.Certificate] = ()
) -> str:
    """A fresh NSS database in `folder` that trusts `roots` (certutil -t CT,C,C) and knows
    `intermediates` (no trust of their own)."""
    folder.mkdir(parents=True, exist_ok=True)
    database = f"sql:{folder}"
    subprocess.run(["certutil", "-N", "-d", database, "--empty-password"], check=True)
    for index, root in enumerate(roots):
        pem = folder / f"root-{index}.pem"
        pem.write_bytes(root.public_bytes(Encoding.PEM))
        subprocess.run(
            [
                "certutil",
                "-A",
                "-d",
                database,
                "-n",
                f"root-{index}",
                "-t",
                "CT,C,C",
                "-i",
                str(pem),
            ],
            check=True,
        )
    for index, ca in enumerate(intermediates):
        pem = folder / f"ca-{index}.pem"
        pem.write_bytes(ca.public_bytes(Encoding.PEM))
        subprocess.run(
            ["certutil", "-A", "-d", database, "-n", f"ca-{index}", "-t", ",,", "-i", str(pem)],
            check=True,
        )
    return database


def signer_usage_ok(database: str, certificate: x509.Certificate, folder: Path) -> str:
    """`certutil -V -u S` (e-mail signer, what pdfsig checks) on one certificate: its
    output, which says "certificate is valid" when NSS accepts it."""
    name = f"check-{certificate.serial_number:x}"
    pem = folder / f"{name}.pem"
    pem.write_bytes(certificate.public_bytes(Encoding.PEM))
    subprocess.run(
        ["certutil", "-A", "-d", database, "-n", name, "-t", ",,", "-i", str(pem)], check=True
    )
    run = subprocess.run(
        ["certutil", "-V", "-d", database, "-n", name, "-u", "S"], capture_output=True, text=True
    )
    return run.stdout + run.stderr


def pdfsig_blocks(database: str, pdf: Path) -> list[str]:
    """pdfsig's report per signature, checking certificates against `database`. OCSP is
    not asked: the tests' PKIs publish no responder at their addresses (the embedded
    CRLs are what a reader has offline)."""
    run = subprocess.run(
        ["pdfsig", "-nssdir", database, "-no-ocsp", str(pdf)], capture_output=True, text=True
    )
    return run.stdout.split("Signature #")[1:]
