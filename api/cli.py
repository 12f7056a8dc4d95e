"""The `evalsign` command: init, migrate, serve, worker, token create, audit verify,
documents sweep, pdf validate, face compare/eval/samples, draw verify."""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from api.instance import initialize, prepare
from api.services import open_database
from evaluation.identity.passkeys import rp_id_is_address
from evaluation.kernel import audit
from evaluation.kernel.errors import DomainError
from evaluation.registry import centers
from evaluation.registry import staff as staff_tokens
from evaluation.registry.staff import Role
from evaluation.trust.pki import PkiNotReady, PkiPolicy
from face.antispoof import AntiSpoofModelError
from face.model_pack import ModelPackError
from models.clock import SystemClock
from models.db import make_session_factory
from models.migrate import SchemaMismatch, current_revision, upgrade_to_head
from models.settings import Settings
from models.tables import Center
from signing import tls as server_tls
from signing.keyring import KeyringError, load_keyring


def _settings(args: argparse.Namespace) -> Settings:
    overrides: dict[str, Any] = {}
    if getattr(args, "data_dir", None):
        overrides["data_dir"] = Path(args.data_dir)
    return Settings(**overrides)


def _print(payload: dict[str, Any]) -> None:
    print(json.dumps(payload, ensure_ascii=False, indent=2))


def cmd_init(args: argparse.Namespace) -> int:
    settings = _settings(args)
    result = initialize(settings, SystemClock(), args.center)
    _print(result.as_json(settings))
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    settings = _settings(args)
    engine = open_database(settings)
    try:
        started_from = upgrade_to_head(engine)
        now_at = current_revision(engine)
    finally:
        engine.dispose()
    _print({"from": started_from, "to": now_at, "changed": started_from != now_at})
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    """The periodic jobs (checkpoints, retention, the face cross-match sweep, ...) in the
    foreground; with a lease per job, several workers or serving replicas never run the
    same round twice."""
    from api.job_runner import JobRunner
    from api.logs import configure_logging
    from api.services import build_services

    settings = _settings(args)
    configure_logging(settings.log_level)
    clock = SystemClock()
    engine = prepare(settings, clock, migrate=False)
    services = build_services(settings, engine=engine, clock=clock)
    runner = JobRunner(services)
    with suppress(KeyboardInterrupt):
        runner.run_forever(once=args.once)
    return 0


def _https_url(host: str, port: int) -> str:
    host = f"[{host}]" if ":" in host else host
    return f"https://{host}" if port == 443 else f"https://{host}:{port}"


def _serve_usage(args: argparse.Namespace) -> str | None:
    """What is wrong with the TLS options, if anything."""
    if bool(args.tls_cert) != bool(args.tls_key):
        return "--tls-cert and --tls-key go together"
    if args.host_name and not (args.tls or args.tls_cert):
        return "--host-name names the HTTPS certificate: add --tls (or --tls-cert/--tls-key)"
    if args.tls and not (args.host_name or args.tls_cert):
        return "--tls needs --host-name NAME, the name phones use to reach this server"
    return None


def _tls_center(db: Session, settings: Settings, center_id: str | None) -> Center:
    if center_id:
        return centers.get_center(db, center_id)
    center = centers.find_center_by_name(db, settings.center_name)
    if center is None:
        center = next(iter(centers.list_centers(db)), None)
    if center is None:
        raise PkiNotReady("there is no center yet; run `evalsign init`")
    return center


def _center_certificate(
    args: argparse.Namespace,
    settings: Settings,
    engine: Engine,
    clock: SystemClock,
    names: tuple[str, ...],
) -> tuple[server_tls.ServerCertificate, dict[str, Any]]:
    """The server certificate from a center's issuing CA, and where phones get its root."""
    from evaluation.trust import pki
    from evaluation.trust.tls import serving_certificate
    from signing.vault import open_vaults

    vault = open_vaults(settings, load_keyring(settings.vault_dir, settings.master_key))
    with make_session_factory(engine)() as db, db.begin():
        center = _tls_center(db, settings, args.center)
        serving = serving_certificate(
            db,
            audit.Caller(center.id, "cli:serve"),
            clock,
            vault,
            PkiPolicy.from_settings(settings),
            center,
            settings.data_dir,
            names,
        )
    root = {
        "subject": serving.root.subject.rfc4514_string(),
        "sha256": pki.fingerprint(serving.root),
        "url": (
            f"{settings.public_url.rstrip('/')}/pki/{serving.root_authority_id}/cert"
            if serving.root_authority_id
            else None
        ),
    }
    return serving.server, root


