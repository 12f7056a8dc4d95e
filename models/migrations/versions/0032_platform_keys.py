"""Platform keys: a trading platform's HMAC keys for the project intake API.

Revision ID: 0032
Revises: 0031
"""

import sqlalchemy as sa
from alembic import op

import models.base

revision = '0032'
down_revision = '0031'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "platform_keys",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("center_id", sa.String(36), sa.ForeignKey("centers.id"), nullable=False),
        sa.Column("platform", sa.String(64), nullable=False),
        sa.Column("secret_ciphertext", sa.LargeBinary(), nullable=False),
        sa.Column("created_by", sa.String(100), nullable=False),
        sa.Column("created_at", models.base.UTCDateTime(), nullable=False),
        sa.Column("last_used_at", models.base.UTCDateTime(), nullable=True),
        sa.Column("revoked_at", models.base.UTCDateTime(), nullable=True),
    )
    op.create_index("ix_platform_keys_center_id", "platform_keys", ["center_id"])


def downgrade() -> None:
    op.drop_table("platform_keys")
