"""the officers' queues read from indexes in their own order: /next, /queue and /judged read a page's rows,
not every open or judged tip of the unit (bench/queue_1m.py: 1,000,000 tips)

Revision ID: 0009
Revises: 0008
"""
from alembic import op
import sqlalchemy as sa


revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None

PENDING = "status IN ('new', 'transferred')"
OPEN = "status IN ('new', 'transferred', 'in_review', 'needs_info')"
JUDGED = "status IN ('valuable', 'not_valuable')"
FILTERS = ['status', 'category', 'area_code', 'claimed_by']
# name, partial on, columns, included columns (PostgreSQL: a filtered page's count reads the index alone)
INDEXES = [
    ('ix_tip_waiting_queue', PENDING, ['unit_id', sa.text('urgent DESC'), 'created_at'], []),
    ('ix_tip_waiting_order', PENDING, [sa.text('urgent DESC'), 'created_at'], ['unit_id']),
    ('ix_tip_open_queue', OPEN, ['unit_id', sa.text('urgent DESC'), 'created_at'], FILTERS),
    ('ix_tip_open_order', OPEN, [sa.text('urgent DESC'), 'created_at'], ['unit_id', *FILTERS]),
    ('ix_tip_mine_queue', OPEN, ['claimed_by', sa.text('urgent DESC'), 'created_at'], ['unit_id', *FILTERS]),
    ('ix_tip_area_queue', OPEN, ['area_code', sa.text('urgent DESC'), 'created_at'], ['unit_id', *FILTERS]),
    ('ix_tip_judged_queue', JUDGED, ['unit_id', 'verdict_at', 'created_at'], FILTERS),
    ('ix_tip_judged_order', JUDGED, ['verdict_at', 'created_at'], ['unit_id', *FILTERS]),
]


def upgrade() -> None:
    for name, where, columns, include in INDEXES:
        op.create_index(name, 'tip', columns, unique=False, postgresql_where=sa.text(where),
                        sqlite_where=sa.text(where), postgresql_include=include)


def downgrade() -> None:
    for name, _where, _columns, _include in reversed(INDEXES):
        op.drop_index(name, table_name='tip')
