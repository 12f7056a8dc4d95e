"""Events to the trading platform: webhook subscriptions, the outbox of milestone events,
their deliveries, archive pushes, and the log of every outgoing attempt.

Revision ID: 0031
Revises: 0030
"""

import sqlalchemy as sa
from alembic import op

import models.base

revision = '0031'
down_revision = '0030'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "webhook_subscriptions",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("center_id", sa.String(36), sa.ForeignKey("centers.id"), nullable=False),
        sa.Column("url", sa.String(2000), nullable=False),
        sa.Column("description", sa.String(200), nullable=False),
        sa.Column("event_types", sa.JSON(), nullable=False),
        sa.Column("secret_ciphertext", sa.LargeBinary(), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("created_by", sa.String(100), nullable=False),
        sa.Column("created_at", models.base.UTCDateTime(), nullable=False),
        sa.Column("secret_rotated_at", models.base.UTCDateTime(), nullable=True),
        sa.Column("disabled_at", models.base.UTCDateTime(), nullable=True),
        sa.CheckConstraint("status IN ('active', 'disabled')", name="status"),
    )
    op.create_index(
        "ix_webhook_subscriptions_center_id", "webhook_subscriptions", ["center_id"]
    )
    op.create_table(
        "platform_events",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("center_id", sa.String(36), sa.ForeignKey("centers.id"), nullable=False),
        sa.Column("project_id", sa.String(36), sa.ForeignKey("projects.id"), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("type", sa.String(80), nullable=False),
        sa.Column("time", models.base.UTCDateTime(), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.UniqueConstraint("project_id", "seq"),
    )
    op.create_index("ix_platform_events_project_id", "platform_events", ["project_id"])
    op.create_table(
        "webhook_deliveries",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("center_id", sa.String(36), sa.ForeignKey("centers.id"), nullable=False),
        sa.Column(
            "subscription_id",
            sa.String(36),
            sa.ForeignKey("webhook_subscriptions.id"),
            nullable=False,
        ),
        sa.Column(
            "event_id", sa.String(36), sa.ForeignKey("platform_events.id"), nullable=False
        ),
        sa.Column("project_id", sa.String(36), sa.ForeignKey("projects.id"), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", models.base.UTCDateTime(), nullable=True),
        sa.Column("last_status_code", sa.Integer(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", models.base.UTCDateTime(), nullable=False),
        sa.Column("finished_at", models.base.UTCDateTime(), nullable=True),
        sa.UniqueConstraint("subscription_id", "event_id"),
    )
    op.create_index("ix_webhook_deliveries_project_id", "webhook_deliveries", ["project_id"])
    op.create_index(
        "ix_webhook_deliveries_due", "webhook_deliveries", ["status", "next_attempt_at"]
    )
    op.create_index(
        "ix_webhook_deliveries_line",
        "webhook_deliveries",
        ["subscription_id", "project_id", "seq"],
    )
    op.create_table(
        "archive_pushes",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("center_id", sa.String(36), sa.ForeignKey("centers.id"), nullable=False),
        sa.Column("project_id", sa.String(36), sa.ForeignKey("projects.id"), nullable=False),
        sa.Column("reason", sa.String(40), nullable=False),
        sa.Column("contract_id", sa.String(36), nullable=True),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", models.base.UTCDateTime(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("package", sa.LargeBinary(), nullable=True),
        sa.Column("package_sha256", sa.String(64), nullable=True),
        sa.Column("files", sa.JSON(), nullable=False),
        sa.Column("created_at", models.base.UTCDateTime(), nullable=False),
        sa.Column("finished_at", models.base.UTCDateTime(), nullable=True),
    )
    op.create_index("ix_archive_pushes_project_id", "archive_pushes", ["project_id"])
    op.create_index("ix_archive_pushes_due", "archive_pushes", ["status", "next_attempt_at"])
    op.create_table(
        "outgoing_attempts",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("center_id", sa.String(36), sa.ForeignKey("centers.id"), nullable=False),
        sa.Column("project_id", sa.String(36), sa.ForeignKey("projects.id"), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("delivery_id", sa.String(36), nullable=True),
        sa.Column("archive_push_id", sa.String(36), nullable=True),
        sa.Column("target", sa.String(2000), nullable=False),
        sa.Column("at", models.base.UTCDateTime(), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("duration_ms", sa.Integer(), nullable=False),
    )
    op.create_index("ix_outgoing_attempts_project_id", "outgoing_attempts", ["project_id"])
    op.create_index("ix_outgoing_attempts_delivery_id", "outgoing_attempts", ["delivery_id"])
    op.create_index(
        "ix_outgoing_attempts_archive_push_id", "outgoing_attempts", ["archive_push_id"]
    )


def downgrade() -> None:
    op.drop_table("outgoing_attempts")
    op.drop_table("archive_pushes")
    op.drop_table("webhook_deliveries")
    op.drop_table("platform_events")
    op.drop_table("webhook_subscriptions")