def _print_banner(public_url: str) -> None:
    base = public_url.rstrip("/")
    print(
        f"EvalSign: {base}/  (API docs: {base}/docs; supervisors' console: {base}/console/; "
        "phone pages need localhost or HTTPS)",
        flush=True,
    )


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from api.app import create_app
    from api.logs import configure_logging
    from api.services import build_services, load_stamp_font

    problem = _serve_usage(args)
    if problem is not None:
        print(json.dumps({"error": "UsageError", "detail": problem}), file=sys.stderr)
        return 2
    names = server_tls.parse_host_names(args.host_name) if args.host_name else ()
    # Given files are checked before anything is migrated or loaded.
    given = (
        server_tls.load_given_pair(Path(args.tls_cert), Path(args.tls_key))
        if args.tls_cert
        else None
    )
    settings = _settings(args)
    port = args.port or settings.port
    tls = bool(args.tls or args.tls_cert)
    if "public_url" not in settings.model_fields_set:
        # QR codes and certificate URLs must point where phones reach this server.
        public_url = _https_url(names[0], port) if tls and names else f"http://localhost:{port}"
        settings = settings.model_copy(update={"public_url": public_url})
    configure_logging(settings.log_level)
    clock = SystemClock()
    engine = prepare(settings, clock, migrate=args.migrate)
    options: dict[str, Any] = {
        "host": args.host or settings.host,
        "port": port,
        "log_config": None,
        "access_log": False,
        "proxy_headers": args.proxy_headers,
    }
    if args.forwarded_allow_ips:
        options["forwarded_allow_ips"] = args.forwarded_allow_ips
    if tls:
        if given is not None:
            cert_path, key_path, leaf = Path(args.tls_cert), Path(args.tls_key), given
            summary: dict[str, Any] = {"source": "files", "root_ca": None}
        else:
            server, root = _center_certificate(args, settings, engine, clock, names)
            cert_path, key_path, leaf = server.cert_path, server.key_path, server.certificate
            summary = {"source": "center-ca", "issued": server.issued, "root_ca": root}
        options["ssl_certfile"], options["ssl_keyfile"] = str(cert_path), str(key_path)
        host = names[0] if names else options["host"]
        _print(
            {
                "url": _https_url(host, port),
                "public_url": settings.public_url,
                "tls": {
                    **summary,
                    "names": list(server_tls.subject_alternative_names(leaf)),
                    "not_after": leaf.not_valid_after_utc.isoformat(),
                    "certificate": str(cert_path),
                    "key": str(key_path),
                },
            }
        )
        sys.stdout.flush()
    if rp_id_is_address(settings):
        logging.getLogger("evalsign.serve").warning(
            "EVALSIGN_PUBLIC_URL %s is an IP address: phones cannot bind passkeys to it "
            "(WebAuthn needs a host name). Serve under a DNS name, or set "
            "EVALSIGN_WEBAUTHN_RP_ID and EVALSIGN_WEBAUTHN_ORIGINS.",
            settings.public_url,
        )
    if not tls:
        _print_banner(settings.public_url)
    if args.workers > 1:
        # Worker processes read their settings from the environment (api/asgi.py).
        engine.dispose()
        os.environ["EVALSIGN_DATA_DIR"] = str(settings.data_dir)
        os.environ["EVALSIGN_PUBLIC_URL"] = settings.public_url
        # A worker loading its face models can hold the GIL past uvicorn's 5 s health check
        # on a busy machine, and would be killed and restarted without end.
        uvicorn.run(
            "api.asgi:create",
            factory=True,
            workers=args.workers,
            timeout_worker_healthcheck=60,
            **options,
        )
        return 0
    services = build_services(settings, engine=engine, clock=clock)
    services.face_engine()  # verify and load the face models now: a bad file stops start-up
    services.anti_spoof()  # likewise the optional anti-spoof model, when one is configured
    load_stamp_font()  # the CJK stamp font, so the first signature does not pay for it
    uvicorn.run(create_app(services), **options)
    return 0


