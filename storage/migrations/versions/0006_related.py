"""related tips: the blind index of the identifiers each tip mentions (masked form sealed), and the links
officers make by hand between two tips

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 18:20:00
"""
from alembic import op
import sqlalchemy as sa
import sqlmodel


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('related_identifier',
    sa.Column('digest', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('tip_id', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('key_id', sqlmodel.sql.sqltypes.AutoString(length=8), nullable=False),
    sa.Column('kind', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('masked', sa.LargeBinary(), nullable=False),
    sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['tip_id'], ['tip.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('digest', 'tip_id')
    )
    with op.batch_alter_table('related_identifier', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_related_identifier_tip_id'), ['tip_id'], unique=False)

    op.create_table('related_link',
    sa.Column('tip_id', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('other_tip_id', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('officer_id', sa.Integer(), nullable=True),
    sa.Column('reason', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['other_tip_id'], ['tip.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['tip_id'], ['tip.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('tip_id', 'other_tip_id')
    )
    with op.batch_alter_table('related_link', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_related_link_other_tip_id'), ['other_tip_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('related_link', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_related_link_other_tip_id'))
    op.drop_table('related_link')
    with op.batch_alter_table('related_identifier', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_related_identifier_tip_id'))
    op.drop_table('related_identifier')
