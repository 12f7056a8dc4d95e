"""Unit contacts' phones encrypted, like experts' phones.

The column holds the phones of units.contacts (same order) under the field cipher. The
migration has no key: phones registered before it stay in the JSON until the service
encrypts them at start (evaluation/registry/units.py encrypt_plain_contact_phones).

Revision ID: 0028
Revises: 0027
"""

import sqlalchemy as sa
from alembic import op

revision = '0028'
down_revision = '0027'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("units") as batch:
        batch.add_column(sa.Column("contact_phones_ciphertext", sa.LargeBinary(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("units") as batch:
        batch.drop_column("contact_phones_ciphertext")