@contextmanager
def _transaction(args: argparse.Namespace) -> Iterator[Session]:
    """One committed transaction on the instance's database, for a one-shot command."""
    engine = open_database(_settings(args))
    try:
        with make_session_factory(engine)() as db, db.begin():
            yield db
    finally:
        engine.dispose()


class CenterAmbiguous(Exception):
    """More than one center (or none), and --center did not say which."""


def _the_center(db: Session, center_id: str | None) -> Center:
    """The named center, or the only one there is."""
    if center_id:
        return centers.get_center(db, center_id)
    known = centers.list_centers(db)
    if len(known) != 1:
        names = ", ".join(f"{c.id} ({c.name})" for c in known) or "none yet: run evalsign init"
        raise CenterAmbiguous(f"say which center with --center; centers: {names}")
    return known[0]


def cmd_token_create(args: argparse.Namespace) -> int:
    with _transaction(args) as db:
        center = _the_center(db, args.center)
        caller = audit.Caller(center.id, "cli:token")
        issued = staff_tokens.issue_staff_token(
            db, caller, SystemClock(), Role(args.role), args.label or f"cli {args.role}"
        )
    _print(
        {
            "center_id": issued.center_id,
            "id": issued.token_id,
            "role": issued.role.value,
            "label": issued.label,
            "token": issued.secret,
        }
    )
    return 0


def cmd_provider_set(args: argparse.Namespace) -> int:
    """Create or change a center's remote signing provider (CSC API v2), as the admin's
    PUT /api/v1/pki/signing-providers/{name} does. The client secret comes from
    EVALSIGN_PROVIDER_CLIENT_SECRET, never the command line (other users see that)."""
    from evaluation.trust import pki, providers
    from signing.field_cipher import FieldCipher

    settings = _settings(args)
    cipher = FieldCipher(load_keyring(settings.vault_dir, settings.master_key))
    secret = os.environ.get("EVALSIGN_PROVIDER_CLIENT_SECRET") or None
    with _transaction(args) as db:
        center = _the_center(db, args.center)
        row = providers.configure_provider(
            db,
            audit.Caller(center.id, "cli:provider"),
            SystemClock(),
            cipher,
            providers.ProviderFields(
                name=args.name,
                base_url=args.base_url,
                token_url=args.token_url,
                client_id=args.client_id,
                client_secret=secret,
                root=Path(args.root).read_bytes(),
            ),
        )
        root = pki.load_certificate(row.root_der)
        _print(
            {
                "center_id": center.id,
                "id": row.id,
                "name": row.name,
                "base_url": row.base_url,
                "token_url": row.token_url,
                "client_id": row.client_id,
                "client_secret_changed": secret is not None,
                "root_fingerprint": pki.fingerprint(root),
            }
        )
    return 0


def cmd_documents_sweep(args: argparse.Namespace) -> int:
    """Delete stored document objects that no revision records (crashed signings and
    uploads leave them), older than the grace period so nothing in flight is touched."""
    from datetime import UTC, datetime, timedelta

    from evaluation.documents import documents
    from evaluation.documents.store import open_store

    settings = _settings(args)
    store = open_store(
        settings.documents_dir,
        settings.document_store,
        cache_bytes=settings.document_cache_bytes,
    )
    older_than = datetime.now(UTC) - timedelta(hours=args.older_than_hours)
    with _transaction(args) as db:
        removed = documents.sweep_unrecorded(db, store, older_than)
    _print(
        {
            "removed": len(removed),
            "bytes": sum(r.piece.length for r in removed),
            "objects": [f"{r.document_id}/{r.piece.name}" for r in removed],
        }
    )
    return 0


