"""festival reminders: subscribers (sealed routes) and their areas, events, broadcasts, the outbox, the shared pace

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 03:31:09.420534
"""
from alembic import op
import sqlalchemy as sa
import sqlmodel


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('reminder_broadcast',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('key', sqlmodel.sql.sqltypes.AutoString(length=96), nullable=False),
    sa.Column('kind', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('event_id', sa.Integer(), nullable=True),
    sa.Column('occurs_on', sa.Date(), nullable=True),
    sa.Column('reminder_offset', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=True),
    sa.Column('area_code', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
    sa.Column('text', sqlmodel.sql.sqltypes.AutoString(length=2000), nullable=True),
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('send_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('expires_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.Column('created_by', sa.Integer(), nullable=True),
    sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('queued_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.Column('cancelled_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('key')
    )
    with op.batch_alter_table('reminder_broadcast', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_reminder_broadcast_event_id'), ['event_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_reminder_broadcast_send_at'), ['send_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_reminder_broadcast_status'), ['status'], unique=False)

    op.create_table('reminder_event',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('key', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('source', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('title', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('title_en', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
    sa.Column('description', sqlmodel.sql.sqltypes.AutoString(length=1000), nullable=False),
    sa.Column('description_en', sqlmodel.sql.sqltypes.AutoString(length=1000), nullable=True),
    sa.Column('place', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('dates', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
    sa.Column('start_time', sqlmodel.sql.sqltypes.AutoString(length=5), nullable=True),
    sa.Column('offsets', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
    sa.Column('area_code', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
    sa.Column('unit_id', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
    sa.Column('created_by', sa.Integer(), nullable=True),
    sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('updated_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('cancelled_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('key')
    )
    with op.batch_alter_table('reminder_event', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_reminder_event_area_code'), ['area_code'], unique=False)

    op.create_table('reminder_pace',
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('next_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('name')
    )
    op.create_table('reminder_subscriber',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('chat_key', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('channel', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('language', sqlmodel.sql.sqltypes.AutoString(length=8), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('route_key_id', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
    sa.Column('route', sa.LargeBinary(), nullable=True),
    sa.Column('opted_in_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('opted_out_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.Column('opt_out_reason', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('chat_key')
    )
    with op.batch_alter_table('reminder_subscriber', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_reminder_subscriber_active'), ['active'], unique=False)

    # One row per (broadcast, subscriber): the unique key is what makes a message go out at most once.
    op.create_table('reminder_outbox',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('broadcast_id', sa.Integer(), nullable=False),
    sa.Column('subscriber_id', sa.Integer(), nullable=False),
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('reason', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('not_before', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('claimed_by', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
    sa.Column('claimed_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.Column('finished_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.ForeignKeyConstraint(['broadcast_id'], ['reminder_broadcast.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['subscriber_id'], ['reminder_subscriber.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('broadcast_id', 'subscriber_id')
    )
    with op.batch_alter_table('reminder_outbox', schema=None) as batch_op:
        batch_op.create_index('ix_reminder_outbox_due', ['status', 'not_before'], unique=False)
        batch_op.create_index(batch_op.f('ix_reminder_outbox_subscriber_id'), ['subscriber_id'], unique=False)

    op.create_table('reminder_subscriber_area',
    sa.Column('subscriber_id', sa.Integer(), nullable=False),
    sa.Column('area_code', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.ForeignKeyConstraint(['subscriber_id'], ['reminder_subscriber.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('subscriber_id', 'area_code')
    )
    with op.batch_alter_table('reminder_subscriber_area', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_reminder_subscriber_area_area_code'), ['area_code'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('reminder_subscriber_area', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_reminder_subscriber_area_area_code'))

    op.drop_table('reminder_subscriber_area')
    with op.batch_alter_table('reminder_outbox', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_reminder_outbox_subscriber_id'))
        batch_op.drop_index('ix_reminder_outbox_due')

    op.drop_table('reminder_outbox')
    with op.batch_alter_table('reminder_subscriber', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_reminder_subscriber_active'))

    op.drop_table('reminder_subscriber')
    op.drop_table('reminder_pace')
    with op.batch_alter_table('reminder_event', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_reminder_event_area_code'))

    op.drop_table('reminder_event')
    with op.batch_alter_table('reminder_broadcast', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_reminder_broadcast_status'))
        batch_op.drop_index(batch_op.f('ix_reminder_broadcast_send_at'))
        batch_op.drop_index(batch_op.f('ix_reminder_broadcast_event_id'))

    op.drop_table('reminder_broadcast')
