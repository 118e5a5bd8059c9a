"""zalo oa: the OA token pair (sealed), webhook events kept sealed until handled, last interactions (the 7-day
window, sealed), oa.query.hide button payloads (sealed)

Revision ID: 0004
Revises: 0002
Create Date: 2026-11-22 03:53:15.014938
"""
from alembic import op
import sqlalchemy as sa
import sqlmodel


revision = '0004'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('zalo_oa_button',
    sa.Column('token', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('sealed', sa.LargeBinary(), nullable=False),
    sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('token')
    )
    with op.batch_alter_table('zalo_oa_button', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_zalo_oa_button_created_at'), ['created_at'], unique=False)

    op.create_table('zalo_oa_event',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('dedup_key', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('event_name', sqlmodel.sql.sqltypes.AutoString(length=48), nullable=False),
    sa.Column('key_id', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
    sa.Column('payload', sa.LargeBinary(), nullable=True),
    sa.Column('received_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('claimed_by', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
    sa.Column('claimed_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.Column('processed_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('dedup_key')
    )
    with op.batch_alter_table('zalo_oa_event', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_zalo_oa_event_processed_at'), ['processed_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_zalo_oa_event_received_at'), ['received_at'], unique=False)

    op.create_table('zalo_oa_interaction',
    sa.Column('seen_key', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('sealed', sa.LargeBinary(), nullable=False),
    sa.PrimaryKeyConstraint('seen_key')
    )
    op.create_table('zalo_oa_token',
    sa.Column('oa_id', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('key_id', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('sealed', sa.LargeBinary(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('access_expires_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('refreshed_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('refresh_state', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('failed_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.Column('failure', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.PrimaryKeyConstraint('oa_id')
    )


def downgrade() -> None:
    op.drop_table('zalo_oa_token')
    op.drop_table('zalo_oa_interaction')
    with op.batch_alter_table('zalo_oa_event', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_zalo_oa_event_received_at'))
        batch_op.drop_index(batch_op.f('ix_zalo_oa_event_processed_at'))

    op.drop_table('zalo_oa_event')
    with op.batch_alter_table('zalo_oa_button', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_zalo_oa_button_created_at'))

    op.drop_table('zalo_oa_button')
