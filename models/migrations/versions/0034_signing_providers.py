"""Remote signing providers: a licensed CA's CSC API v2 service a center signs through;
keys it holds (vault backend `csc`), and credentials whose certificate and chain come from
it rather than from an authority of ours.

Revision ID: 0034
Revises: 0033
"""
from alembic import op
import sqlalchemy as sa
import models.base


revision = '0034'
down_revision = '0033'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('signing_providers',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('center_id', sa.String(length=36), nullable=False),
    sa.Column('name', sa.String(length=60), nullable=False),
    sa.Column('base_url', sa.String(length=500), nullable=False),
    sa.Column('token_url', sa.String(length=500), nullable=False),
    sa.Column('client_id', sa.String(length=200), nullable=False),
    sa.Column('client_secret_ciphertext', sa.LargeBinary(), nullable=False),
    sa.Column('root_der', sa.LargeBinary(), nullable=False),
    sa.Column('created_at', models.base.UTCDateTime(), nullable=False),
    sa.Column('updated_at', models.base.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['center_id'], ['centers.id'], name=op.f('fk_signing_providers_center_id_centers')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_signing_providers')),
    sa.UniqueConstraint('center_id', 'name', name=op.f('uq_signing_providers_center_id_name'))
    )
    with op.batch_alter_table('signing_providers', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_signing_providers_center_id'), ['center_id'], unique=False)

    with op.batch_alter_table('issued_certificates', schema=None) as batch_op:
        batch_op.add_column(sa.Column('chain_der', sa.JSON(), nullable=True))
        batch_op.alter_column('authority_id',
               existing_type=sa.VARCHAR(length=36),
               nullable=True)

    with op.batch_alter_table('vault_keys', schema=None) as batch_op:
        batch_op.add_column(sa.Column('provider_id', sa.String(length=36), nullable=True))
        batch_op.create_foreign_key(batch_op.f('fk_vault_keys_provider_id_signing_providers'), 'signing_providers', ['provider_id'], ['id'])
        batch_op.drop_constraint(op.f('ck_vault_keys_backend'), type_='check')
        batch_op.create_check_constraint('backend', "backend IN ('local', 'pkcs11', 'csc')")



def downgrade() -> None:
    # Credentials at a remote provider cannot exist without it: they go with it.
    op.execute(
        "DELETE FROM issued_certificates WHERE key_id IN "
        "(SELECT id FROM vault_keys WHERE backend = 'csc')"
    )
    op.execute("DELETE FROM vault_keys WHERE backend = 'csc'")
    with op.batch_alter_table('vault_keys', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_vault_keys_provider_id_signing_providers'), type_='foreignkey')
        batch_op.drop_column('provider_id')
        batch_op.drop_constraint(op.f('ck_vault_keys_backend'), type_='check')
        batch_op.create_check_constraint('backend', "backend IN ('local', 'pkcs11')")

    with op.batch_alter_table('issued_certificates', schema=None) as batch_op:
        batch_op.alter_column('authority_id',
               existing_type=sa.VARCHAR(length=36),
               nullable=False)
        batch_op.drop_column('chain_der')

    with op.batch_alter_table('signing_providers', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_signing_providers_center_id'))

    op.drop_table('signing_providers')
