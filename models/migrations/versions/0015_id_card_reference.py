"""Which reference a face template was made from: photos taken at the center, or a
representative's own photo of their ID card (remote enrollment, lower assurance).

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("face_templates", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("reference", sa.String(length=20), server_default="in-person", nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("face_templates", schema=None) as batch_op:
        batch_op.drop_column("reference")
