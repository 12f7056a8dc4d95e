"""Replay signatures: each face check's landmark trajectory and frame embeddings,
encrypted, kept for the replay window and looked up by expert and time.

Revision ID: 0027
Revises: 0026
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

import models.base


revision = '0027'
down_revision = '0026'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('face_replay_signatures',
    sa.Column('verification_id', sa.String(length=36), nullable=False),
    sa.Column('center_id', sa.String(length=36), nullable=False),
    sa.Column('expert_id', sa.String(length=36), nullable=False),
    sa.Column('ciphertext', sa.LargeBinary(), nullable=False),
    sa.Column('created_at', models.base.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['center_id'], ['centers.id'], name=op.f('fk_face_replay_signatures_center_id_centers')),
    sa.ForeignKeyConstraint(['expert_id'], ['experts.id'], name=op.f('fk_face_replay_signatures_expert_id_experts')),
    sa.ForeignKeyConstraint(['verification_id'], ['face_verifications.id'], name=op.f('fk_face_replay_signatures_verification_id_face_verifications'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('verification_id', name=op.f('pk_face_replay_signatures'))
    )
    with op.batch_alter_table('face_replay_signatures', schema=None) as batch_op:
        batch_op.create_index('ix_face_replay_signatures_created', ['created_at'], unique=False)
        batch_op.create_index('ix_face_replay_signatures_expert_created', ['expert_id', 'created_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('face_replay_signatures', schema=None) as batch_op:
        batch_op.drop_index('ix_face_replay_signatures_expert_created')
        batch_op.drop_index('ix_face_replay_signatures_created')

    op.drop_table('face_replay_signatures')
