"""pipeline snapshots per unit: branch, region and HQ rows of each cut

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-23 16:00:00

"""
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade():
    # Cuts are sums of the history: drop them and let the worker take them again.
    op.execute("DELETE FROM pipeline_cuts")
    op.drop_index("ix_pipeline_snapshots_cut_branch", table_name="pipeline_snapshots")
    op.alter_column("pipeline_snapshots", "branch_id", new_column_name="unit_id")
    op.create_index("ix_pipeline_snapshots_cut_unit", "pipeline_snapshots", ["cut", "unit_id"])


def downgrade():
    op.execute("DELETE FROM pipeline_cuts")
    op.drop_index("ix_pipeline_snapshots_cut_unit", table_name="pipeline_snapshots")
    op.alter_column("pipeline_snapshots", "unit_id", new_column_name="branch_id")
    op.create_index(
        "ix_pipeline_snapshots_cut_branch", "pipeline_snapshots", ["cut", "branch_id"]
    )
