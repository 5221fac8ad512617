"""Which event stream a stored spectrum came from: a run's measurement (``primary``) or a
reading of the growing dots in situ (``insitu``), so the two are never mixed up.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # every spectrum stored before was a primary event's: no plan had another stream of them
    with op.batch_alter_table("spectra") as batch:
        batch.add_column(
            sa.Column("stream", sa.String(100), nullable=False, server_default="primary")
        )


def downgrade() -> None:
    with op.batch_alter_table("spectra") as batch:
        batch.drop_column("stream")
