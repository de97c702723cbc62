"""node runs carry a notice: what worked but deserves a look (a retriever that found nothing)

Revision ID: 0005
Revises: 0004
"""
from alembic import op
import sqlalchemy as sa
import sqlmodel


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('node_run', schema=None) as batch_op:
        batch_op.add_column(sa.Column('notice', sqlmodel.sql.sqltypes.AutoString(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('node_run', schema=None) as batch_op:
        batch_op.drop_column('notice')
