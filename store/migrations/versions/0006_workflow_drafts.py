"""workflow drafts: the editor's unfinished work, kept across reloads and restarts

Revision ID: 0006
Revises: 0005
"""
from alembic import op
import sqlalchemy as sa
import sqlmodel


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('workflow_draft',
    sa.Column('workflow_id', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('spec', sa.JSON(), nullable=False),
    sa.Column('based_on', sa.Integer(), nullable=True),
    sa.Column('updated_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['workflow_id'], ['workflow.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('workflow_id')
    )


def downgrade() -> None:
    op.drop_table('workflow_draft')
