"""Initial schema: campaigns, experiments, runs, documents, spectra, observations.

Revision ID: 0001
Revises:
Create Date: 2026-11-24
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

_TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "campaigns",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("route", sa.String(40), nullable=False),
        sa.Column("config", sa.JSON(), nullable=False),
        sa.Column("config_text", sa.Text(), nullable=False),
        sa.Column("target", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("status_reason", sa.Text(), nullable=True),
        sa.Column("replay_of", sa.Integer(), sa.ForeignKey("campaigns.id"), nullable=True),
        sa.Column("created_at", _TZ, nullable=False),
        sa.Column("updated_at", _TZ, nullable=False),
    )
    op.create_table(
        "experiments",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("campaign_id", sa.Integer(), sa.ForeignKey("campaigns.id"), nullable=False),
        sa.Column("index", sa.Integer(), nullable=False),
        sa.Column("conditions", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("failure_reason", sa.Text(), nullable=True),
        sa.Column("planner_name", sa.String(60), nullable=False),
        sa.Column("planner_version", sa.String(40), nullable=False),
        sa.Column("seed", sa.Integer(), nullable=True),
        sa.Column("acquisition_value", sa.Float(), nullable=True),
        sa.Column("predicted_mean", sa.Float(), nullable=True),
        sa.Column("predicted_std", sa.Float(), nullable=True),
        sa.Column("provenance", sa.JSON(), nullable=False),
        sa.Column("created_at", _TZ, nullable=False),
        sa.Column("updated_at", _TZ, nullable=False),
        sa.UniqueConstraint("campaign_id", "index", name="uq_experiment_index"),
    )
    op.create_index("ix_experiments_campaign_id", "experiments", ["campaign_id"])
    op.create_table(
        "runs",
        sa.Column("uid", sa.String(64), primary_key=True),
        sa.Column("campaign_id", sa.Integer(), sa.ForeignKey("campaigns.id"), nullable=True),
        sa.Column("experiment_id", sa.Integer(), sa.ForeignKey("experiments.id"), nullable=True),
        sa.Column("plan_name", sa.String(200), nullable=True),
        sa.Column("start_time", sa.Float(), nullable=False),
        sa.Column("stop_time", sa.Float(), nullable=True),
        sa.Column("exit_status", sa.String(20), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
    )
    op.create_index("ix_runs_campaign_id", "runs", ["campaign_id"])
    op.create_index("ix_runs_experiment_id", "runs", ["experiment_id"])
    op.create_table(
        "documents",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("run_uid", sa.String(64), sa.ForeignKey("runs.uid"), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(20), nullable=False),
        sa.Column("doc", sa.Text(), nullable=False),
        sa.UniqueConstraint("run_uid", "seq", name="uq_document_seq"),
    )
    op.create_index("ix_documents_run_uid", "documents", ["run_uid"])
    op.create_table(
        "wavelength_grids",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("digest", sa.String(64), nullable=False, unique=True),
        sa.Column("points", sa.Integer(), nullable=False),
        sa.Column("values", sa.LargeBinary(), nullable=False),
    )
    op.create_table(
        "spectra",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("run_uid", sa.String(64), sa.ForeignKey("runs.uid"), nullable=False),
        sa.Column("event_uid", sa.String(64), nullable=False),
        sa.Column("seq_num", sa.Integer(), nullable=False),
        sa.Column("data_key", sa.String(200), nullable=False),
        sa.Column("grid_id", sa.Integer(), sa.ForeignKey("wavelength_grids.id"), nullable=True),
        sa.Column("points", sa.Integer(), nullable=False),
        sa.Column("values", sa.LargeBinary(), nullable=False),
    )
    op.create_index("ix_spectra_run_uid", "spectra", ["run_uid"])
    op.create_index("ix_spectra_event", "spectra", ["event_uid", "data_key"], unique=True)
    op.create_table(
        "observations",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column(
            "experiment_id",
            sa.Integer(),
            sa.ForeignKey("experiments.id"),
            nullable=False,
            unique=True,
        ),
        sa.Column("run_uid", sa.String(64), sa.ForeignKey("runs.uid"), nullable=True),
        sa.Column("pl_peak_nm", sa.Float(), nullable=True),
        sa.Column("pl_fwhm_nm", sa.Float(), nullable=True),
        sa.Column("abs_peak_nm", sa.Float(), nullable=True),
        sa.Column("edge_length_est_nm", sa.Float(), nullable=True),
        sa.Column("plqy_est", sa.Float(), nullable=True),
        sa.Column("extra", sa.JSON(), nullable=False),
        sa.Column("created_at", _TZ, nullable=False),
    )


def downgrade() -> None:
    for table in (
        "observations",
        "spectra",
        "wavelength_grids",
        "documents",
        "runs",
        "experiments",
        "campaigns",
    ):
        op.drop_table(table)
