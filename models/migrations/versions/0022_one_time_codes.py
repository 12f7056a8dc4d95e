"""SMS codes: where a center allows it, a one-time code to the registered mobile stands in
for the passkey at sign-in and signing, recorded with the session or the signature
activation it approved.

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

import models.base


revision = '0022'
down_revision = '0021'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('one_time_codes',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('center_id', sa.String(length=36), nullable=False),
    sa.Column('expert_id', sa.String(length=36), nullable=False),
    sa.Column('purpose', sa.String(length=20), nullable=False),
    sa.Column('nonce_hash', sa.String(length=64), nullable=False),
    sa.Column('code_digest', sa.String(length=64), nullable=False),
    sa.Column('scan_session_id', sa.String(length=36), nullable=True),
    sa.Column('verified_session_id', sa.String(length=36), nullable=True),
    sa.Column('payload', sa.JSON(), nullable=True),
    sa.Column('channel', sa.String(length=40), nullable=False),
    sa.Column('message_id', sa.String(length=100), nullable=False),
    sa.Column('sent_to', sa.String(length=20), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('created_at', models.base.UTCDateTime(), nullable=False),
    sa.Column('expires_at', models.base.UTCDateTime(), nullable=False),
    sa.Column('used_at', models.base.UTCDateTime(), nullable=True),
    sa.CheckConstraint("purpose IN ('sign-in', 'signing')", name=op.f('ck_one_time_codes_purpose')),
    sa.ForeignKeyConstraint(['center_id'], ['centers.id'], name=op.f('fk_one_time_codes_center_id_centers')),
    sa.ForeignKeyConstraint(['expert_id'], ['experts.id'], name=op.f('fk_one_time_codes_expert_id_experts')),
    sa.ForeignKeyConstraint(['scan_session_id'], ['scan_sessions.id'], name=op.f('fk_one_time_codes_scan_session_id_scan_sessions')),
    sa.ForeignKeyConstraint(['verified_session_id'], ['verified_sessions.id'], name=op.f('fk_one_time_codes_verified_session_id_verified_sessions')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_one_time_codes')),
    sa.UniqueConstraint('nonce_hash', name=op.f('uq_one_time_codes_nonce_hash'))
    )
    with op.batch_alter_table('one_time_codes', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_one_time_codes_expert_id'), ['expert_id'], unique=False)
    with op.batch_alter_table('evaluation_sessions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('one_time_code_id', sa.String(length=36), nullable=True))
        batch_op.create_foreign_key(batch_op.f('fk_evaluation_sessions_one_time_code_id_one_time_codes'), 'one_time_codes', ['one_time_code_id'], ['id'])
    with op.batch_alter_table('signature_activations', schema=None) as batch_op:
        batch_op.add_column(sa.Column('one_time_code_id', sa.String(length=36), nullable=True))
        batch_op.create_foreign_key(batch_op.f('fk_signature_activations_one_time_code_id_one_time_codes'), 'one_time_codes', ['one_time_code_id'], ['id'])


def downgrade() -> None:
    with op.batch_alter_table('signature_activations', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_signature_activations_one_time_code_id_one_time_codes'), type_='foreignkey')
        batch_op.drop_column('one_time_code_id')
    with op.batch_alter_table('evaluation_sessions', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_evaluation_sessions_one_time_code_id_one_time_codes'), type_='foreignkey')
        batch_op.drop_column('one_time_code_id')
    with op.batch_alter_table('one_time_codes', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_one_time_codes_expert_id'))
    op.drop_table('one_time_codes')
