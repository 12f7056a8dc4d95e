"""Prepared signatures: a report or contract signature is prepared, approved by the
signer's passkey over the digest of its signed attributes, then finished by any replica.

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

import models.base


revision = '0020'
down_revision = '0019'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('prepared_signatures',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('center_id', sa.String(length=36), nullable=False),
    sa.Column('document_id', sa.String(length=36), nullable=False),
    sa.Column('slot_id', sa.String(length=36), nullable=False),
    sa.Column('signer_id', sa.String(length=36), nullable=False),
    sa.Column('credential_id', sa.String(length=36), nullable=False),
    sa.Column('verified_session_id', sa.String(length=36), nullable=False),
    sa.Column('nonce_hash', sa.String(length=64), nullable=False),
    sa.Column('base_revision', sa.Integer(), nullable=False),
    sa.Column('base_size', sa.BigInteger(), nullable=False),
    sa.Column('base_sha256', sa.String(length=64), nullable=False),
    sa.Column('field_name', sa.String(length=100), nullable=False),
    sa.Column('revision', sa.LargeBinary(), nullable=True),
    sa.Column('reserved_start', sa.BigInteger(), nullable=False),
    sa.Column('reserved_end', sa.BigInteger(), nullable=False),
    sa.Column('document_digest', sa.String(length=64), nullable=False),
    sa.Column('signed_attributes', sa.LargeBinary(), nullable=False),
    sa.Column('approval_digest', sa.String(length=64), nullable=False),
    sa.Column('signing_time', models.base.UTCDateTime(), nullable=False),
    sa.Column('created_at', models.base.UTCDateTime(), nullable=False),
    sa.Column('expires_at', models.base.UTCDateTime(), nullable=False),
    sa.Column('finished_at', models.base.UTCDateTime(), nullable=True),
    sa.ForeignKeyConstraint(['center_id'], ['centers.id'], name=op.f('fk_prepared_signatures_center_id_centers')),
    sa.ForeignKeyConstraint(['credential_id'], ['issued_certificates.id'], name=op.f('fk_prepared_signatures_credential_id_issued_certificates')),
    sa.ForeignKeyConstraint(['document_id'], ['documents.id'], name=op.f('fk_prepared_signatures_document_id_documents')),
    sa.ForeignKeyConstraint(['signer_id'], ['experts.id'], name=op.f('fk_prepared_signatures_signer_id_experts')),
    sa.ForeignKeyConstraint(['slot_id'], ['signer_slots.id'], name=op.f('fk_prepared_signatures_slot_id_signer_slots')),
    sa.ForeignKeyConstraint(['verified_session_id'], ['verified_sessions.id'], name=op.f('fk_prepared_signatures_verified_session_id_verified_sessions')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_prepared_signatures')),
    sa.UniqueConstraint('nonce_hash', name=op.f('uq_prepared_signatures_nonce_hash'))
    )
    with op.batch_alter_table('prepared_signatures', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_prepared_signatures_document_id'), ['document_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('prepared_signatures', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_prepared_signatures_document_id'))
    op.drop_table('prepared_signatures')
