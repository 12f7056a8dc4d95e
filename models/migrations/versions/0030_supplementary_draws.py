"""Supplementary draws: each names the draw it follows (unique, so the chain of proofs
cannot fork) and the seats it was committed to fill.

Revision ID: 0030
Revises: 0029
"""

import sqlalchemy as sa
from alembic import op

revision = '0030'
down_revision = '0029'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("draws") as batch:
        batch.add_column(sa.Column("previous_draw_id", sa.String(36), nullable=True))
        batch.add_column(sa.Column("spec", sa.JSON(), nullable=True))
        batch.create_unique_constraint(
            batch.f("uq_draws_previous_draw_id"), ["previous_draw_id"]
        )
        batch.create_foreign_key(
            batch.f("fk_draws_previous_draw_id_draws"), "draws", ["previous_draw_id"], ["id"]
        )


def downgrade() -> None:
    with op.batch_alter_table("draws") as batch:
        batch.drop_constraint(batch.f("fk_draws_previous_draw_id_draws"), type_="foreignkey")
        batch.drop_constraint(batch.f("uq_draws_previous_draw_id"), type_="unique")
        batch.drop_column("spec")
        batch.drop_column("previous_draw_id")
