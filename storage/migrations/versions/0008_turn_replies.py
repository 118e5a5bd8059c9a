"""nothing lost: the replies of a handled update, sealed, until each went out; the updates taken from a
platform that sends nothing twice, sealed, until handled

Revision ID: 0008
Revises: 0007
"""
from alembic import op
import sqlalchemy as sa
import sqlmodel


revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('turn_reply',
    sa.Column('sealed', sa.LargeBinary(), nullable=False),
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('channel', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('update_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('total', sa.Integer(), nullable=False),
    sa.Column('next_index', sa.Integer(), nullable=False),
    sa.Column('in_flight', sa.Boolean(), nullable=False),
    sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('channel', 'update_id')
    )
    op.create_index(op.f('ix_turn_reply_created_at'), 'turn_reply', ['created_at'], unique=False)
    op.create_table('received_update',
    sa.Column('sealed', sa.LargeBinary(), nullable=False),
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('channel', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('token', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('claimed_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index(op.f('ix_received_update_claimed_at'), 'received_update', ['claimed_at'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_received_update_claimed_at'), table_name='received_update')
    op.drop_table('received_update')
    op.drop_index(op.f('ix_turn_reply_created_at'), table_name='turn_reply')
    op.drop_table('turn_reply')
