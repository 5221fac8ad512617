"""The campaign database schema (SQLAlchemy 2 typed ORM).

- ``campaigns``: one closed-loop campaign: its config (as stored YAML/JSON), target and status,
  and its lease: the one process allowed to drive it (``host:pid``) and until when (epoch s).
- ``experiments``: one proposal of a campaign and what became of it, with the provenance of the
  decision (planner, version, seed, acquisition value, predicted mean and std).
- ``runs``: one bluesky run; a run with no ``stop_time`` never got its stop document (a crash).
- ``documents``: every event-model document of every run, in emission order. Large 1-D arrays
  (spectra) of events are kept in ``spectra`` instead and put back on read.
- ``spectra`` and ``wavelength_grids``: float64 arrays as bytes, readable straight into numpy.
- ``observations``: the observables extracted from an experiment's spectra.
- ``workcells``: the RE Managers (``qdlab workcell serve``) a campaign can dispatch to, by name.
- ``users``: the people and agents who act on the lab, each with a role and the SHA-256 hash of
  their API key (the key itself is shown once, never stored).
- ``audit``: who did what and when: every approval, rejection, added experiment, pause, resume,
  campaign run and change of users, with the acting user's name and role at the time.
- ``planner_states``: the last snapshot a campaign's planner wrote of itself in its library's
  own serialisation (Ax, BayBE), which a resume restores instead of asking again.

An experiment's status is one of ``awaiting_approval`` (a proposal waiting for a person),
``proposed`` (ready to run), ``queued`` (submitted to ``workcell``'s queue), ``running``,
``done``, ``failed`` or ``rejected`` (vetoed by a person; never run).

The schema is created and evolved by the Alembic migrations in ``db/migrations``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

__all__ = [
    "Audit",
    "Base",
    "Campaign",
    "Document",
    "Experiment",
    "Observation",
    "PlannerState",
    "Run",
    "Spectrum",
    "User",
    "WavelengthGrid",
    "Workcell",
]


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    """Declarative base of every QDLab table."""


class Campaign(Base):
    __tablename__ = "campaigns"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(200))
    route: Mapped[str] = mapped_column(String(40))
    config: Mapped[dict[str, Any]] = mapped_column(JSON)
    config_text: Mapped[str] = mapped_column(Text)
    target: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(20), default="created")
    status_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    replay_of: Mapped[int | None] = mapped_column(ForeignKey("campaigns.id"), nullable=True)
    lease_owner: Mapped[str | None] = mapped_column(String(200), nullable=True)
    lease_expires: Mapped[float | None] = mapped_column(Float, nullable=True)
    uid: Mapped[str | None] = mapped_column(String(32), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, onupdate=utcnow
    )


class Experiment(Base):
    __tablename__ = "experiments"
    __table_args__ = (UniqueConstraint("campaign_id", "index", name="uq_experiment_index"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id"), index=True)
    index: Mapped[int] = mapped_column(Integer)
    conditions: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(20), default="proposed")
    failure_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    planner_name: Mapped[str] = mapped_column(String(60))
    planner_version: Mapped[str] = mapped_column(String(40))
    seed: Mapped[int | None] = mapped_column(Integer, nullable=True)
    acquisition_value: Mapped[float | None] = mapped_column(Float, nullable=True)
    predicted_mean: Mapped[float | None] = mapped_column(Float, nullable=True)
    predicted_std: Mapped[float | None] = mapped_column(Float, nullable=True)
    provenance: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    workcell: Mapped[str | None] = mapped_column(String(100), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, onupdate=utcnow
    )


class Run(Base):
    __tablename__ = "runs"

    uid: Mapped[str] = mapped_column(String(64), primary_key=True)
    campaign_id: Mapped[int | None] = mapped_column(
        ForeignKey("campaigns.id"), nullable=True, index=True
    )
    experiment_id: Mapped[int | None] = mapped_column(
        ForeignKey("experiments.id"), nullable=True, index=True
    )
    plan_name: Mapped[str | None] = mapped_column(String(200), nullable=True)
    start_time: Mapped[float] = mapped_column(Float)
    stop_time: Mapped[float | None] = mapped_column(Float, nullable=True)
    exit_status: Mapped[str | None] = mapped_column(String(20), nullable=True)
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    rejected: Mapped[str | None] = mapped_column(Text, nullable=True)
    """Why QDLab rejected the run's measurement as an instrument fault (None: it did not)."""


class Document(Base):
    __tablename__ = "documents"
    __table_args__ = (UniqueConstraint("run_uid", "seq", name="uq_document_seq"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_uid: Mapped[str] = mapped_column(ForeignKey("runs.uid"), index=True)
    seq: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(20))
    doc: Mapped[str] = mapped_column(Text)


class WavelengthGrid(Base):
    __tablename__ = "wavelength_grids"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    digest: Mapped[str] = mapped_column(String(64), unique=True)
    points: Mapped[int] = mapped_column(Integer)
    values: Mapped[bytes] = mapped_column(LargeBinary)


class Spectrum(Base):
    __tablename__ = "spectra"
    __table_args__ = (Index("ix_spectra_event", "event_uid", "data_key", unique=True),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_uid: Mapped[str] = mapped_column(ForeignKey("runs.uid"), index=True)
    event_uid: Mapped[str] = mapped_column(String(64))
    seq_num: Mapped[int] = mapped_column(Integer)
    data_key: Mapped[str] = mapped_column(String(200))
    grid_id: Mapped[int | None] = mapped_column(ForeignKey("wavelength_grids.id"), nullable=True)
    points: Mapped[int] = mapped_column(Integer)
    values: Mapped[bytes] = mapped_column(LargeBinary)
    stream: Mapped[str] = mapped_column(String(100), server_default="primary")


class Observation(Base):
    __tablename__ = "observations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    experiment_id: Mapped[int] = mapped_column(ForeignKey("experiments.id"), unique=True)
    run_uid: Mapped[str | None] = mapped_column(ForeignKey("runs.uid"), nullable=True)
    pl_peak_nm: Mapped[float | None] = mapped_column(Float, nullable=True)
    pl_fwhm_nm: Mapped[float | None] = mapped_column(Float, nullable=True)
    abs_peak_nm: Mapped[float | None] = mapped_column(Float, nullable=True)
    edge_length_est_nm: Mapped[float | None] = mapped_column(Float, nullable=True)
    plqy_est: Mapped[float | None] = mapped_column(Float, nullable=True)
    extra: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Workcell(Base):
    __tablename__ = "workcells"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    zmq: Mapped[str | None] = mapped_column(String(200), nullable=True)
    http: Mapped[str | None] = mapped_column(String(200), nullable=True)
    lab: Mapped[str] = mapped_column(String(200))
    host: Mapped[str] = mapped_column(String(200))
    pid: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    stopped_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class PlannerState(Base):
    __tablename__ = "planner_states"

    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id"), primary_key=True)
    planner: Mapped[str] = mapped_column(String(200))
    state: Mapped[str] = mapped_column(Text)
    saved_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    role: Mapped[str] = mapped_column(String(20))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    disabled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class Audit(Base):
    __tablename__ = "audit"
    __table_args__ = (Index("ix_audit_campaign", "campaign_id", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    user: Mapped[str] = mapped_column(String(100))
    role: Mapped[str] = mapped_column(String(20))
    action: Mapped[str] = mapped_column(String(40))
    campaign_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    experiment_number: Mapped[int | None] = mapped_column(Integer, nullable=True)
    detail: Mapped[str] = mapped_column(Text, default="")
