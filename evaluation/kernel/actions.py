"""Every action the audit log records, in one spelling: a mistyped action is a type error,
not a supervisor's search that silently finds nothing."""

from __future__ import annotations

from enum import StrEnum


class Action(StrEnum):
    ANOMALY_ACKNOWLEDGED = "anomaly.acknowledged"
    ANOMALY_FLAGGED = "anomaly.flagged"
    ANOMALY_RESOLVED = "anomaly.resolved"

    ARCHIVE_BUILT = "archive.built"
    ARCHIVE_PUSH_FAILED = "archive.push_failed"
    ARCHIVE_PUSHED = "archive.pushed"

    ASSIGNMENT_ACCEPTED = "assignment.accepted"
    ASSIGNMENT_DECLINED = "assignment.declined"
    ASSIGNMENT_REPLACED = "assignment.replaced"

    CALL_UP_EXPIRED = "call_up.expired"
    CALL_UP_FAILED = "call_up.failed"
    CALL_UP_SEAT_UNFILLED = "call_up.seat_unfilled"
    CALL_UP_SENT = "call_up.sent"

    CENTER_CREATED = "center.created"

    CERTIFICATE_ISSUED = "certificate.issued"

    CONSOLE_LOGIN = "console.login"
    CONSOLE_LOGOUT = "console.logout"

    CONTRACT_COMPLETED = "contract.completed"
    CONTRACT_CREATED = "contract.created"
    CONTRACT_LINK_ISSUED = "contract.link_issued"
    CONTRACT_SIGNED = "contract.signed"

    CREDENTIAL_LINK_REFUSED = "credential.link_refused"
    CREDENTIAL_LINKED = "credential.linked"
    CREDENTIAL_RESUMED = "credential.resumed"
    CREDENTIAL_REVOKED = "credential.revoked"
    CREDENTIAL_SUSPENDED = "credential.suspended"

    DOCUMENT_ARCHIVED = "document.archived"
    DOCUMENT_CANCEL = "document.cancel"
    DOCUMENT_COMPLETED = "document.completed"
    DOCUMENT_SIGNED = "document.signed"
    DOCUMENT_START = "document.start"
    DOCUMENT_UPLOADED = "document.uploaded"

    DRAW_COMMITTED = "draw.committed"
    DRAW_COMPLETED = "draw.completed"
    DRAW_SUPPLEMENTARY_COMMITTED = "draw.supplementary_committed"
    DRAW_SUPPLEMENTARY_COMPLETED = "draw.supplementary_completed"

    EVALUATION_AGGREGATED = "evaluation.aggregated"
    EVALUATION_CHAIR_CHOSEN = "evaluation.chair_chosen"
    EVALUATION_CHAIR_VOTE = "evaluation.chair_vote"
    EVALUATION_DISSENT_RECORDED = "evaluation.dissent_recorded"
    EVALUATION_RECUSAL_DECLARED = "evaluation.recusal_declared"
    EVALUATION_REFUSED_TO_SIGN = "evaluation.refused_to_sign"
    EVALUATION_REPORT_GENERATED = "evaluation.report_generated"
    EVALUATION_RESULTS_AGREED = "evaluation.results_agreed"
    EVALUATION_SCORES_SUBMITTED = "evaluation.scores_submitted"
    EVALUATION_SECOND_DEVICE = "evaluation.second_device"
    EVALUATION_SESSION_REVOKED = "evaluation.session_revoked"
    EVALUATION_SIGNED_IN = "evaluation.signed_in"

    EXPERT_FACE_ENROLLED = "expert.face_enrolled"
    EXPERT_FACE_REENROLLED = "expert.face_reenrolled"
    EXPERT_FACE_REMOVED = "expert.face_removed"
    EXPERT_IMPORTED = "expert.imported"
    EXPERT_REACTIVATE = "expert.reactivate"
    EXPERT_REGISTERED = "expert.registered"
    EXPERT_SUSPEND = "expert.suspend"
    EXPERT_UPDATED = "expert.updated"

    FACE_CHALLENGE_ISSUED = "face.challenge_issued"
    FACE_CHECK_LOCKED = "face.check_locked"
    FACE_CHECK_UNLOCKED = "face.check_unlocked"
    FACE_CONSENT_GIVEN = "face.consent_given"
    FACE_CONSENT_REFUSED = "face.consent_refused"
    FACE_CONSENT_WITHDRAWN = "face.consent_withdrawn"
    FACE_FRAMES_EXPIRED = "face.frames_expired"
    FACE_REMOTE_ENROLLMENT_CONFIRMED = "face.remote_enrollment_confirmed"
    # The identity provider answered after the review was decided (its answer changes nothing).
    FACE_REMOTE_ENROLLMENT_PROVIDER_LATE = "face.remote_enrollment_provider_late"
    # The identity provider gave no decision: the review waits for an operator.
    FACE_REMOTE_ENROLLMENT_PROVIDER_UNAVAILABLE = "face.remote_enrollment_provider_unavailable"
    FACE_REMOTE_ENROLLMENT_REJECTED = "face.remote_enrollment_rejected"
    FACE_SUBMISSION_REFUSED = "face.submission_refused"
    FACE_TEMPLATE_EXPIRED = "face.template_expired"
    FACE_VERIFICATION_FAILED = "face.verification_failed"
    FACE_VERIFICATION_PASSED = "face.verification_passed"

    IDENTITY_IN_PERSON_CHECK_VOIDED = "identity.in_person_check_voided"
    IDENTITY_IN_PERSON_CHECKED = "identity.in_person_checked"
    IDENTITY_PIN_FAILED = "identity.pin_failed"
    IDENTITY_PIN_SET = "identity.pin_set"
    IDENTITY_PIN_VERIFIED = "identity.pin_verified"

    PASSKEY_BOUND = "passkey.bound"
    PASSKEY_ENROLLMENT_STARTED = "passkey.enrollment_started"
    PASSKEY_REFUSED = "passkey.refused"
    PASSKEY_REVOKED = "passkey.revoked"

    PERSON_REGISTERED = "person.registered"

    PKI_ISSUING_CA_CREATED = "pki.issuing_ca_created"
    PKI_ISSUING_CA_IMPORTED = "pki.issuing_ca_imported"
    PKI_ROOT_CA_CREATED = "pki.root_ca_created"
    PKI_TLS_CERTIFICATE_ISSUED = "pki.tls_certificate_issued"
    PKI_TRUST_ANCHOR_ADDED = "pki.trust_anchor_added"
    PKI_TRUST_ANCHOR_REMOVED = "pki.trust_anchor_removed"

    PLATFORM_KEY_ISSUED = "platform_key.issued"
    PLATFORM_KEY_REVOKED = "platform_key.revoked"

    PROJECT_COMPLETED = "project.completed"
    PROJECT_CREATED = "project.created"
    PROJECT_REVISED = "project.revised"

    SIGNATURE_AUTHORIZED = "signature.authorized"
    SIGNATURE_CREATED = "signature.created"
    SIGNATURE_REFUSED = "signature.refused"

    SIGNING_PROVIDER_CONFIGURED = "signing_provider.configured"

    STAFF_TOKEN_ISSUED = "staff_token.issued"
    STAFF_TOKEN_REVOKED = "staff_token.revoked"

    TASK_PERSONAL_QR_ISSUED = "task.personal_qr_issued"
    TASK_SCAN_REFUSED = "task.scan_refused"
    TASK_SCANNED = "task.scanned"

    UNIT_REGISTERED = "unit.registered"
    UNIT_REPRESENTATIVE_AUTHORIZED = "unit.representative_authorized"
    UNIT_REPRESENTATIVE_REVOKED = "unit.representative_revoked"
    UNIT_SEAL_IMAGE_SET = "unit.seal_image_set"
    UNIT_UPDATED = "unit.updated"

    VAULT_KEY_GENERATED = "vault.key_generated"

    WEBHOOK_DELIVERY_FAILED = "webhook.delivery_failed"
    WEBHOOK_SECRET_ROTATED = "webhook.secret_rotated"
    WEBHOOK_SUBSCRIPTION_CREATED = "webhook.subscription_created"
    WEBHOOK_SUBSCRIPTION_DISABLED = "webhook.subscription_disabled"


# Entries written before the spelling was unified keep their words (the hash chain covers
# them); searches for the action find both.
LEGACY_SPELLINGS: dict[Action, str] = {
    Action.CONTRACT_LINK_ISSUED: "contract.link-issued",
    Action.UNIT_REPRESENTATIVE_AUTHORIZED: "unit.representative-authorized",
    Action.UNIT_REPRESENTATIVE_REVOKED: "unit.representative-revoked",
    Action.UNIT_SEAL_IMAGE_SET: "unit.seal-image-set",
}


def spellings(action: Action) -> list[str]:
    """The words stored for an action: its own and, for older entries, a legacy one."""
    legacy = LEGACY_SPELLINGS.get(action)
    return [action.value] if legacy is None else [action.value, legacy]
