"""public service safety: project keys, atomic start, per-client quotas, one writer per part, token requests
the operator approves

Revision ID: 0002
Revises: 0001
"""
from alembic import op
import sqlalchemy as sa


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('projects', schema=None) as batch_op:
        batch_op.add_column(sa.Column('project_key', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('starting_at', sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column('client_ip', sa.String(length=64), nullable=True))
        batch_op.create_index(batch_op.f('ix_projects_client_ip'), ['client_ip'], unique=False)

    op.create_table('part_writers',
    sa.Column('project_id', sa.String(length=32), nullable=False),
    sa.Column('index', sa.Integer(), nullable=False),
    sa.Column('writer', sa.String(length=32), nullable=False),
    sa.Column('touched_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['project_id'], ['projects.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('project_id', 'index')
    )

    with op.batch_alter_table('token_requests', schema=None) as batch_op:
        batch_op.add_column(sa.Column('forename', sa.String(length=100), nullable=True))
        batch_op.add_column(sa.Column('surname', sa.String(length=100), nullable=True))
        # rows from before this revision were mailed tokens already
        batch_op.add_column(sa.Column('status', sa.String(length=16), nullable=False, server_default='approved'))
        batch_op.add_column(sa.Column('approved_at', sa.DateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('token_requests', schema=None) as batch_op:
        batch_op.drop_column('approved_at')
        batch_op.drop_column('status')
        batch_op.drop_column('surname')
        batch_op.drop_column('forename')
    op.drop_table('part_writers')
    with op.batch_alter_table('projects', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_projects_client_ip'))
        batch_op.drop_column('client_ip')
        batch_op.drop_column('starting_at')
        batch_op.drop_column('project_key')
