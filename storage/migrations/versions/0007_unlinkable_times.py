"""unlinkable: rate counters named in clear are dropped (new ones are keyed hashes), and the times that
could match a tip to its tipster's pseudonym are cut to the day: conversations with no open draft,
questions waiting for a tipster, data keys. No column changes.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02 18:40:00
"""
from alembic import op


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def _day(column: str) -> str:
    if op.get_bind().dialect.name == "postgresql":
        return f"date_trunc('day', {column})"
    # SQLite keeps these as 'YYYY-MM-DD HH:MM:SS[.ffffff]' text (SQLAlchemy's DateTime).
    return f"substr({column}, 1, 10) || ' 00:00:00.000000'"


def upgrade() -> None:
    # A counter lasts a day at most: losing today's counts lets a citizen send a few more tips today, once.
    op.execute("DELETE FROM rate_counter")
    op.execute(f"UPDATE conversation SET created_at = {_day('created_at')}")
    op.execute("UPDATE conversation SET updated_at = created_at WHERE draft_id IS NULL")
    # A question stored before its time was sealed keeps its day; the oldest of one day is then any of them.
    op.execute(f"UPDATE follow_up SET created_at = {_day('created_at')}")
    op.execute(f"UPDATE data_key SET created_at = {_day('created_at')}")


def downgrade() -> None:
    pass  # the exact times are gone by design, and the clear counters are not coming back
