"""conversations of chat apps, their exchanges (with rating and comment), and an app's memory policy

Revision ID: 0012
Revises: 0011

"""
import sqlalchemy as sa
import sqlmodel
from alembic import op


revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('conversation',
    sa.Column('id', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('app_slug', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('owner', sqlmodel.sql.sqltypes.AutoString(length=120), nullable=False),
    sa.Column('title', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('exchanges', sa.Integer(), nullable=False),
    sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('updated_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('conversation', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_conversation_app_slug'), ['app_slug'], unique=False)
        batch_op.create_index(batch_op.f('ix_conversation_owner'), ['owner'], unique=False)
        batch_op.create_index(batch_op.f('ix_conversation_updated_at'), ['updated_at'], unique=False)

    op.create_table('conversation_exchange',
    sa.Column('id', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('conversation_id', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('message', sa.Text(), nullable=False),
    sa.Column('run_id', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('version_id', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('reply_output', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('sources_output', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
    sa.Column('ended', sa.Boolean(), nullable=False),
    sa.Column('reply', sa.Text(), nullable=True),
    sa.Column('sources', sa.JSON(none_as_null=True), nullable=True),
    sa.Column('tokens', sa.JSON(none_as_null=True), nullable=True),
    sa.Column('latency_ms', sa.Float(), nullable=True),
    sa.Column('error', sqlmodel.sql.sqltypes.AutoString(length=2000), nullable=True),
    sa.Column('rating', sa.Integer(), nullable=True),
    sa.Column('comment', sqlmodel.sql.sqltypes.AutoString(length=2000), nullable=True),
    sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['conversation_id'], ['conversation.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('conversation_id', 'position')
    )
    with op.batch_alter_table('conversation_exchange', schema=None) as batch_op:
        batch_op.create_index('ix_conversation_exchange_created', ['created_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_conversation_exchange_run_id'), ['run_id'], unique=False)

    with op.batch_alter_table('publication', schema=None) as batch_op:
        batch_op.add_column(sa.Column('memory', sa.JSON(none_as_null=True), nullable=True))



def downgrade() -> None:
    with op.batch_alter_table('publication', schema=None) as batch_op:
        batch_op.drop_column('memory')

    with op.batch_alter_table('conversation_exchange', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_conversation_exchange_run_id'))
        batch_op.drop_index('ix_conversation_exchange_created')

    op.drop_table('conversation_exchange')
    with op.batch_alter_table('conversation', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_conversation_updated_at'))
        batch_op.drop_index(batch_op.f('ix_conversation_owner'))
        batch_op.drop_index(batch_op.f('ix_conversation_app_slug'))

    op.drop_table('conversation')
