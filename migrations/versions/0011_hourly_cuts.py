"""hourly pipeline cuts of regions and HQ; history by branch and time

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-23 16:05:00

"""
import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade():
    # Cuts are sums of the history: the worker takes them again, hourly ones included.
    op.execute("DELETE FROM pipeline_cuts")
    op.add_column(
        "pipeline_cuts",
        sa.Column("levels", sa.String(length=8), server_default="all", nullable=False),
    )
    op.create_index(
        "ix_pipeline_changes_branch_at", "pipeline_changes", ["branch_id", "at"], unique=False
    )


def downgrade():
    op.drop_index("ix_pipeline_changes_branch_at", table_name="pipeline_changes")
    op.execute("DELETE FROM pipeline_cuts WHERE levels <> 'all'")
    op.drop_column("pipeline_cuts", "levels")