def cmd_audit_verify(args: argparse.Namespace) -> int:
    from evaluation.trust import checkpoints

    results = []
    with _transaction(args) as db:
        ids = [args.center] if args.center else [c.id for c in centers.list_centers(db)]
        for center_id in ids:
            chain = audit.verify_chain(db, center_id)
            against = checkpoints.verify_against(db, center_id)
            results.append(
                {
                    **vars(chain),
                    "ok": chain.ok and against.ok,
                    "checkpoints_checked": against.checked,
                    "checkpoint_problems": [p.as_json() for p in against.problems],
                }
            )
    ok = all(result["ok"] for result in results)
    _print({"ok": ok, "centers": results})
    return 0 if ok else 1


def cmd_face_compare(args: argparse.Namespace) -> int:
    from api.services import face_engine_for
    from evaluation.identity.faces import FacePolicy, compare_images

    settings = _settings(args)
    result = compare_images(
        face_engine_for(settings),
        FacePolicy.from_settings(settings),
        Path(args.image_a).read_bytes(),
        Path(args.image_b).read_bytes(),
    )
    _print(result)
    return 0


def cmd_face_samples(args: argparse.Namespace) -> int:
    """Portraits that pass enrollment, from the photos the model packages ship: what an
    operator tries the registry with before the first real expert comes to the desk."""
    from api.services import face_engine_for
    from face.samples import encode, sample_portraits

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, portrait in sample_portraits(face_engine_for(_settings(args)), args.count).items():
        path = out / f"{name}.jpg"
        path.write_bytes(encode(portrait))
        written.append(str(path))
    _print({"written": written})
    return 0


def cmd_face_eval(args: argparse.Namespace) -> int:
    from api.services import face_engine_for
    from evaluation.identity.faces import FacePolicy, evaluate_pairs

    settings = _settings(args)
    threshold = args.threshold if args.threshold is not None else settings.face_match_threshold
    report = evaluate_pairs(
        face_engine_for(settings),
        FacePolicy.from_settings(settings),
        Path(args.pairs),
        threshold,
    )
    _print(report)
    return 0


def cmd_pdf_validate(args: argparse.Namespace) -> int:
    """Every signature of a PDF against a trust list: the roots given with --root (an
    outside party's check, no database), or this instance's centers'. Exit 0 only when
    every signature is valid and trusted."""
    import dataclasses

    from cryptography import x509

    from api.services import revocation_check_for
    from signing import pades

    external: list[x509.Certificate] | None = None  # None: any root given may be fetched for
    if args.root:
        roots = []
        for path in args.root:
            try:
                roots += x509.load_pem_x509_certificates(Path(path).read_bytes())
            except ValueError as exc:
                raise OSError(f"{path} is not a PEM certificate: {exc}") from exc
    else:
        from evaluation.trust import pki

        with _transaction(args) as db:
            center_ids = [args.center] if args.center else [c.id for c in centers.list_centers(db)]
            roots = [root for center_id in center_ids for root in pki.trust_roots(db, center_id)]
            external = [r for c in center_ids for r in pki.external_trust_roots(db, c)]
    online = revocation_check_for(_settings(args), external, args.revocation)
    # pyHanko logs every path it could not validate with a traceback; the report says it
    # in one line per signature.
    for name in ("pyhanko", "pyhanko_certvalidator"):
        logging.getLogger(name).setLevel(logging.CRITICAL)
    try:
        report = pades.validate(Path(args.file), roots, online=online)
    except pades.PdfRejected as exc:
        print(json.dumps({"error": "PdfRejected", "detail": str(exc)}), file=sys.stderr)
        return 2
    if args.json:
        _print(json.loads(json.dumps(dataclasses.asdict(report), default=str)))
    else:
        print(_validation_summary(Path(args.file).name, report))
    return 0 if report.verdict == "valid" else 1


