"""Anonymous refusals counted per center, minute, source, action and reason instead of
one audit entry each (a forged room code must not fill the hash chain).

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

import models.base


revision = '0023'
down_revision = '0022'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('anonymous_refusals',
    sa.Column('center_id', sa.String(length=36), nullable=False),
    sa.Column('minute', models.base.UTCDateTime(), nullable=False),
    sa.Column('source', sa.String(length=120), nullable=False),
    sa.Column('action', sa.String(length=60), nullable=False),
    sa.Column('reason', sa.String(length=60), nullable=False),
    sa.Column('count', sa.Integer(), nullable=False),
    sa.Column('first_at', models.base.UTCDateTime(), nullable=False),
    sa.Column('last_at', models.base.UTCDateTime(), nullable=False),
    sa.Column('last_details', sa.JSON(), nullable=False),
    sa.ForeignKeyConstraint(['center_id'], ['centers.id'], name=op.f('fk_anonymous_refusals_center_id_centers')),
    sa.PrimaryKeyConstraint('center_id', 'minute', 'source', 'action', 'reason', name=op.f('pk_anonymous_refusals'))
    )


def downgrade() -> None:
    op.drop_table('anonymous_refusals')
