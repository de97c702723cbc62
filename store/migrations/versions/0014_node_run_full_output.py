"""an agent's tool call keeps its whole result for download (node_run.output_full, output_chars)

Revision ID: 0014
Revises: 0013

"""
import sqlalchemy as sa
from alembic import op

revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('node_run', schema=None) as batch_op:
        batch_op.add_column(sa.Column('output_full', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('output_chars', sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('node_run', schema=None) as batch_op:
        batch_op.drop_column('output_chars')
        batch_op.drop_column('output_full')