def _validation_summary(name: str, report: Any) -> str:
    """One screen: the verdict, then a line (and its problems) per signature."""
    lines = [f"{name}: {report.verdict.upper()} - {report.summary}"]
    for kind, entries in (
        ("signature", report.signatures),
        ("time-stamp", report.document_timestamps),
    ):
        for entry in entries:
            # "ok" only for a signature whose revocation status was seen; "?" marks one
            # that is intact and trusted but whose status nobody could tell.
            unchecked = entry.ok and not entry.revocation_checked
            mark = "?  " if unchecked else "ok " if entry.ok else "NO "
            when = entry.timestamp_time or entry.signing_time
            lines.append(
                f"  {mark} {kind} {entry.field_name}: {entry.signer_subject}"
                f" ({entry.pades_level}{', ' + str(when)[:19] if when else ''})"
                f"{'' if entry.trusted or entry.revoked else ', not trusted by the roots given'}"
                f"{', REVOKED' if entry.revoked else ''}"
                f"{', revocation status not checked' if unchecked else ''}"
            )
            lines += [f"        {problem}" for problem in entry.problems[:3]]
    return "\n".join(lines)


def cmd_draw_verify(args: argparse.Namespace) -> int:
    """Replay a chain of draw proofs (a JSON list) or a single proof; exit 1 naming the
    first link that does not replay."""
    from evaluation.committee import draw_proof

    try:
        published = json.loads(Path(args.proof).read_text(encoding="utf-8"))
    except ValueError as exc:  # not UTF-8 or not JSON; an unreadable file is main's OSError
        print(json.dumps({"error": "InvalidProof", "detail": str(exc)}), file=sys.stderr)
        return 2
    try:
        chain = draw_proof.verify_chain(published)
    except draw_proof.ChainMismatch as exc:
        _print(
            {
                "ok": False,
                "link": exc.link,
                "draw_id": exc.draw_id,
                "differences": [d.as_json() for d in exc.differences],
            }
        )
        return 1
    links = [
        {
            "link": link,
            "draw_id": proof["draw_id"],
            "algorithm": proof["algorithm"],
            "proof_hash": draw_proof.proof_hash(proof),
        }
        for link, proof in enumerate(chain)
    ]
    committee = [
        {"link": link, "draw_id": chain[link]["draw_id"], "specialty": s, "expert_id": e}
        for link, s, e in draw_proof.committee_of_chain(chain)
    ]
    _print({"ok": True, "draw_id": chain[-1]["draw_id"], "links": links, "committee": committee})
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    import tempfile

    from api.demo import DemoFailed, run_demo

    if args.data_dir:
        data_dir = Path(args.data_dir)
        if data_dir.exists() and any(data_dir.iterdir()):
            print(
                json.dumps(
                    {
                        "error": "DataDirNotEmpty",
                        "detail": f"{data_dir} is not empty; "
                        "the demo needs a fresh instance (omit --data-dir for a temporary one)",
                    }
                ),
                file=sys.stderr,
            )
            return 2
    else:
        data_dir = Path(tempfile.mkdtemp(prefix="evalsign-demo-"))
    out = Path(args.out) if args.out else None
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
    try:
        run_demo(Settings(data_dir=data_dir), out)
    except DemoFailed as exc:
        detail = f"{exc}; the instance is kept for a look in {data_dir}"
        print(
            json.dumps({"error": "DemoFailed", "detail": detail}, ensure_ascii=False),
            file=sys.stderr,
        )
        return 1
    if args.data_dir:
        print(f"The demo's instance stays in {data_dir}.")
    else:
        shutil.rmtree(data_dir, ignore_errors=True)
        print(f"The demo's temporary instance ({data_dir}) was removed.")
    return 0


