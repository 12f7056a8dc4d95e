"""Indexes for the supervisors' searches of the verification log: by device, by address and
by decision, each newest first within a center (bench/supervision_bench.py: a device or an
address over a million checks took 0.5 s at p95 without them).

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-03
"""

from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None

INDEXES = {
    "ix_face_verifications_center_device": ["center_id", "device_id", "created_at"],
    "ix_face_verifications_center_ip": ["center_id", "client_ip", "created_at"],
    "ix_face_verifications_center_passed": ["center_id", "passed", "created_at"],
}


def upgrade() -> None:
    for name, columns in INDEXES.items():
        op.create_index(name, "face_verifications", columns)


def downgrade() -> None:
    for name in INDEXES:
        op.drop_index(name, table_name="face_verifications")
