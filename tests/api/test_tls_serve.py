"""`evalsign serve --tls` as a real process: a phone that trusts the center root reaches it
over HTTPS under the host name, and nothing else passes for it."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from sqlalchemy import create_engine, text

from api.cli import main
from tests.api.test_cli import run_json


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def _root_der(database_url: str, authority_id: str) -> bytes:
    engine = create_engine(database_url)
    try:
        with engine.connect() as connection:
            der: bytes = connection.execute(
                text("SELECT certificate_der FROM authorities WHERE id = :id"),
                {"id": authority_id},
            ).scalar_one()
    finally:
        engine.dispose()
    return der


# The HTTPS client runs in a process of its own, as a phone is: earlier tests in this
# process (the PKCS#11 ones) can leave an error on OpenSSL's thread error queue, which
# Python's ssl then reports from an unrelated call ("no such engine").
CLIENT = r"""
import base64, http.client, json, socket, ssl, sys
port, path, host, cafile = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
context = ssl.create_default_context(cafile=cafile or None)
try:
    connection = http.client.HTTPSConnection("127.0.0.1", port, timeout=5, context=context)
    # Connect to 127.0.0.1 but check the certificate against `host`, as a browser would.
    connection.sock = context.wrap_socket(
        socket.create_connection(("127.0.0.1", port), timeout=5), server_hostname=host
    )
    connection.request("GET", path, headers={"Host": f"{host}:{port}"})
    answer = connection.getresponse()
    print(json.dumps({"status": answer.status, "body": base64.b64encode(answer.read()).decode()}))
except ssl.SSLCertVerificationError as error:
    print(json.dumps({"refused": str(error)}))
except (ConnectionRefusedError, ConnectionResetError):
    print(json.dumps({"down": True}))
"""


def _get(port: int, path: str, cafile: Path | None, host: str = "localhost") -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-c", CLIENT, str(port), path, host, str(cafile or "")],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    answer: dict[str, Any] = json.loads(done.stdout)
    if "body" in answer:
        answer["body"] = base64.b64decode(answer["body"])
    return answer


@pytest.mark.slow
def test_serve_tls_answers_over_https_to_a_client_trusting_the_center_root(
    tmp_path: Path, isolated_database_url: str
) -> None:
    data_dir = tmp_path / "var"
    created = run_json(data_dir, isolated_database_url, "init")
    root_der = _root_der(isolated_database_url, created["pki"]["root_ca"]["id"])
    port = _free_port()
    env = {**os.environ, "EVALSIGN_DATABASE_URL": isolated_database_url}
    env.pop("EVALSIGN_MASTER_KEY", None)
    env.pop("EVALSIGN_PUBLIC_URL", None)
    out = tmp_path / "serve.out"
    with out.open("w") as stdout:
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "api.cli",
                "serve",
                "--data-dir",
                str(data_dir),
                "--port",
                str(port),
                "--tls",
                "--host-name",
                "localhost",
            ],
            env=env,
            stdout=stdout,
            stderr=subprocess.DEVNULL,
        )
    try:
        trusting = tmp_path / "root.pem"
        trusting.write_bytes(x509.load_der_x509_certificate(root_der).public_bytes(Encoding.PEM))
        deadline = time.monotonic() + 120
        while True:
            health = _get(port, "/healthz", trusting)
            if "down" not in health:
                break
            assert server.poll() is None, out.read_text()
            assert time.monotonic() < deadline, "serve did not start"
            time.sleep(0.3)
        assert health["status"] == 200 and json.loads(health["body"]) == {"status": "ok"}

        started = json.loads(out.read_text())
        assert started["url"] == started["public_url"] == f"https://localhost:{port}"
        assert started["tls"]["issued"] is True and started["tls"]["names"] == ["localhost"]
        root_url = started["tls"]["root_ca"]["url"]
        assert root_url.startswith(f"https://localhost:{port}/pki/")
        download = _get(port, root_url.removeprefix(f"https://localhost:{port}"), trusting)
        assert download["status"] == 200 and download["body"] == root_der
        assert started["tls"]["root_ca"]["sha256"] == hashlib.sha256(root_der).hexdigest()
        key = Path(started["tls"]["key"])
        assert key == data_dir / "tls" / "server.key" and (key.stat().st_mode & 0o077) == 0

        # Another name, or a client that does not trust the center root, is refused.
        assert (
            "Hostname mismatch" in _get(port, "/healthz", trusting, "evalsign.example")["refused"]
        )
        assert "refused" in _get(port, "/healthz", None)
        served = x509.load_pem_x509_certificates((data_dir / "tls" / "server.pem").read_bytes())
        assert served[-1].public_bytes(Encoding.DER) == root_der
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_serve_refuses_tls_options_that_do_not_add_up(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "cert.pem").write_text("-----BEGIN CERTIFICATE-----\nAAAA\n")
    (tmp_path / "key.pem").write_text("")
    given = ("--tls-cert", str(tmp_path / "cert.pem"), "--tls-key", str(tmp_path / "key.pem"))
    for args, detail in (
        (("--tls",), "--host-name"),
        (("--host-name", "localhost"), "--tls"),
        (("--tls-cert", "x.pem"), "go together"),
        (("--tls", "--host-name", "not a name"), "not a host name"),
        (given, "not a PEM certificate chain and its key"),
        (("--tls-cert", "missing.pem", "--tls-key", "missing.key"), "missing.pem"),
    ):
        assert main(["serve", "--data-dir", str(tmp_path / "var"), *args]) == 2
        assert detail in capsys.readouterr().err
    assert not (tmp_path / "var").exists()  # refused before anything was created
