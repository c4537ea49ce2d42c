"""deals by rep: an index for a rep's deals

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-05 04:20:00

The console's rep page lists a rep's deals; without an index that read scanned every deal
of the company (1.5 M at the report benchmark's scale, about 150 ms).
"""

from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade():
    op.create_index("ix_deals_rep", "deals", ["rep_id"])


def downgrade():
    op.drop_index("ix_deals_rep", table_name="deals")
