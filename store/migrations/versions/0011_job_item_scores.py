"""job items keep an evaluation's per-case scores, computed by the worker that ran the case

Revision ID: 0011
Revises: 0010

"""
import sqlalchemy as sa
from alembic import op

revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('job_item', schema=None) as batch_op:
        batch_op.add_column(sa.Column('scores', sa.JSON(none_as_null=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('job_item', schema=None) as batch_op:
        batch_op.drop_column('scores')
