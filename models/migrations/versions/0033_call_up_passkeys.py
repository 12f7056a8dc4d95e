"""A passkey challenge may confirm a member's answer to their call-up, where the center
asks for the face check and the passkey before an answer.

Revision ID: 0033
Revises: 0032
"""

from alembic import op

revision = '0033'
down_revision = '0032'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('passkey_challenges', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_passkey_challenges_purpose'), type_='check')
        batch_op.create_check_constraint('purpose', "purpose IN ('sign-in', 'signing', 'call-up')")


def downgrade() -> None:
    op.execute("DELETE FROM passkey_uses WHERE purpose = 'call-up'")
    op.execute("DELETE FROM passkey_challenges WHERE purpose = 'call-up'")
    with op.batch_alter_table('passkey_challenges', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_passkey_challenges_purpose'), type_='check')
        batch_op.create_check_constraint('purpose', "purpose IN ('sign-in', 'signing')")
