"""knowledge bases, their documents (with indexing state) and chunks (text in SQL, vectors in Milvus)

Revision ID: 0008
Revises: 0007
"""
from alembic import op
import sqlalchemy as sa
import sqlmodel


revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('knowledge_base',
    sa.Column('id', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
    sa.Column('description', sqlmodel.sql.sqltypes.AutoString(length=2000), nullable=False),
    sa.Column('embedding_model', sqlmodel.sql.sqltypes.AutoString(length=500), nullable=False),
    sa.Column('chunking', sa.JSON(), nullable=False),
    sa.Column('retrieval', sa.JSON(), nullable=False),
    sa.Column('generation', sa.Integer(), nullable=False),
    sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('updated_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('knowledge_base', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_knowledge_base_name'), ['name'], unique=True)

    op.create_table('kb_document',
    sa.Column('id', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('kb_id', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=500), nullable=False),
    sa.Column('source', sqlmodel.sql.sqltypes.AutoString(length=10), nullable=False),
    sa.Column('path', sqlmodel.sql.sqltypes.AutoString(length=4096), nullable=True),
    sa.Column('text', sa.Text(), nullable=True),
    sa.Column('content_hash', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('size_bytes', sa.Integer(), nullable=False),
    sa.Column('state', sa.Enum('QUEUED', 'PARSING', 'SPLITTING', 'EMBEDDING', 'DONE', 'ERROR', name='docstate'), nullable=False),
    sa.Column('progress', sa.Float(), nullable=False),
    sa.Column('error', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('enabled', sa.Boolean(), nullable=False),
    sa.Column('chunk_count', sa.Integer(), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('heartbeat_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('finished_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.ForeignKeyConstraint(['kb_id'], ['knowledge_base.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('kb_id', 'content_hash')
    )
    with op.batch_alter_table('kb_document', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_kb_document_kb_id'), ['kb_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_kb_document_state'), ['state'], unique=False)

    op.create_table('kb_chunk',
    sa.Column('id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('kb_id', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('document_id', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('meta', sa.JSON(), nullable=False),
    sa.Column('enabled', sa.Boolean(), nullable=False),
    sa.Column('edited', sa.Boolean(), nullable=False),
    sa.ForeignKeyConstraint(['document_id'], ['kb_document.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['kb_id'], ['knowledge_base.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('kb_chunk', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_kb_chunk_document_id'), ['document_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_kb_chunk_kb_id'), ['kb_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('kb_chunk', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_kb_chunk_kb_id'))
        batch_op.drop_index(batch_op.f('ix_kb_chunk_document_id'))

    op.drop_table('kb_chunk')
    with op.batch_alter_table('kb_document', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_kb_document_state'))
        batch_op.drop_index(batch_op.f('ix_kb_document_kb_id'))

    op.drop_table('kb_document')
    with op.batch_alter_table('knowledge_base', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_knowledge_base_name'))

    op.drop_table('knowledge_base')
