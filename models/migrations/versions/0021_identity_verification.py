"""The identity provider's answer on a remote enrollment review: its outcome, its reference
for tracing the check at the provider, and its score.

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("remote_enrollment_reviews", schema=None) as batch_op:
        batch_op.add_column(sa.Column("provider_outcome", sa.String(length=20), nullable=True))
        batch_op.add_column(sa.Column("provider_reference", sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column("provider_score", sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("remote_enrollment_reviews", schema=None) as batch_op:
        batch_op.drop_column("provider_score")
        batch_op.drop_column("provider_reference")
        batch_op.drop_column("provider_outcome")
