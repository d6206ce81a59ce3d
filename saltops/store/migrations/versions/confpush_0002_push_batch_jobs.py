"""confpush: the batch a push published last and its Salt job ids (resume and abort of a dead push).

Revision ID: confpush_0002
Revises: confpush_0001
"""

import sqlalchemy as sa
from alembic import op

revision = "confpush_0002"
down_revision = "confpush_0001"
branch_labels = None
depends_on = None


def upgrade():
    # Nullable columns: a plain ADD COLUMN on MySQL and SQLite alike.
    op.add_column("confpush_pushes", sa.Column("batch", sa.Integer, nullable=True))
    op.add_column("confpush_pushes", sa.Column("jobs", sa.JSON, nullable=True))


def downgrade():
    with op.batch_alter_table("confpush_pushes") as batch:
        batch.drop_column("jobs")
        batch.drop_column("batch")
