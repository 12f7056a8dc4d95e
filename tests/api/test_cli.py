"""The `evalsign` command as an installer and an auditor use it, run as a real process."""

from __future__ import annotations

import base64
import json
import os
import secrets
import shutil
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text
from sqlalchemy import inspect as sa_inspect

from evaluation.registry.staff import Role
from tests.conftest import on_postgres
from tests.factories import CenterWithStaff, expert_payload

EVALSIGN = shutil.which("evalsign") or str(Path(__file__).parents[2] / ".venv/bin/evalsign")


def run(data_dir: Path, database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "EVALSIGN_DATABASE_URL": database_url}
    env.pop("EVALSIGN_MASTER_KEY", None)
    return subprocess.run(
        [EVALSIGN, *args, "--data-dir", str(data_dir)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )


def run_json(data_dir: Path, database_url: str, *args: str) -> dict[str, Any]:
    result = run(data_dir, database_url, *args)
    assert result.returncode == 0, result.stderr
    payload: dict[str, Any] = json.loads(result.stdout)
    return payload


@pytest.fixture
def instance(tmp_path: Path, isolated_database_url: str) -> tuple[Path, str, dict[str, Any]]:
    data_dir = tmp_path / "var"
    created = run_json(data_dir, isolated_database_url, "init", "--center", "某市公共资源交易中心")
    return data_dir, isolated_database_url, created


@pytest.mark.slow
def test_init_creates_an_instance_and_is_idempotent(
    instance: tuple[Path, str, dict[str, Any]],
) -> None:
    data_dir, url, first = instance
    assert first["center_created"] is True
    assert first["center_name"] == "某市公共资源交易中心"
    assert set(first["tokens"]) == {"admin", "operator", "supervisor"}
    assert all(token.startswith("evs_") for token in first["tokens"].values())
    key = data_dir / "vault" / "master.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert stat.S_IMODE(Path(first["tokens_file"]).stat().st_mode) == 0o600

    again = run_json(data_dir, url, "init", "--center", "某市公共资源交易中心")
    assert again["center_id"] == first["center_id"]
    assert again["center_created"] is False
    assert again["tokens"] == first["tokens"]
    assert key.read_bytes() == (data_dir / "vault" / "master.key").read_bytes()

    only = run_json(data_dir, url, "token", "create", "--role", "supervisor")
    assert only["center_id"] == first["center_id"]  # the only center needs no --center

    second_center = run_json(data_dir, url, "init", "--center", "另一个中心")
    assert second_center["center_id"] != first["center_id"]
    which = run(data_dir, url, "token", "create", "--role", "admin")
    assert which.returncode == 2 and "CenterAmbiguous" in which.stderr
    assert first["center_id"] in which.stderr and second_center["center_id"] in which.stderr


@pytest.mark.slow
def test_token_create_issues_a_working_role_token(
    instance: tuple[Path, str, dict[str, Any]],
) -> None:
    data_dir, url, created = instance
    issued = run_json(
        data_dir, url, "token", "create", "--center", created["center_id"], "--role", "operator"
    )
    assert issued["role"] == "operator" and issued["token"].startswith("evs_")
    assert issued["token"] not in created["tokens"].values()

    bad_role = run(
        data_dir, url, "token", "create", "--center", created["center_id"], "--role", "root"
    )
    assert bad_role.returncode == 2 and "invalid choice" in bad_role.stderr
    no_center = run(data_dir, url, "token", "create", "--center", "nope", "--role", "admin")
    assert no_center.returncode == 2 and "NotFound" in no_center.stderr


@pytest.mark.slow
def test_audit_verify_names_the_edited_entry(
    instance: tuple[Path, str, dict[str, Any]],
) -> None:
    data_dir, url, created = instance
    for _ in range(3):
        run_json(
            data_dir,
            url,
            "token",
            "create",
            "--center",
            created["center_id"],
            "--role",
            "supervisor",
        )
    clean = run_json(data_dir, url, "audit", "verify")
    # init: the center, its PKI (8 entries: 4 keys, 2 CAs, 2 service certificates) and 3
    # bootstrap tokens; then the 3 tokens above.
    assert clean["ok"] is True and clean["centers"][0]["entries_checked"] == 1 + 8 + 3 + 3

    engine = create_engine(url)
    with engine.begin() as connection:
        if on_postgres():
            connection.execute(text("ALTER TABLE audit_entries DISABLE TRIGGER USER"))
        else:
            connection.execute(text("DROP TRIGGER audit_entries_no_update"))
        connection.execute(
            text('UPDATE audit_entries SET details = \'{"role": "admin"}\' WHERE seq = 5')
        )
    engine.dispose()

    result = run(data_dir, url, "audit", "verify")
    assert result.returncode == 1
    report = json.loads(result.stdout)
    assert report["ok"] is False
    assert report["centers"][0]["first_bad_seq"] == 5
    assert report["centers"][0]["reason"] == "hash-mismatch"


@pytest.mark.slow
def test_a_lost_key_file_is_not_silently_replaced(
    instance: tuple[Path, str, dict[str, Any]],
) -> None:
    data_dir, url, _created = instance
    key = data_dir / "vault" / "master.key"
    original = key.read_bytes()
    key.unlink()
    result = run(data_dir, url, "init")
    assert result.returncode == 2
    assert "master.key is missing" in result.stderr
    assert not key.exists()  # no new key was made behind the operator's back
    key.write_bytes(original)
    assert run(data_dir, url, "init").returncode == 0


@pytest.mark.slow
def test_a_different_key_is_refused(instance: tuple[Path, str, dict[str, Any]]) -> None:
    data_dir, url, _created = instance
    other_key = base64.b64encode(secrets.token_bytes(32)).decode()
    result = subprocess.run(
        [EVALSIGN, "init", "--data-dir", str(data_dir)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "EVALSIGN_DATABASE_URL": url, "EVALSIGN_MASTER_KEY": other_key},
    )
    assert result.returncode == 2
    assert "not the one this database was initialized with" in result.stderr


@pytest.mark.slow
def test_face_compare_prints_similarity_as_json(tmp_path: Path) -> None:
    from tests.face.corpus import PHONE_TRANSFORMS, encode, portraits

    people = portraits()
    (tmp_path / "a.jpg").write_bytes(encode(people["t1-5"]))
    (tmp_path / "b.jpg").write_bytes(PHONE_TRANSFORMS["exif-rotated"](people["t1-5"]))
    (tmp_path / "c.jpg").write_bytes(encode(people["yaoming-0"]))
    same = run_json(
        tmp_path, "sqlite://", "face", "compare", str(tmp_path / "a.jpg"), str(tmp_path / "b.jpg")
    )
    assert same["same"] is True and same["similarity"] >= same["threshold"] == 0.4
    assert len(same["faces"]) == 2 and same["faces"][1]["faces_found"] == 1
    other = run_json(
        tmp_path, "sqlite://", "face", "compare", str(tmp_path / "a.jpg"), str(tmp_path / "c.jpg")
    )
    assert other["same"] is False
    missing = run(
        tmp_path,
        "sqlite://",
        "face",
        "compare",
        str(tmp_path / "a.jpg"),
        str(tmp_path / "nope.jpg"),
    )
    assert missing.returncode == 2 and "nope.jpg" in missing.stderr


@pytest.mark.slow
def test_face_eval_reports_accuracy_eer_and_tar(tmp_path: Path) -> None:
    from tests.face.corpus import write_pairs

    pairs = write_pairs(tmp_path / "pairs", impostors_per_person=3)
    report = run_json(tmp_path, "sqlite://", "face", "eval", str(pairs))
    rows = pairs.read_text().strip().splitlines()[1:]
    assert report["pairs"] == len(rows)
    assert report["genuine"] == sum(row.endswith(",1") for row in rows)
    assert report["accuracy"] >= 0.99 and report["eer"] <= 0.01
    assert report["genuine_min"] > report["threshold"] > report["impostor_max"]
    assert report["skipped_no_face"] == []
    strict = run_json(tmp_path, "sqlite://", "face", "eval", str(pairs), "--threshold", "0.999")
    assert strict["accuracy"] < report["accuracy"]  # the threshold is really applied


@pytest.mark.slow
def test_serve_refuses_to_start_with_an_altered_model_file(
    instance: tuple[Path, str, dict[str, Any]], tmp_path: Path
) -> None:
    from face.model_pack import ROLES, load_model_pack

    data_dir, url, _created = instance
    pack = load_model_pack()
    models = tmp_path / "models"
    models.mkdir()
    manifest: dict[str, Any] = {"name": "tampered", "files": {}}
    for role in ROLES:
        source = pack.files[role]
        (models / source.path.name).symlink_to(source.path)
        manifest["files"][role] = {"file": source.path.name, "sha256": source.sha256}
    manifest["files"]["recognizer"]["sha256"] = "0" * 64
    (models / "manifest.json").write_text(json.dumps(manifest))
    env = {**os.environ, "EVALSIGN_DATABASE_URL": url, "EVALSIGN_FACE_MODEL_DIR": str(models)}
    result = subprocess.run(
        [EVALSIGN, "serve", "--data-dir", str(data_dir), "--port", "0"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert result.returncode == 2
    assert "recognizer" in result.stderr and "0" * 64 in result.stderr


@pytest.mark.slow
def test_serve_with_workers_answers(tmp_path: Path, isolated_database_url: str) -> None:
    import socket
    import time

    import httpx2

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "EVALSIGN_DATABASE_URL": isolated_database_url}
    data_dir = tmp_path / "var"
    subprocess.run(
        [sys.executable, "-m", "api.cli", "init", "--data-dir", str(data_dir)],
        env=env,
        check=True,
        capture_output=True,
    )
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
            "--workers",
            "2",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                ready = httpx2.get(f"http://127.0.0.1:{port}/readyz", timeout=2)
                if ready.status_code == 200:
                    break
            except httpx2.TransportError:
                time.sleep(0.3)
        assert ready.status_code == 200
        info = httpx2.post(f"http://127.0.0.1:{port}/csc/v2/info", json={}, timeout=5)
        assert info.json()["name"] == "EvalSign"
    finally:
        server.terminate()
        server.wait(timeout=30)


@pytest.mark.slow
def test_the_public_url_follows_the_port(tmp_path: Path, isolated_database_url: str) -> None:
    """EVALSIGN_PORT alone: the banner, the CA's published URLs and QR codes all name the
    port the service listens on, not 8000."""
    import socket
    import time

    import httpx2

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "EVALSIGN_DATABASE_URL": isolated_database_url, "EVALSIGN_PORT": str(port)}
    env.pop("EVALSIGN_PUBLIC_URL", None)
    data_dir = tmp_path / "var"
    init = subprocess.run(
        [sys.executable, "-m", "api.cli", "init", "--data-dir", str(data_dir)],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    supervisor = json.loads(init.stdout)["tokens"]["supervisor"]
    server = subprocess.Popen(
        [sys.executable, "-m", "api.cli", "serve", "--data-dir", str(data_dir)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert server.stdout is not None
        banner = server.stdout.readline()
        assert f"http://localhost:{port}/" in banner and "/console/" in banner, banner
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if httpx2.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                    break
            except httpx2.TransportError:
                time.sleep(0.3)
        authorities = httpx2.get(
            f"http://127.0.0.1:{port}/api/v1/pki/authorities",
            headers={"Authorization": f"Bearer {supervisor}"},
            timeout=5,
        ).json()
        assert authorities
        for authority in authorities:
            assert authority["crl_url"].startswith(f"http://localhost:{port}/pki/"), authority
    finally:
        server.terminate()
        server.wait(timeout=30)


@pytest.mark.slow
def test_face_samples_writes_portraits_that_enroll(
    tmp_path: Path, client: TestClient, center: CenterWithStaff
) -> None:
    """The photos an operator tries the registry with: each one enrolls through the API."""
    out = tmp_path / "photos"
    result = run(
        tmp_path / "var", "sqlite://", "face", "samples", "--out", str(out), "--count", "2"
    )
    assert result.returncode == 0, result.stderr
    written = [Path(p) for p in json.loads(result.stdout)["written"]]
    assert len(written) == 2 and all(p.parent == out for p in written)
    for photo in written:
        created = client.post(
            "/api/v1/experts", json=expert_payload(), headers=center.headers(Role.OPERATOR)
        )
        assert created.status_code == 201, created.text
        answer = client.put(
            f"/api/v1/experts/{created.json()['id']}/face",
            headers=center.headers(Role.OPERATOR),
            files=[("photos", (photo.name, photo.read_bytes(), "image/jpeg"))],
            data={"consent": "true"},
        )
        assert answer.status_code == 201, answer.text
        assert answer.json()["photos"][0]["accepted"] is True


def _start(data_dir: Path, database_url: str, master_key: str, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "EVALSIGN_DATABASE_URL": database_url, "EVALSIGN_MASTER_KEY": master_key}
    return subprocess.Popen(
        [EVALSIGN, *args, "--data-dir", str(data_dir)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def _finish(process: subprocess.Popen[str]) -> dict[str, Any]:
    out, err = process.communicate(timeout=300)
    assert process.returncode == 0, err
    payload: dict[str, Any] = json.loads(out)
    return payload


@pytest.mark.slow
def test_replicas_initializing_a_new_database_together_all_succeed_and_mint_tokens_once(
    tmp_path: Path, isolated_database_url: str
) -> None:
    """Three replicas, each with its own data directory and the shared master key, run
    `migrate` and then `init` at the same moment on a database nobody has touched."""
    key = base64.b64encode(secrets.token_bytes(32)).decode()
    dirs = [tmp_path / f"replica{n}" for n in range(3)]
    migrations = [
        _finish(p) for p in [_start(d, isolated_database_url, key, "migrate") for d in dirs]
    ]
    assert sum(m["changed"] for m in migrations) == 1
    assert {m["to"] for m in migrations} == {migrations[0]["to"]}

    inits = [_finish(p) for p in [_start(d, isolated_database_url, key, "init") for d in dirs]]
    assert len({i["center_id"] for i in inits}) == 1
    assert sum(i["center_created"] for i in inits) == 1
    minted = [i for i in inits if i["tokens"]]
    assert len(minted) == 1 and set(minted[0]["tokens"]) == {"admin", "operator", "supervisor"}
    assert all(i["tokens_file"] is None and i["tokens_note"] for i in inits if not i["tokens"])
    engine = create_engine(isolated_database_url)
    with engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM centers")).scalar() == 1
        assert connection.execute(text("SELECT count(*) FROM staff_tokens")).scalar() == 3
        upgrades = connection.execute(text("SELECT upgraded_from FROM schema_upgrades")).all()
        assert upgrades == [(None,)]
    engine.dispose()


@pytest.mark.slow
def test_replicas_starting_with_init_on_a_fresh_database_all_succeed(
    tmp_path: Path, isolated_database_url: str
) -> None:
    """`init` alone (it migrates first): the crash this replaced was a UniqueViolation on
    alembic_version in the second replica."""
    key = base64.b64encode(secrets.token_bytes(32)).decode()
    dirs = [tmp_path / f"replica{n}" for n in range(2)]
    inits = [_finish(p) for p in [_start(d, isolated_database_url, key, "init") for d in dirs]]
    assert len({i["center_id"] for i in inits}) == 1
    assert sorted(bool(i["tokens"]) for i in inits) == [False, True]


@pytest.mark.slow
def test_serve_does_not_migrate_unless_asked(tmp_path: Path, isolated_database_url: str) -> None:
    result = run(tmp_path / "var", isolated_database_url, "serve", "--port", "0")
    assert result.returncode == 2
    assert "SchemaMismatch" in result.stderr and "evalsign migrate" in result.stderr
    engine = create_engine(isolated_database_url)
    with engine.connect() as connection:
        assert "alembic_version" not in sa_inspect(connection).get_table_names()
    engine.dispose()


@pytest.mark.slow
def test_worker_once_runs_each_due_job_and_records_its_turn(
    instance: tuple[Path, str, dict[str, Any]],
) -> None:
    data_dir, url, _created = instance
    first = run(data_dir, url, "worker", "--once")
    assert first.returncode == 0, first.stderr
    engine = create_engine(url)
    with engine.connect() as connection:
        leases = connection.execute(
            text("SELECT name, holder, expires_at, last_finished_at FROM job_leases")
        ).all()
        # The first checkpoint of the init's entries was due at once.
        checkpoints = connection.execute(text("SELECT count(*) FROM audit_checkpoints")).scalar()
    engine.dispose()
    assert {row[0] for row in leases} == {
        "audit-checkpoints",
        "face-retention",
        "face-cross-match",
        "document-sweep",
        "replay-forget",
        "call-ups",
        "webhooks",
        "archive",
    }
    assert all(row[2] is None and row[3] is not None for row in leases)  # finished, let go
    assert checkpoints == 1
    again = run(data_dir, url, "worker", "--once")  # nothing due yet: nothing runs twice
    assert again.returncode == 0, again.stderr
    engine = create_engine(url)
    with engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM audit_checkpoints")).scalar() == 1
    engine.dispose()