def cmd_evidence_verify(args: argparse.Namespace) -> int:
    from evaluation.supervision.evidence import verify_file

    report = verify_file(Path(args.package), Path(args.root) if args.root else None)
    _print({"ok": report.ok, "checks": report.checks})
    return 0 if report.ok else 1


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--data-dir", help="data directory (default: EVALSIGN_DATA_DIR or ./var)")

    parser = argparse.ArgumentParser(prog="evalsign", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    init = commands.add_parser("init", parents=[common], help="create or check an instance")
    init.add_argument("--center", help="center name (default: EVALSIGN_CENTER_NAME)")
    init.set_defaults(handler=cmd_init)

    migrate = commands.add_parser(
        "migrate",
        parents=[common],
        help="bring the database schema to this release (once per release; safe to race)",
    )
    migrate.set_defaults(handler=cmd_migrate)

    worker = commands.add_parser(
        "worker", parents=[common], help="run the periodic jobs (one place per cluster)"
    )
    worker.add_argument("--once", action="store_true", help="run what is due once and exit")
    worker.set_defaults(handler=cmd_worker)

    serve = commands.add_parser("serve", parents=[common], help="serve the HTTP API")
    serve.add_argument(
        "--migrate",
        action="store_true",
        help="migrate the schema first (default: only check it; run `evalsign migrate`)",
    )
    serve.add_argument("--host", help="listen address (default: EVALSIGN_HOST or 127.0.0.1)")
    serve.add_argument(
        "--port",
        type=int,
        help="listen port (default: EVALSIGN_PORT or 8000); without EVALSIGN_PUBLIC_URL, QR "
        "codes and certificate URLs name http://localhost:PORT",
    )
    serve.add_argument(
        "--workers", type=int, default=1, help="worker processes (default 1; each loads the models)"
    )
    https = serve.add_argument_group("HTTPS (phones open the camera only over HTTPS)")
    https.add_argument(
        "--tls",
        action="store_true",
        help="serve HTTPS with a certificate from the center's issuing CA (kept in DATA_DIR/tls)",
    )
    https.add_argument(
        "--host-name",
        action="append",
        metavar="NAME",
        help="DNS name or IP address phones use; repeat or comma-separate for several",
    )
    https.add_argument("--tls-cert", metavar="FILE", help="use this PEM certificate chain")
    https.add_argument("--tls-key", metavar="FILE", help="and this PEM private key")
    https.add_argument(
        "--center",
        help="center id whose CA issues the certificate "
        "(default: the one named EVALSIGN_CENTER_NAME, else the first)",
    )
    proxy = serve.add_argument_group("behind a reverse proxy")
    proxy.add_argument(
        "--proxy-headers",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="trust X-Forwarded-For/-Proto from --forwarded-allow-ips (default: on)",
    )
    proxy.add_argument(
        "--forwarded-allow-ips",
        metavar="IPS",
        help="comma-separated proxy addresses or networks whose X-Forwarded-* headers count, "
        "'*' for any (default: $FORWARDED_ALLOW_IPS or 127.0.0.1)",
    )
    serve.set_defaults(handler=cmd_serve)

    token = commands.add_parser("token", help="staff tokens").add_subparsers(
        dest="token_command", required=True
    )
    create = token.add_parser("create", parents=[common], help="issue a staff token")
    create.add_argument("--center", help="center id (default: the only center)")
    create.add_argument("--role", required=True, choices=[role.value for role in Role])
    create.add_argument("--label")
    create.set_defaults(handler=cmd_token_create)

    provider_cmd = commands.add_parser(
        "provider", help="a center's remote signing provider (CSC API v2)"
    ).add_subparsers(dest="provider_command", required=True)
    provider_set = provider_cmd.add_parser(
        "set",
        parents=[common],
        help="create or change it; the client secret from $EVALSIGN_PROVIDER_CLIENT_SECRET",
    )
    provider_set.add_argument("name", help="its name in the center, e.g. cfca")
    provider_set.add_argument("--center", help="center id (default: the only center)")
    provider_set.add_argument("--base-url", required=True, help="up to and without /csc/v2")
    provider_set.add_argument("--token-url", required=True, help="the OAuth2 token endpoint")
    provider_set.add_argument("--client-id", required=True)
    provider_set.add_argument("--root", required=True, metavar="PEM", help="the provider's root")
    provider_set.set_defaults(handler=cmd_provider_set)

    audit_cmd = commands.add_parser("audit", help="audit log").add_subparsers(
        dest="audit_command", required=True
    )
    verify = audit_cmd.add_parser("verify", parents=[common], help="recompute the hash chain")
    verify.add_argument("--center", help="only this center id")
    verify.set_defaults(handler=cmd_audit_verify)

    documents_cmd = commands.add_parser("documents", help="stored documents").add_subparsers(
        dest="documents_command", required=True
    )
    sweep = documents_cmd.add_parser(
        "sweep", parents=[common], help="delete stored objects no revision records"
    )
    sweep.add_argument(
        "--older-than-hours",
        type=float,
        default=24.0,
        help="leave younger objects alone: they may belong to a signing in flight",
    )
    sweep.set_defaults(handler=cmd_documents_sweep)

    pdf = commands.add_parser("pdf", help="signed PDFs").add_subparsers(
        dest="pdf_command", required=True
    )
    validate = pdf.add_parser(
        "validate", parents=[common], help="check every signature against the trust list"
    )
    validate.add_argument("file")
    validate.add_argument("--center", help="trust this center's list only (default: all)")
    validate.add_argument(
        "--root",
        action="append",
        metavar="PEM",
        help="trust this root (PEM; repeatable) instead of an instance's lists: no database",
    )
    validate.add_argument(
        "--revocation",
        choices=["require", "soft-fail", "off"],
        help="when no embedded data settles a certificate of another CA: fetch its OCSP/CRL "
        "and call an unknown status INDETERMINATE (require), or still valid, marked unchecked "
        "(soft-fail); or stay offline (off). Default: $EVALSIGN_REVOCATION_POLICY or require",
    )
    validate.add_argument("--json", action="store_true", help="the full report as JSON")
    validate.set_defaults(handler=cmd_pdf_validate)

    face = commands.add_parser("face", help="face engine diagnostics").add_subparsers(
        dest="face_command", required=True
    )
    compare = face.add_parser("compare", parents=[common], help="similarity of two faces")
    compare.add_argument("image_a")
    compare.add_argument("image_b")
    compare.set_defaults(handler=cmd_face_compare)
    samples = face.add_parser(
        "samples", parents=[common], help="write portraits that enroll, from the shipped photos"
    )
    samples.add_argument("--out", required=True, help="directory for the JPEG files")
    samples.add_argument("--count", type=int, default=5, help="at most this many (default 5)")
    samples.set_defaults(handler=cmd_face_samples)
    evaluate = face.add_parser(
        "eval", parents=[common], help="accuracy, EER and TAR@FAR over labelled pairs"
    )
    evaluate.add_argument("pairs", help="CSV with columns img_a,img_b,same (paths relative to it)")
    evaluate.add_argument("--threshold", type=float, help="default: EVALSIGN_FACE_MATCH_THRESHOLD")
    evaluate.set_defaults(handler=cmd_face_eval)

    evidence_cmd = commands.add_parser("evidence", help="evidence packages").add_subparsers(
        dest="evidence_command", required=True
    )
    evidence_verify = evidence_cmd.add_parser(
        "verify", help="check an evidence package: signatures, hashes, proof, audit chain"
    )
    evidence_verify.add_argument("package")
    evidence_verify.add_argument(
        "--root", help="the center root certificate (PEM), obtained from the center itself"
    )
    evidence_verify.set_defaults(handler=cmd_evidence_verify)
    demo = commands.add_parser(
        "demo", help="run the whole evaluation job on a fresh instance and print each step"
    )
    demo.add_argument(
        "--data-dir",
        help="a new, empty data directory, kept afterwards (default: a temporary one, removed "
        "when the demo succeeds)",
    )
    demo.add_argument(
        "--out",
        help="write report.pdf, contract.pdf, evidence.zip, center-root.pem, draw-proof.json, "
        "supplementary-draw-proof.json, summary.json and room-qr.png here",
    )
    demo.set_defaults(handler=cmd_demo)
    draw_cmd = commands.add_parser("draw", help="committee draws").add_subparsers(
        dest="draw_command", required=True
    )
    draw_verify = draw_cmd.add_parser(
        "verify", help="replay a draw's chain of proofs (or a single evalsign-draw-v1 proof)"
    )
    draw_verify.add_argument("proof", help="the proof JSON file: a list of proofs, or one")
    draw_verify.set_defaults(handler=cmd_draw_verify)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code: int = args.handler(args)
    except (
        DomainError,
        CenterAmbiguous,
        KeyringError,
        ModelPackError,
        AntiSpoofModelError,
        server_tls.ServerCertificateError,
        SchemaMismatch,
        OSError,
    ) as exc:
        print(json.dumps({"error": type(exc).__name__, "detail": str(exc)}), file=sys.stderr)
        return 2
    return code


if __name__ == "__main__":
    sys.exit(main())
