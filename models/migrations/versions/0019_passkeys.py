"""Passkeys: phones bound to people at the desk, WebAuthn challenges, and each verified
assertion kept as evidence with the sign-in or the signature activation it approved; a
contract link keeps the phone that opened it first.

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-07
"""

import uuid

import sqlalchemy as sa
from alembic import op

import models.base


revision = '0019'
down_revision = '0018'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('passkey_enrollments',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('center_id', sa.String(length=36), nullable=False),
    sa.Column('expert_id', sa.String(length=36), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('started_by', sa.String(length=100), nullable=False),
    sa.Column('created_at', models.base.UTCDateTime(), nullable=False),
    sa.Column('expires_at', models.base.UTCDateTime(), nullable=False),
    sa.Column('device_id', sa.String(length=100), nullable=True),
    sa.Column('opened_at', models.base.UTCDateTime(), nullable=True),
    sa.Column('face_challenge_id', sa.String(length=36), nullable=True),
    sa.Column('registration_challenge_hash', sa.String(length=64), nullable=True),
    sa.Column('completed_at', models.base.UTCDateTime(), nullable=True),
    sa.ForeignKeyConstraint(['center_id'], ['centers.id'], name=op.f('fk_passkey_enrollments_center_id_centers')),
    sa.ForeignKeyConstraint(['expert_id'], ['experts.id'], name=op.f('fk_passkey_enrollments_expert_id_experts')),
    sa.ForeignKeyConstraint(['face_challenge_id'], ['face_challenges.id'], name=op.f('fk_passkey_enrollments_face_challenge_id_face_challenges')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_passkey_enrollments')),
    sa.UniqueConstraint('token_hash', name=op.f('uq_passkey_enrollments_token_hash'))
    )
    with op.batch_alter_table('passkey_enrollments', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_passkey_enrollments_expert_id'), ['expert_id'], unique=False)

    op.create_table('passkeys',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('center_id', sa.String(length=36), nullable=False),
    sa.Column('expert_id', sa.String(length=36), nullable=False),
    sa.Column('credential_id', sa.String(length=1400), nullable=False),
    sa.Column('public_key', sa.LargeBinary(), nullable=False),
    sa.Column('algorithm', sa.Integer(), nullable=False),
    sa.Column('sign_count', sa.BigInteger(), nullable=False),
    sa.Column('aaguid', sa.String(length=36), nullable=False),
    sa.Column('transports', sa.JSON(), nullable=False),
    sa.Column('backup_eligible', sa.Boolean(), nullable=False),
    sa.Column('label', sa.String(length=200), nullable=False),
    sa.Column('device_id', sa.String(length=100), nullable=False),
    sa.Column('enrollment_id', sa.String(length=36), nullable=False),
    sa.Column('verification_id', sa.String(length=36), nullable=False),
    sa.Column('witnessed_by', sa.String(length=100), nullable=False),
    sa.Column('created_at', models.base.UTCDateTime(), nullable=False),
    sa.Column('last_used_at', models.base.UTCDateTime(), nullable=True),
    sa.Column('revoked_at', models.base.UTCDateTime(), nullable=True),
    sa.Column('revoked_by', sa.String(length=100), nullable=True),
    sa.Column('revoke_reason', sa.String(length=200), nullable=True),
    sa.ForeignKeyConstraint(['center_id'], ['centers.id'], name=op.f('fk_passkeys_center_id_centers')),
    sa.ForeignKeyConstraint(['enrollment_id'], ['passkey_enrollments.id'], name=op.f('fk_passkeys_enrollment_id_passkey_enrollments')),
    sa.ForeignKeyConstraint(['expert_id'], ['experts.id'], name=op.f('fk_passkeys_expert_id_experts')),
    sa.ForeignKeyConstraint(['verification_id'], ['face_verifications.id'], name=op.f('fk_passkeys_verification_id_face_verifications')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_passkeys')),
    sa.UniqueConstraint('credential_id', name=op.f('uq_passkeys_credential_id')),
    sa.UniqueConstraint('enrollment_id', name=op.f('uq_passkeys_enrollment_id'))
    )
    with op.batch_alter_table('passkeys', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_passkeys_expert_id'), ['expert_id'], unique=False)

    op.create_table('passkey_challenges',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('center_id', sa.String(length=36), nullable=False),
    sa.Column('expert_id', sa.String(length=36), nullable=False),
    sa.Column('purpose', sa.String(length=20), nullable=False),
    sa.Column('nonce_hash', sa.String(length=64), nullable=False),
    sa.Column('scan_session_id', sa.String(length=36), nullable=True),
    sa.Column('verified_session_id', sa.String(length=36), nullable=True),
    sa.Column('payload', sa.JSON(), nullable=True),
    sa.Column('created_at', models.base.UTCDateTime(), nullable=False),
    sa.Column('expires_at', models.base.UTCDateTime(), nullable=False),
    sa.Column('used_at', models.base.UTCDateTime(), nullable=True),
    sa.CheckConstraint("purpose IN ('sign-in', 'signing')", name=op.f('ck_passkey_challenges_purpose')),
    sa.ForeignKeyConstraint(['center_id'], ['centers.id'], name=op.f('fk_passkey_challenges_center_id_centers')),
    sa.ForeignKeyConstraint(['expert_id'], ['experts.id'], name=op.f('fk_passkey_challenges_expert_id_experts')),
    sa.ForeignKeyConstraint(['scan_session_id'], ['scan_sessions.id'], name=op.f('fk_passkey_challenges_scan_session_id_scan_sessions')),
    sa.ForeignKeyConstraint(['verified_session_id'], ['verified_sessions.id'], name=op.f('fk_passkey_challenges_verified_session_id_verified_sessions')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_passkey_challenges')),
    sa.UniqueConstraint('nonce_hash', name=op.f('uq_passkey_challenges_nonce_hash'))
    )
    op.create_table('passkey_uses',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('center_id', sa.String(length=36), nullable=False),
    sa.Column('passkey_id', sa.String(length=36), nullable=False),
    sa.Column('expert_id', sa.String(length=36), nullable=False),
    sa.Column('challenge_id', sa.String(length=36), nullable=False),
    sa.Column('purpose', sa.String(length=20), nullable=False),
    sa.Column('rp_id', sa.String(length=253), nullable=False),
    sa.Column('challenge', sa.String(length=100), nullable=False),
    sa.Column('evidence', sa.JSON(), nullable=False),
    sa.Column('created_at', models.base.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['center_id'], ['centers.id'], name=op.f('fk_passkey_uses_center_id_centers')),
    sa.ForeignKeyConstraint(['challenge_id'], ['passkey_challenges.id'], name=op.f('fk_passkey_uses_challenge_id_passkey_challenges')),
    sa.ForeignKeyConstraint(['expert_id'], ['experts.id'], name=op.f('fk_passkey_uses_expert_id_experts')),
    sa.ForeignKeyConstraint(['passkey_id'], ['passkeys.id'], name=op.f('fk_passkey_uses_passkey_id_passkeys')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_passkey_uses')),
    sa.UniqueConstraint('challenge_id', name=op.f('uq_passkey_uses_challenge_id'))
    )
    with op.batch_alter_table('passkey_uses', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_passkey_uses_passkey_id'), ['passkey_id'], unique=False)

    with op.batch_alter_table('evaluation_sessions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('passkey_use_id', sa.String(length=36), nullable=True))
        batch_op.create_foreign_key(batch_op.f('fk_evaluation_sessions_passkey_use_id_passkey_uses'), 'passkey_uses', ['passkey_use_id'], ['id'])

    op.create_table('remote_enrollment_reviews',
    sa.Column('id', models.base.ID, nullable=False),
    sa.Column('center_id', models.base.ID, nullable=False),
    sa.Column('expert_id', models.base.ID, nullable=False),
    sa.Column('card_ciphertext', sa.LargeBinary(), nullable=True),
    sa.Column('frame_ciphertext', sa.LargeBinary(), nullable=True),
    sa.Column('verification_id', models.base.ID, nullable=True),
    sa.Column('similarity', sa.Float(), nullable=True),
    sa.Column('created_at', models.base.UTCDateTime(), nullable=False),
    sa.Column('decided_at', models.base.UTCDateTime(), nullable=True),
    sa.Column('decided_by', sa.String(length=100), nullable=True),
    sa.Column('decision', sa.String(length=20), nullable=True),
    sa.Column('note', sa.String(length=500), nullable=True),
    sa.CheckConstraint("decision IN ('confirmed', 'rejected')", name=op.f('ck_remote_enrollment_reviews_decision')),
    sa.ForeignKeyConstraint(['center_id'], ['centers.id'], name=op.f('fk_remote_enrollment_reviews_center_id_centers')),
    sa.ForeignKeyConstraint(['expert_id'], ['experts.id'], name=op.f('fk_remote_enrollment_reviews_expert_id_experts'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['verification_id'], ['face_verifications.id'], name=op.f('fk_remote_enrollment_reviews_verification_id_face_verifications')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_remote_enrollment_reviews'))
    )
    op.create_index('ix_remote_enrollment_reviews_center_open', 'remote_enrollment_reviews', ['center_id', 'decided_at'])
    op.create_index(op.f('ix_remote_enrollment_reviews_expert_id'), 'remote_enrollment_reviews', ['expert_id'])

    with op.batch_alter_table('face_templates', schema=None) as batch_op:
        batch_op.add_column(sa.Column('confirmed_at', models.base.UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column('confirmed_by', sa.String(length=100), nullable=True))
    # A face enrolled at the center was seen by its operator; an ID card sent from a phone
    # before this revision waits for one, as every new one does.
    op.execute(
        "UPDATE face_templates SET confirmed_at = enrolled_at, confirmed_by = 'in-person' "
        "WHERE reference = 'in-person'"
    )
    # Each ID card enrolled from a phone before now gets a review to decide (its photo
    # was not kept: the operator compares the next live check with the person).
    connection = op.get_bind()
    cards = connection.execute(
        sa.text(
            "SELECT expert_id, center_id, enrolled_at FROM face_templates "
            "WHERE reference = 'id-card'"
        )
    ).all()
    for expert_id, center_id, enrolled_at in cards:
        connection.execute(
            sa.text(
                "INSERT INTO remote_enrollment_reviews (id, center_id, expert_id, created_at) "
                "VALUES (:id, :center, :expert, :at)"
            ),
            {"id": str(uuid.uuid4()), "center": center_id, "expert": expert_id, "at": enrolled_at},
        )

    with op.batch_alter_table('contract_links', schema=None) as batch_op:
        batch_op.add_column(sa.Column('device_id', sa.String(length=100), nullable=True))
        batch_op.add_column(sa.Column('opened_at', models.base.UTCDateTime(), nullable=True))

    with op.batch_alter_table('signature_activations', schema=None) as batch_op:
        batch_op.add_column(sa.Column('passkey_use_id', sa.String(length=36), nullable=True))
        batch_op.create_foreign_key(batch_op.f('fk_signature_activations_passkey_use_id_passkey_uses'), 'passkey_uses', ['passkey_use_id'], ['id'])



def downgrade() -> None:
    with op.batch_alter_table('face_templates', schema=None) as batch_op:
        batch_op.drop_column('confirmed_by')
        batch_op.drop_column('confirmed_at')
    op.drop_index(op.f('ix_remote_enrollment_reviews_expert_id'), table_name='remote_enrollment_reviews')
    op.drop_index('ix_remote_enrollment_reviews_center_open', table_name='remote_enrollment_reviews')
    op.drop_table('remote_enrollment_reviews')
    with op.batch_alter_table('contract_links', schema=None) as batch_op:
        batch_op.drop_column('opened_at')
        batch_op.drop_column('device_id')

    with op.batch_alter_table('signature_activations', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_signature_activations_passkey_use_id_passkey_uses'), type_='foreignkey')
        batch_op.drop_column('passkey_use_id')

    with op.batch_alter_table('evaluation_sessions', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_evaluation_sessions_passkey_use_id_passkey_uses'), type_='foreignkey')
        batch_op.drop_column('passkey_use_id')

    with op.batch_alter_table('passkey_uses', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_passkey_uses_passkey_id'))

    op.drop_table('passkey_uses')
    op.drop_table('passkey_challenges')
    with op.batch_alter_table('passkeys', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_passkeys_expert_id'))

    op.drop_table('passkeys')
    with op.batch_alter_table('passkey_enrollments', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_passkey_enrollments_expert_id'))

    op.drop_table('passkey_enrollments')
