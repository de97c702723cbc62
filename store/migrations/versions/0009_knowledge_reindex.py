"""knowledge bases re-index into a next generation while the current one serves; recorded retrieval tests

Revision ID: 0009
Revises: 0008
"""
from alembic import op
import sqlalchemy as sa
import sqlmodel


revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('knowledge_base', schema=None) as batch_op:
        batch_op.add_column(sa.Column('next_generation', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('next_embedding_model', sqlmodel.sql.sqltypes.AutoString(length=500),
                                      nullable=True))
        batch_op.add_column(sa.Column('next_chunking', sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column('retired_generation', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('retired_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True))
    with op.batch_alter_table('kb_document', schema=None) as batch_op:
        batch_op.add_column(sa.Column('generation', sa.Integer(), nullable=False, server_default='0'))
    op.create_table('kb_query',
    sa.Column('id', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('kb_id', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('query', sa.Text(), nullable=False),
    sa.Column('mode', sqlmodel.sql.sqltypes.AutoString(length=10), nullable=False),
    sa.Column('top_k', sa.Integer(), nullable=False),
    sa.Column('score_threshold', sa.Float(), nullable=True),
    sa.Column('generation', sa.Integer(), nullable=False),
    sa.Column('hits', sa.JSON(), nullable=False),
    sa.Column('took_ms', sa.Float(), nullable=False),
    sa.Column('expected', sa.JSON(), nullable=True),
    sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['kb_id'], ['knowledge_base.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('kb_query', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_kb_query_created_at'), ['created_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_kb_query_kb_id'), ['kb_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('kb_query', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_kb_query_kb_id'))
        batch_op.drop_index(batch_op.f('ix_kb_query_created_at'))
    op.drop_table('kb_query')
    with op.batch_alter_table('kb_document', schema=None) as batch_op:
        batch_op.drop_column('generation')
    with op.batch_alter_table('knowledge_base', schema=None) as batch_op:
        batch_op.drop_column('retired_at')
        batch_op.drop_column('retired_generation')
        batch_op.drop_column('next_chunking')
        batch_op.drop_column('next_embedding_model')
        batch_op.drop_column('next_generation')
