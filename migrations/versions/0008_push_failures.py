"""push failures: failed pushes per agent stream, a log of them, pushes per hour

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-24 15:00:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('agent_streams', schema=None) as batch_op:
        batch_op.add_column(
            sa.Column('failed_pushes', sa.BigInteger(), server_default='0', nullable=False)
        )
        batch_op.add_column(
            sa.Column('last_failure_at', sa.DateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(sa.Column('last_failure_code', sa.String(length=40), nullable=True))

    op.create_table('push_failures',
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.Column('branch_id', sa.Integer(), nullable=False),
    sa.Column('agent_id', sa.String(length=100), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('http_status', sa.SmallInteger(), nullable=False),
    sa.Column('code', sa.String(length=40), nullable=False),
    sa.Column('events', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['branch_id'], ['org_units.id'], name=op.f('fk_push_failures_branch_id_org_units')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_push_failures'))
    )
    with op.batch_alter_table('push_failures', schema=None) as batch_op:
        batch_op.create_index('ix_push_failures_branch_at', ['branch_id', 'at'], unique=False)

    op.create_table('push_counts',
    sa.Column('branch_id', sa.Integer(), nullable=False),
    sa.Column('hour', sa.DateTime(timezone=True), nullable=False),
    sa.Column('pushes', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['branch_id'], ['org_units.id'], name=op.f('fk_push_counts_branch_id_org_units')),
    sa.PrimaryKeyConstraint('branch_id', 'hour', name=op.f('pk_push_counts'))
    )


def downgrade():
    op.drop_table('push_counts')
    with op.batch_alter_table('push_failures', schema=None) as batch_op:
        batch_op.drop_index('ix_push_failures_branch_at')

    op.drop_table('push_failures')
    with op.batch_alter_table('agent_streams', schema=None) as batch_op:
        batch_op.drop_column('last_failure_code')
        batch_op.drop_column('last_failure_at')
        batch_op.drop_column('failed_pushes')
