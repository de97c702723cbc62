"""evaluations: test sets with revisions of cases, evaluation runs and their results

Revision ID: 0010
Revises: 0009

"""
import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('publication', schema=None) as batch_op:
        batch_op.add_column(sa.Column('gate', sa.JSON(none_as_null=True), nullable=True))
        batch_op.add_column(sa.Column('gate_result', sa.JSON(none_as_null=True), nullable=True))
    op.create_table('test_set',
    sa.Column('id', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
    sa.Column('description', sqlmodel.sql.sqltypes.AutoString(length=2000), nullable=False),
    sa.Column('revision', sa.Integer(), nullable=False),
    sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('updated_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('test_set', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_test_set_name'), ['name'], unique=True)

    op.create_table('test_set_revision',
    sa.Column('id', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('test_set_id', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('number', sa.Integer(), nullable=False),
    sa.Column('case_count', sa.Integer(), nullable=False),
    sa.Column('note', sqlmodel.sql.sqltypes.AutoString(length=500), nullable=False),
    sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['test_set_id'], ['test_set.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('test_set_id', 'number')
    )
    with op.batch_alter_table('test_set_revision', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_test_set_revision_test_set_id'), ['test_set_id'], unique=False)

    op.create_table('test_case',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('revision_id', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('key', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('inputs', sa.JSON(), nullable=False),
    sa.Column('expected_answer', sa.Text(), nullable=True),
    sa.Column('expected_sources', sa.JSON(), nullable=False),
    sa.Column('tags', sa.JSON(), nullable=False),
    sa.ForeignKeyConstraint(['revision_id'], ['test_set_revision.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('revision_id', 'key')
    )
    with op.batch_alter_table('test_case', schema=None) as batch_op:
        batch_op.create_index('ix_test_case_revision_position', ['revision_id', 'position'], unique=False)

    op.create_table('evaluation',
    sa.Column('id', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('workflow_id', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('version_id', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('test_set_id', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('revision_id', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('revision', sa.Integer(), nullable=False),
    sa.Column('job_id', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
    sa.Column('settings', sa.JSON(), nullable=False),
    sa.Column('reuse_key', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('generations', sa.JSON(), nullable=False),
    sa.Column('state', sa.Enum('RUNNING', 'SCORING', 'DONE', 'FAILED', 'CANCELLED', name='evalstate'), nullable=False),
    sa.Column('summary', sa.JSON(), nullable=False),
    sa.Column('error', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('heartbeat_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('finished_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.ForeignKeyConstraint(['job_id'], ['job.id'], ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['revision_id'], ['test_set_revision.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['test_set_id'], ['test_set.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['version_id'], ['workflow_version.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['workflow_id'], ['workflow.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('evaluation', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_evaluation_created_at'), ['created_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_evaluation_reuse_key'), ['reuse_key'], unique=False)
        batch_op.create_index(batch_op.f('ix_evaluation_state'), ['state'], unique=False)
        batch_op.create_index(batch_op.f('ix_evaluation_test_set_id'), ['test_set_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_evaluation_workflow_id'), ['workflow_id'], unique=False)

    op.create_table('evaluation_result',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('evaluation_id', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('case_key', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('succeeded', sa.Boolean(), nullable=False),
    sa.Column('answer', sa.Text(), nullable=True),
    sa.Column('prompt', sa.Text(), nullable=True),
    sa.Column('documents', sa.JSON(), nullable=False),
    sa.Column('latency_ms', sa.Float(), nullable=True),
    sa.Column('tokens', sa.Integer(), nullable=True),
    sa.Column('error', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('scores', sa.JSON(), nullable=False),
    sa.Column('errors', sa.JSON(), nullable=False),
    sa.ForeignKeyConstraint(['evaluation_id'], ['evaluation.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('evaluation_id', 'case_key')
    )
    with op.batch_alter_table('evaluation_result', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_evaluation_result_evaluation_id'), ['evaluation_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('publication', schema=None) as batch_op:
        batch_op.drop_column('gate_result')
        batch_op.drop_column('gate')
    with op.batch_alter_table('evaluation_result', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_evaluation_result_evaluation_id'))

    op.drop_table('evaluation_result')
    with op.batch_alter_table('evaluation', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_evaluation_workflow_id'))
        batch_op.drop_index(batch_op.f('ix_evaluation_test_set_id'))
        batch_op.drop_index(batch_op.f('ix_evaluation_state'))
        batch_op.drop_index(batch_op.f('ix_evaluation_reuse_key'))
        batch_op.drop_index(batch_op.f('ix_evaluation_created_at'))

    op.drop_table('evaluation')
    with op.batch_alter_table('test_case', schema=None) as batch_op:
        batch_op.drop_index('ix_test_case_revision_position')

    op.drop_table('test_case')
    with op.batch_alter_table('test_set_revision', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_test_set_revision_test_set_id'))

    op.drop_table('test_set_revision')
    with op.batch_alter_table('test_set', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_test_set_name'))

    op.drop_table('test_set')
    sa.Enum(name='evalstate').drop(op.get_bind(), checkfirst=True)   # PostgreSQL keeps enum types
