"""Running as a cluster: which migrate run reached a revision (readiness of code one
release behind), leases that make each periodic job run once per cluster, and the queue
of face checks compared against the whole center in the background.

Revision ID: 0025
Revises: 0024
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

import models.base


revision = '0025'
down_revision = '0024'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('schema_upgrades',
    sa.Column('revision', sa.String(length=32), nullable=False),
    sa.Column('upgraded_from', sa.String(length=32), nullable=True),
    sa.Column('applied_at', models.base.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('revision', name=op.f('pk_schema_upgrades'))
    )
    op.create_table('job_leases',
    sa.Column('name', sa.String(length=60), nullable=False),
    sa.Column('holder', sa.String(length=200), nullable=True),
    sa.Column('expires_at', models.base.UTCDateTime(), nullable=True),
    sa.Column('next_run_at', models.base.UTCDateTime(), nullable=False),
    sa.Column('last_finished_at', models.base.UTCDateTime(), nullable=True),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_job_leases'))
    )
    op.create_table('face_cross_checks',
    sa.Column('verification_id', sa.String(length=36), nullable=False),
    sa.Column('center_id', sa.String(length=36), nullable=False),
    sa.Column('model_id', sa.String(length=100), nullable=False),
    sa.Column('probe_ciphertext', sa.LargeBinary(), nullable=True),
    sa.Column('threshold', sa.Float(), nullable=False),
    sa.Column('claimed_similarity', sa.Float(), nullable=False),
    sa.Column('created_at', models.base.UTCDateTime(), nullable=False),
    sa.Column('swept_at', models.base.UTCDateTime(), nullable=True),
    sa.Column('other_expert_id', sa.String(length=36), nullable=True),
    sa.Column('other_similarity', sa.Float(), nullable=True),
    sa.ForeignKeyConstraint(['center_id'], ['centers.id'], name=op.f('fk_face_cross_checks_center_id_centers')),
    sa.ForeignKeyConstraint(['verification_id'], ['face_verifications.id'], name=op.f('fk_face_cross_checks_verification_id_face_verifications'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('verification_id', name=op.f('pk_face_cross_checks'))
    )
    with op.batch_alter_table('face_cross_checks', schema=None) as batch_op:
        batch_op.create_index('ix_face_cross_checks_pending', ['swept_at', 'created_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('face_cross_checks', schema=None) as batch_op:
        batch_op.drop_index('ix_face_cross_checks_pending')
    op.drop_table('face_cross_checks')
    op.drop_table('job_leases')
    op.drop_table('schema_upgrades')
