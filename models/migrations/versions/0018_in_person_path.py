"""The non-face path: an operator's in-person ID check plus the person's signing PIN, as a
verification of method "in-person-pin"; and the consent text version at enrollment.

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op

import models.base

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "in_person_checks",
        sa.Column("id", models.base.ID, nullable=False),
        sa.Column("center_id", models.base.ID, nullable=False),
        sa.Column("project_id", models.base.ID, nullable=False),
        sa.Column("expert_id", models.base.ID, nullable=False),
        sa.Column("checked_by", sa.String(length=100), nullable=False),
        sa.Column("document", sa.String(length=40), nullable=False),
        sa.Column("note", sa.String(length=500), nullable=True),
        sa.Column("created_at", models.base.UTCDateTime(), nullable=False),
        sa.Column("expires_at", models.base.UTCDateTime(), nullable=False),
        sa.Column("pin_failures", sa.Integer(), nullable=False),
        sa.Column("voided_at", models.base.UTCDateTime(), nullable=True),
        sa.Column("void_reason", sa.String(length=200), nullable=True),
        sa.ForeignKeyConstraint(
            ["center_id"], ["centers.id"], name=op.f("fk_in_person_checks_center_id_centers")
        ),
        sa.ForeignKeyConstraint(
            ["expert_id"], ["experts.id"], name=op.f("fk_in_person_checks_expert_id_experts")
        ),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name=op.f("fk_in_person_checks_project_id_projects")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_in_person_checks")),
    )
    op.create_index(
        "ix_in_person_checks_project_expert", "in_person_checks", ["project_id", "expert_id"]
    )
    with op.batch_alter_table("experts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("pin_hash", sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column("pin_set_at", models.base.UTCDateTime(), nullable=True))
    with op.batch_alter_table("face_templates", schema=None) as batch_op:
        batch_op.add_column(sa.Column("consent_version", sa.String(length=40), nullable=True))
    with op.batch_alter_table("face_verifications", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("method", sa.String(length=20), server_default="face", nullable=False)
        )
        batch_op.add_column(sa.Column("in_person_check_id", models.base.ID, nullable=True))
        batch_op.add_column(sa.Column("scan_session_id", models.base.ID, nullable=True))
        batch_op.alter_column("challenge_id", existing_type=models.base.ID, nullable=True)
        batch_op.create_foreign_key(
            op.f("fk_face_verifications_in_person_check_id_in_person_checks"),
            "in_person_checks",
            ["in_person_check_id"],
            ["id"],
        )
        batch_op.create_foreign_key(
            op.f("fk_face_verifications_scan_session_id_scan_sessions"),
            "scan_sessions",
            ["scan_session_id"],
            ["id"],
        )
        batch_op.create_check_constraint(
            op.f("ck_face_verifications_method"), "method IN ('face', 'in-person-pin')"
        )
        batch_op.create_check_constraint(
            op.f("ck_face_verifications_challenge_for_face"),
            "(method = 'face') = (challenge_id IS NOT NULL)",
        )


def downgrade() -> None:
    with op.batch_alter_table("face_verifications", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_face_verifications_challenge_for_face"), type_="check")
        batch_op.drop_constraint(op.f("ck_face_verifications_method"), type_="check")
        batch_op.drop_constraint(
            op.f("fk_face_verifications_scan_session_id_scan_sessions"), type_="foreignkey"
        )
        batch_op.drop_constraint(
            op.f("fk_face_verifications_in_person_check_id_in_person_checks"), type_="foreignkey"
        )
        batch_op.alter_column("challenge_id", existing_type=models.base.ID, nullable=False)
        batch_op.drop_column("scan_session_id")
        batch_op.drop_column("in_person_check_id")
        batch_op.drop_column("method")
    with op.batch_alter_table("face_templates", schema=None) as batch_op:
        batch_op.drop_column("consent_version")
    with op.batch_alter_table("experts", schema=None) as batch_op:
        batch_op.drop_column("pin_set_at")
        batch_op.drop_column("pin_hash")
    op.drop_index("ix_in_person_checks_project_expert", table_name="in_person_checks")
    op.drop_table("in_person_checks")
