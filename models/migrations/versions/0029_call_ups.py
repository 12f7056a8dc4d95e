"""Call-ups: the message telling each drawn member they were drawn, retried until a
provider takes it, and its answer link and deadline.

Revision ID: 0029
Revises: 0028
"""

import sqlalchemy as sa
from alembic import op

import models.base

revision = '0029'
down_revision = '0028'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "call_ups",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("center_id", sa.String(36), sa.ForeignKey("centers.id"), nullable=False),
        sa.Column("project_id", sa.String(36), sa.ForeignKey("projects.id"), nullable=False),
        sa.Column(
            "assignment_id", sa.String(36), sa.ForeignKey("assignments.id"), nullable=False
        ),
        sa.Column("expert_id", sa.String(36), sa.ForeignKey("experts.id"), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", models.base.UTCDateTime(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("channel", sa.String(40), nullable=True),
        sa.Column("provider_message_id", sa.String(200), nullable=True),
        sa.Column("token_hash", sa.String(64), nullable=True, unique=True),
        sa.Column("created_at", models.base.UTCDateTime(), nullable=False),
        sa.Column("sent_at", models.base.UTCDateTime(), nullable=True),
        sa.Column("deadline_at", models.base.UTCDateTime(), nullable=True),
        sa.Column("answer", sa.String(20), nullable=True),
        sa.Column("answered_at", models.base.UTCDateTime(), nullable=True),
    )
    op.create_index("ix_call_ups_project_id", "call_ups", ["project_id"])
    op.create_index("ix_call_ups_assignment_id", "call_ups", ["assignment_id"])
    op.create_index("ix_call_ups_due", "call_ups", ["status", "next_attempt_at"])


def downgrade() -> None:
    op.drop_table("call_ups")
