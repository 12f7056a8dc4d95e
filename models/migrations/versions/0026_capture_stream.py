"""Streamed face checks: a challenge's light steps, and the frame chunks a phone uploads
step by step (kept until the stream closes).

Revision ID: 0026
Revises: 0025
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

import models.base


revision = '0026'
down_revision = '0025'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('capture_chunks',
    sa.Column('challenge_id', sa.String(length=36), nullable=False),
    sa.Column('step', sa.Integer(), nullable=False),
    sa.Column('center_id', sa.String(length=36), nullable=False),
    sa.Column('device_id', sa.String(length=100), nullable=False),
    sa.Column('received_at', models.base.UTCDateTime(), nullable=False),
    sa.Column('timestamps_ms', sa.JSON(), nullable=False),
    sa.Column('carried', sa.Integer(), nullable=False),
    sa.Column('ciphertext', sa.LargeBinary(), nullable=False),
    sa.ForeignKeyConstraint(['center_id'], ['centers.id'], name=op.f('fk_capture_chunks_center_id_centers')),
    sa.ForeignKeyConstraint(['challenge_id'], ['face_challenges.id'], name=op.f('fk_capture_chunks_challenge_id_face_challenges'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('challenge_id', 'step', name=op.f('pk_capture_chunks'))
    )
    with op.batch_alter_table('face_challenges', schema=None) as batch_op:
        batch_op.add_column(sa.Column('steps', sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('face_challenges', schema=None) as batch_op:
        batch_op.drop_column('steps')
    op.drop_table('capture_chunks')
