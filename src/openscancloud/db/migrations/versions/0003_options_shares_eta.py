"""project options, share links, stage start time for the ETA

Revision ID: 0003
Revises: 0001
"""
from alembic import op
import sqlalchemy as sa


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('projects', schema=None) as batch_op:
        batch_op.add_column(sa.Column('options', sa.Text(), nullable=True))
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('stage_started_at', sa.DateTime(), nullable=True))
    op.create_table('share_links',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('project_id', sa.String(length=32), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('revoked_at', sa.DateTime(), nullable=True),
    sa.ForeignKeyConstraint(['project_id'], ['projects.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('share_links', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_share_links_project_id'), ['project_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('share_links', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_share_links_project_id'))
    op.drop_table('share_links')
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.drop_column('stage_started_at')
    with op.batch_alter_table('projects', schema=None) as batch_op:
        batch_op.drop_column('options')
