"""Workcells: the RE Managers a campaign can dispatch to, which one ran each experiment, and a
campaign uid (queue items name their campaign by it: a queue outlives a database's ids).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("campaigns") as batch:
        batch.add_column(sa.Column("uid", sa.String(32), nullable=True))
    with op.batch_alter_table("experiments") as batch:
        batch.add_column(sa.Column("workcell", sa.String(100), nullable=True))
    op.create_table(
        "workcells",
        sa.Column("name", sa.String(100), primary_key=True),
        sa.Column("zmq", sa.String(200), nullable=True),
        sa.Column("http", sa.String(200), nullable=True),
        sa.Column("lab", sa.String(200), nullable=False),
        sa.Column("host", sa.String(200), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("stopped_at", sa.DateTime(timezone=True), nullable=True),
    )


def downgrade() -> None:
    op.drop_table("workcells")
    with op.batch_alter_table("experiments") as batch:
        batch.drop_column("workcell")
    with op.batch_alter_table("campaigns") as batch:
        batch.drop_column("uid")
