"""Asking the identity provider about a remote enrollment, after the request that attached
the live check has committed: no transaction (and no row lock) is held while it answers."""

from __future__ import annotations

import logging

from api.deps import transaction
from api.services import Services
from evaluation.identity import remote_review
from evaluation.identity.identity_verification import IdentityDecision, IdentityVerifier

log = logging.getLogger("evalsign.identity")


def ask_identity_provider(
    services: Services, verifier: IdentityVerifier, review_id: str, request_id: str | None
) -> None:
    """Run after the response (a background task). If this process dies before the answer
    is stored, the review simply stays with the operators."""
    with transaction(services, read_only=True) as db:
        query = remote_review.provider_query(db, services.cipher, review_id)
    if query is None:
        return
    try:
        decision = verifier.verify(
            name=query.name, id_number=query.id_number, face_jpeg=query.face_jpeg
        )
    except Exception:
        # The adapter should not raise; if it does, it is still no decision.
        log.exception("the identity verifier failed")
        decision = IdentityDecision.unavailable("verifier-error")
    with transaction(services) as db:
        remote_review.record_provider_decision(
            db, services.clock, query, decision, request_id=request_id
        )
