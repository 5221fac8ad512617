"""Opening the campaign database, migrating it, and the read/write API the platform uses.

URLs: ``sqlite:///path.db`` (the default is ``./qdlab.db``, or the ``QDLAB_DB`` environment
variable) and ``postgresql+psycopg://user:password@host:port/db``. SQLite runs in WAL mode with
``synchronous=NORMAL``: a reader (a report, an IPython session) reads while a campaign writes,
and a committed document survives the writer being killed. Printed URLs mask the password
(:func:`safe_url`).
"""

from __future__ import annotations

import json
import math
import os
import threading
import uuid
from collections.abc import Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import Connection, Engine, create_engine, event, func, select, update
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, IntegrityError
from sqlalchemy.orm import Session

from db.records import AuditEntry, CampaignStatus, ExperimentStatus, UserRecord
from db.records import Experiment as ExperimentRecord
from db.schema import (
    Audit,
    Campaign,
    Document,
    Experiment,
    Observation,
    PlannerState,
    Run,
    Spectrum,
    User,
    WavelengthGrid,
    Workcell,
    utcnow,
)
from models.errors import UserError

__all__ = [
    "DEFAULT_URL",
    "OBSERVATION_FIELDS",
    "Database",
    "DatabaseError",
    "Fence",
    "LeaseLost",
    "SpectrumRecord",
    "dumps",
    "resolve_url",
    "safe_url",
]

DEFAULT_URL = "sqlite:///qdlab.db"
OBSERVATION_FIELDS = ("pl_peak_nm", "pl_fwhm_nm", "abs_peak_nm", "edge_length_est_nm", "plqy_est")
_MIGRATIONS = Path(__file__).resolve().parent / "migrations"
_HEAD = "0007"  # newest migration; a test checks it matches db/migrations
_MIGRATION_LOCK = threading.Lock()  # alembic's context is process-global
_SCHEMA_LOCK_KEY = 0x71646C6162  # "qdlab": PostgreSQL advisory lock held while migrating


class DatabaseError(UserError, RuntimeError):
    """The database cannot be opened, is not migrated, or lacks what was asked for."""


class DatabaseUnreachable(DatabaseError):
    """The database server did not take the connection (exit code 3, as the CLI documents)."""

    exit_code = 3


class LeaseLost(UserError, RuntimeError):
    """Another process took over the campaign's lease: this driver stops, writes nothing more
    and moves nothing more (:mod:`db.lease`)."""


@dataclass(frozen=True)
class Fence:
    """A driver's claim on a campaign (its lease's owner token): a write made with it happens
    only while the claim holds, checked in the write's own transaction."""

    campaign_id: int
    owner: str

    def lost(self) -> LeaseLost:
        """The error of a write this fence refused."""
        return LeaseLost(
            f"campaign {self.campaign_id}: another process took over its lease; this one "
            "stopped and wrote nothing more"
        )


def resolve_url(url: str | None = None) -> str:
    """The database URL: ``url`` if given, else ``$QDLAB_DB``, else ``sqlite:///qdlab.db``.

    An empty ``url`` is an error, not a fallback: ``--db ""`` is a mistake to report. A bare
    path (``--db runs.db``: no ``://``) is the SQLite file at that path; ``postgres://`` and
    ``postgresql://`` (libpq's spelling) are PostgreSQL through psycopg 3.
    """
    if url is None:
        url = os.environ.get("QDLAB_DB") or DEFAULT_URL
    if not url.strip():
        raise DatabaseError(
            "--db: the database URL is empty; use sqlite:///path.db or a postgresql+psycopg:// URL"
        )
    if "://" not in url:
        return f"sqlite:///{url}"
    scheme, rest = url.split("://", 1)
    if scheme in ("postgres", "postgresql"):  # as libpq and most hosts write it: psycopg 3
        return f"postgresql+psycopg://{rest}"
    return url


def _check_sqlite_path(path: Path, create: bool) -> None:
    """Refuse a SQLite path that cannot be a database, before SQLite creates anything."""
    if path.is_dir():
        raise DatabaseError(f"cannot open sqlite:///{path}: it is a directory, not a file")
    if path.exists():
        if not os.access(path, os.R_OK):
            raise DatabaseError(f"cannot open sqlite:///{path}: permission denied")
        return
    if not create:
        raise DatabaseError(
            f"no database at sqlite:///{path} (a campaign run or `qdlab db upgrade` creates one)"
        )
    parent = path.parent
    existing = next((p for p in (parent, *parent.parents) if p.exists()), None)
    if existing is not None and not existing.is_dir():
        raise DatabaseError(f"cannot create sqlite:///{path}: {existing} is not a directory")
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DatabaseError(f"cannot create sqlite:///{path}: {exc.strerror}") from None


def safe_url(url: str) -> str:
    """``url`` with any password masked, for logs and messages."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<unparseable database URL>"


def _json_default(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"cannot store {type(value).__name__} in a document")


def dumps(doc: Any) -> str:
    """JSON text of a document (numpy values as lists and scalars; NaN kept as NaN)."""
    return json.dumps(doc, default=_json_default, separators=(",", ":"))


def _aware(at: datetime) -> datetime:
    """A stored time as UTC (SQLite gives it back without its zone)."""
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


def _user_record(row: User) -> UserRecord:
    return UserRecord(row.name, row.role, _aware(row.created_at), row.disabled_at is not None)


def _finite_or_none(value: Any) -> float | None:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


@dataclass(frozen=True)
class SpectrumRecord:
    """One stored spectrum: data key (e.g. ``cell_pl``), event number, axis and values, and
    the event stream it came from (``primary``: a measurement; ``insitu``: during growth)."""

    data_key: str
    seq_num: int
    wavelengths_nm: np.ndarray | None
    values: np.ndarray
    stream: str = "primary"


class Database:
    """A QDLab database: engine plus the operations the platform needs.

    Parameters
    ----------
    url
        SQLAlchemy URL; ``None`` resolves with :func:`resolve_url`.
    migrate
        Bring the schema to the newest migration on open (a fresh file is created).
    """

    def __init__(
        self, url: str | None = None, *, migrate: bool = True, create: bool = True
    ) -> None:
        self.url = resolve_url(url)
        try:
            parsed = make_url(self.url)
        except ArgumentError:
            raise DatabaseError(
                "the database URL is not a valid SQLAlchemy URL; use sqlite:///path.db or "
                "postgresql+psycopg://user@host:port/db"
            ) from None
        self.dialect = parsed.get_backend_name()
        kwargs: dict[str, Any] = {}
        if self.dialect == "sqlite":
            kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
            if parsed.database and parsed.database != ":memory:":
                _check_sqlite_path(Path(parsed.database), create)
        try:
            self.engine: Engine = create_engine(self.url, **kwargs)
        except Exception as exc:  # missing driver, bad options
            raise DatabaseError(f"cannot open {safe_url(self.url)}: {exc}") from None
        if self.dialect == "sqlite":
            event.listen(self.engine, "connect", _sqlite_pragmas)
        try:
            with self.engine.connect() as conn:
                if self.dialect == "sqlite":  # a file that is not a database fails here
                    conn.exec_driver_sql("SELECT count(*) FROM sqlite_master").scalar()
        except DBAPIError as exc:
            reason = str(exc.orig).strip().splitlines()[0]
            if self.dialect == "sqlite":
                raise DatabaseError(f"cannot open {safe_url(self.url)}: {reason}") from None
            raise DatabaseUnreachable(f"cannot connect to {safe_url(self.url)}: {reason}") from None
        if migrate:
            self.upgrade()

    def __repr__(self) -> str:
        return f"Database({safe_url(self.url)!r})"

    def close(self) -> None:
        """Release the connections."""
        self.engine.dispose()

    # -- schema ---------------------------------------------------------------------------
    def upgrade(self, revision: str = "head") -> None:
        """Apply the Alembic migrations up to ``revision`` (nothing to do at the head).

        Safe when several processes open a new database at once: the migration runs in one
        transaction under a database-wide lock (``BEGIN IMMEDIATE`` on SQLite, an advisory lock
        on PostgreSQL), and whoever gets the lock second finds the schema done.
        """
        from alembic import command
        from alembic.config import Config
        from alembic.runtime.migration import MigrationContext

        if revision == "head" and self.revision() == _HEAD:
            return
        cfg = Config()
        cfg.set_main_option("script_location", str(_MIGRATIONS))
        cfg.set_main_option("sqlalchemy.url", self.url.replace("%", "%%"))
        try:
            with _MIGRATION_LOCK, self._schema_lock() as conn:
                current = MigrationContext.configure(conn).get_current_revision()
                if revision == "head" and current == _HEAD:
                    return
                cfg.attributes["connection"] = conn
                command.upgrade(cfg, revision)
        except DBAPIError as exc:
            reason = str(exc.orig).strip().splitlines()[0]
            raise DatabaseError(f"cannot migrate {safe_url(self.url)}: {reason}") from None

    @contextmanager
    def _schema_lock(self) -> Iterator[Connection]:
        """A connection in a transaction that holds the database's schema lock; commits."""
        with self.engine.connect() as conn:
            raw = conn.connection.driver_connection if self.dialect == "sqlite" else None
            try:
                if raw is not None:  # pysqlite would run DDL outside any transaction
                    raw.isolation_level = None
                    raw.execute("BEGIN IMMEDIATE")
                with conn.begin():  # alembic sees an external transaction and leaves it to us
                    if self.dialect == "postgresql":
                        conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_SCHEMA_LOCK_KEY})")
                    yield conn
            finally:
                if raw is not None:
                    raw.isolation_level = ""

    def revision(self) -> str | None:
        """The schema's current migration revision (None if not migrated)."""
        from alembic.runtime.migration import MigrationContext

        with self.engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()

    def integrity_check(self) -> bool:
        """SQLite's ``PRAGMA integrity_check`` (other back ends: a trivial query)."""
        with self.engine.connect() as conn:
            if self.dialect == "sqlite":
                return conn.exec_driver_sql("PRAGMA integrity_check").scalar() == "ok"
            return conn.exec_driver_sql("SELECT 1").scalar() == 1

    def session(self) -> Session:
        """A new ORM session (use as a context manager)."""
        return Session(self.engine, expire_on_commit=False)

    @staticmethod
    def _hold(s: Session, fence: Fence | None) -> None:
        """Check the fence inside the transaction of the write it guards: a no-op update of the
        campaign's lease, matched only while the fence's owner holds it, so it also locks the
        campaign's row (a takeover, itself an update of that row, waits or fails) until the
        write commits. :class:`LeaseLost` (the transaction rolls back) if it does not hold."""
        if fence is None:
            return
        held = s.execute(
            update(Campaign)
            .where(Campaign.id == fence.campaign_id, Campaign.lease_owner == fence.owner)
            .values(lease_owner=fence.owner)
        ).rowcount
        if held != 1:
            raise fence.lost()

    # -- campaigns ------------------------------------------------------------------------
    def create_campaign(
        self,
        name: str,
        route: str,
        config: Mapping[str, Any],
        config_text: str,
        target: Mapping[str, Any],
        replay_of: int | None = None,
    ) -> int:
        """Store a new campaign; return its id."""
        with self.session() as s, s.begin():
            row = Campaign(
                name=name,
                route=route,
                config=dict(config),
                config_text=config_text,
                target=dict(target),
                status=CampaignStatus.CREATED,
                replay_of=replay_of,
                uid=uuid.uuid4().hex,
            )
            s.add(row)
            s.flush()
            return row.id

    def set_campaign_config(self, campaign_id: int, config: Mapping[str, Any]) -> None:
        """Replace a campaign's stored config (e.g. a budget extended by the user)."""
        with self.session() as s, s.begin():
            s.execute(
                update(Campaign)
                .where(Campaign.id == campaign_id)
                .values(config=dict(config), updated_at=utcnow())
            )

    def set_campaign_status(
        self,
        campaign_id: int,
        status: CampaignStatus,
        reason: str | None = None,
        *,
        expected: Collection[CampaignStatus] | None = None,
        fence: Fence | None = None,
    ) -> bool:
        """Record a campaign's status, only from one of the ``expected`` statuses if given (and
        only while ``fence`` holds); return whether it moved
        (:mod:`orchestrator.campaign.lifecycle` says which moves are allowed)."""
        where = [Campaign.id == campaign_id]
        if expected is not None:
            where.append(Campaign.status.in_([str(s) for s in expected]))
        with self.session() as s, s.begin():
            self._hold(s, fence)
            result = s.execute(
                update(Campaign)
                .where(*where)
                .values(status=str(status), status_reason=reason, updated_at=utcnow())
            )
            return result.rowcount == 1

    def campaign(self, campaign_id: int) -> dict[str, Any]:
        """One campaign as a dict; :class:`DatabaseError` if there is none."""
        with self.session() as s:
            row = s.get(Campaign, campaign_id)
            if row is None:
                raise DatabaseError(f"no campaign {campaign_id} in {safe_url(self.url)}")
            return _campaign_dict(row, self._experiment_count(s, campaign_id))

    def version(self, campaign_id: int | None = None) -> str:
        """A token that changes whenever a campaign (``None``: any campaign) or one of its
        experiments changes: what a page that polls can compare before it asks for more."""
        experiments = select(func.count(), func.max(Experiment.updated_at))
        campaigns = select(func.count(), func.max(Campaign.updated_at))
        if campaign_id is not None:
            experiments = experiments.where(Experiment.campaign_id == campaign_id)
            campaigns = campaigns.where(Campaign.id == campaign_id)
        with self.session() as s:
            stamp = (*s.execute(campaigns).one(), *s.execute(experiments).one())
        if campaign_id is not None and stamp[0] == 0:
            raise DatabaseError(f"no campaign {campaign_id} in {safe_url(self.url)}")
        return uuid.uuid5(uuid.NAMESPACE_OID, repr(stamp)).hex

    def campaigns(self) -> list[dict[str, Any]]:
        """Every campaign, oldest first, with its experiment count."""
        with self.session() as s:
            counts = dict(
                s.execute(
                    select(Experiment.campaign_id, func.count()).group_by(Experiment.campaign_id)
                ).all()
            )
            rows = s.scalars(select(Campaign).order_by(Campaign.id)).all()
            return [_campaign_dict(r, counts.get(r.id, 0)) for r in rows]

    @staticmethod
    def _experiment_count(s: Session, campaign_id: int) -> int:
        return s.scalar(select(func.count()).where(Experiment.campaign_id == campaign_id)) or 0

    # -- experiments ----------------------------------------------------------------------
    def add_experiment(
        self,
        campaign_id: int,
        index: int | None,
        conditions: Mapping[str, Any],
        *,
        planner_name: str,
        planner_version: str,
        seed: int | None = None,
        acquisition_value: float | None = None,
        predicted_mean: float | None = None,
        predicted_std: float | None = None,
        provenance: Mapping[str, Any] | None = None,
        status: ExperimentStatus = ExperimentStatus.PROPOSED,
        fence: Fence | None = None,
    ) -> int:
        """Store a proposal as experiment ``index`` of the campaign (``None``: the next free
        index, also when another process adds experiments at the same time; only while
        ``fence`` holds); return its id."""
        for _ in range(20):
            try:
                with self.session() as s, s.begin():
                    self._hold(s, fence)
                    at = index
                    if at is None:
                        last = s.scalar(
                            select(func.max(Experiment.index)).where(
                                Experiment.campaign_id == campaign_id
                            )
                        )
                        at = 0 if last is None else last + 1
                    row = Experiment(
                        campaign_id=campaign_id,
                        index=at,
                        conditions=dict(conditions),
                        status=str(status),
                        planner_name=planner_name,
                        planner_version=planner_version,
                        seed=seed,
                        acquisition_value=_finite_or_none(acquisition_value),
                        predicted_mean=_finite_or_none(predicted_mean),
                        predicted_std=_finite_or_none(predicted_std),
                        provenance=dict(provenance or {}),
                    )
                    s.add(row)
                    s.flush()
                    return row.id
            except IntegrityError:
                if index is not None:
                    raise
        raise DatabaseError(f"campaign {campaign_id}: could not allocate an experiment index")

    def set_experiment_status(
        self,
        experiment_id: int,
        status: ExperimentStatus,
        failure_reason: str | None = None,
        *,
        workcell: str | None = None,
        expected: Collection[ExperimentStatus] | None = None,
        fence: Fence | None = None,
    ) -> bool:
        """Move an experiment to ``status`` (with ``failure_reason``; on ``workcell``), only from
        one of the ``expected`` statuses if given, in one statement: two writers cannot both
        move it; only while ``fence`` holds (:class:`LeaseLost`). Return whether it moved.
        Only :mod:`orchestrator.campaign.lifecycle` calls this; it knows which moves are
        allowed."""
        values: dict[str, Any] = {
            "status": str(status),
            "failure_reason": failure_reason,
            "updated_at": utcnow(),
        }
        if workcell is not None:
            values["workcell"] = workcell
        where = [Experiment.id == experiment_id]
        if expected is not None:
            where.append(Experiment.status.in_([str(s) for s in expected]))
        with self.session() as s, s.begin():
            self._hold(s, fence)
            return s.execute(update(Experiment).where(*where).values(**values)).rowcount == 1

    def decide(
        self,
        campaign_id: int,
        indices: Sequence[int] | None,
        status: ExperimentStatus,
        reason: str | None = None,
        fence: Fence | None = None,
    ) -> list[int]:
        """Move experiments (0-based ``indices``; ``None``: all) that await approval to
        ``status`` (``proposed`` to approve, ``rejected`` to veto, with ``reason``); return the
        indices that moved. Only an experiment still awaiting approval moves, so two people
        deciding at once cannot both act on it."""
        with self.session() as s, s.begin():
            self._hold(s, fence)
            where = [
                Experiment.campaign_id == campaign_id,
                Experiment.status == str(ExperimentStatus.AWAITING_APPROVAL),
            ]
            if indices is not None:
                where.append(Experiment.index.in_(list(indices)))
            moved = list(s.scalars(select(Experiment.index).where(*where)).all())
            if moved:
                s.execute(
                    update(Experiment)
                    .where(*where, Experiment.index.in_(moved))
                    .values(status=str(status), failure_reason=reason, updated_at=utcnow())
                )
            return sorted(moved)

    def open_experiments(self, campaign_id: int) -> tuple[list[ExperimentRecord], int, int]:
        """What a campaign agent polls: the experiments not yet done or failed (awaiting
        approval, proposed, queued, running, rejected) in index order, without observables;
        how many experiments count against the budget (those that run or will: neither
        rejected nor awaiting approval); and the next free index."""
        open_states = [str(s) for s in ExperimentStatus if s.open]
        with self.session() as s:
            rows = s.scalars(
                select(Experiment)
                .where(Experiment.campaign_id == campaign_id, Experiment.status.in_(open_states))
                .order_by(Experiment.index)
            ).all()
            counted = s.scalar(
                select(func.count()).where(
                    Experiment.campaign_id == campaign_id,
                    Experiment.status.not_in(
                        [str(ExperimentStatus.REJECTED), str(ExperimentStatus.AWAITING_APPROVAL)]
                    ),
                )
            )
            last = s.scalar(
                select(func.max(Experiment.index)).where(Experiment.campaign_id == campaign_id)
            )
            return (
                [_experiment_record(e, None) for e in rows],
                counted or 0,
                0 if last is None else last + 1,
            )

    def experiment(self, experiment_id: int) -> ExperimentRecord:
        """One experiment (as in :meth:`experiments`)."""
        with self.session() as s:
            row = s.execute(
                select(Experiment, Observation)
                .outerjoin(Observation, Observation.experiment_id == Experiment.id)
                .where(Experiment.id == experiment_id)
            ).first()
            if row is None:
                raise DatabaseError(f"no experiment {experiment_id} in {safe_url(self.url)}")
            return _experiment_record(*row)

    def experiment_id(self, campaign_id: int, index: int) -> int | None:
        """Id of experiment ``index`` of a campaign, if stored."""
        with self.session() as s:
            return s.scalar(
                select(Experiment.id).where(
                    Experiment.campaign_id == campaign_id, Experiment.index == index
                )
            )

    def experiments(self, campaign_id: int) -> list[ExperimentRecord]:
        """The experiments of a campaign in order, with their observables."""
        with self.session() as s:
            rows = s.execute(
                select(Experiment, Observation)
                .outerjoin(Observation, Observation.experiment_id == Experiment.id)
                .where(Experiment.campaign_id == campaign_id)
                .order_by(Experiment.index)
            ).all()
            return [_experiment_record(e, o) for e, o in rows]

    def experiments_frame(self, campaign_id: int) -> Any:
        """:meth:`experiments` as a pandas DataFrame, conditions and observables as columns."""
        try:
            import pandas as pd
        except ImportError:
            raise DatabaseError("experiments_frame needs pandas: pip install pandas") from None
        flat = []
        for e in self.experiments(campaign_id):
            row = {k: v for k, v in asdict(e).items() if k not in ("conditions", "observables")}
            flat.append({**row, **e.conditions, **(e.observables or {})})
        return pd.DataFrame(flat)

    # -- observations ---------------------------------------------------------------------
    def add_observation(
        self,
        experiment_id: int,
        observables: Mapping[str, Any],
        run_uid: str | None = None,
        *,
        expected: Collection[ExperimentStatus] | None = None,
        fence: Fence | None = None,
    ) -> bool:
        """Store an experiment's observables (NaN is stored as NULL: not measured) and mark it
        done, in one transaction: a crash leaves either both or neither. With ``expected``,
        only an experiment in one of those statuses is recorded; return whether it was."""
        known = {k: _finite_or_none(observables.get(k)) for k in OBSERVATION_FIELDS}
        extra = {k: v for k, v in observables.items() if k not in OBSERVATION_FIELDS}
        where = [Experiment.id == experiment_id]
        if expected is not None:
            where.append(Experiment.status.in_([str(s) for s in expected]))
        with self.session() as s, s.begin():
            self._hold(s, fence)
            moved = s.execute(
                update(Experiment)
                .where(*where)
                .values(status=str(ExperimentStatus.DONE), failure_reason=None, updated_at=utcnow())
            ).rowcount
            if moved != 1:
                return False
            s.add(Observation(experiment_id=experiment_id, run_uid=run_uid, extra=extra, **known))
            return True

    def save_planner_state(
        self, campaign_id: int, planner: str, state: str, fence: Fence | None = None
    ) -> None:
        """Keep the snapshot ``state`` the campaign's ``planner`` wrote of itself (replacing
        the one before), only while ``fence`` holds."""
        with self.session() as s, s.begin():
            self._hold(s, fence)
            s.merge(
                PlannerState(
                    campaign_id=campaign_id, planner=planner, state=state, saved_at=utcnow()
                )
            )

    def planner_state(self, campaign_id: int, planner: str) -> str | None:
        """The last snapshot ``planner`` kept of a campaign (None: none, or another planner's)."""
        with self.session() as s:
            row = s.get(PlannerState, campaign_id)
            return row.state if row is not None and row.planner == planner else None

    def all_observations(self, route: str | None = None) -> list[ExperimentRecord]:
        """Every measured experiment across campaigns (optionally of one route): for warm
        starts."""
        with self.session() as s:
            query = (
                select(Experiment, Observation, Campaign.route)
                .join(Observation, Observation.experiment_id == Experiment.id)
                .join(Campaign, Campaign.id == Experiment.campaign_id)
                .order_by(Experiment.campaign_id, Experiment.index)
            )
            if route is not None:
                query = query.where(Campaign.route == route)
            return [_experiment_record(e, o) for e, o, _ in s.execute(query).all()]

    # -- people --------------------------------------------------------------------------
    def add_user(self, name: str, role: str, key_hash: str) -> None:
        """Record user ``name`` with ``role`` and the hash of their API key;
        :class:`DatabaseError` if the name is taken."""
        try:
            with self.session() as s, s.begin():
                s.add(User(name=name, role=role, key_hash=key_hash, created_at=utcnow()))
        except IntegrityError:
            raise DatabaseError(f"a user named {name!r} exists already") from None

    def update_user(
        self,
        name: str,
        *,
        role: str | None = None,
        key_hash: str | None = None,
        disabled: bool | None = None,
    ) -> None:
        """Change a user's role, key (its hash) or whether they are disabled;
        :class:`DatabaseError` if there is no such user."""
        with self.session() as s, s.begin():
            row = s.scalar(select(User).where(User.name == name))
            if row is None:
                raise DatabaseError(f"no user named {name!r}")
            if role is not None:
                row.role = role
            if key_hash is not None:
                row.key_hash = key_hash
            if disabled is not None:
                row.disabled_at = utcnow() if disabled else None

    def users(self) -> list[UserRecord]:
        """Every user, in the order they were added."""
        with self.session() as s:
            return [_user_record(u) for u in s.scalars(select(User).order_by(User.id))]

    def user_by_key_hash(self, key_hash: str) -> UserRecord | None:
        """The user whose API key has this hash (None: nobody's)."""
        with self.session() as s:
            row = s.scalar(select(User).where(User.key_hash == key_hash))
            return None if row is None else _user_record(row)

    def record_audit(
        self,
        user: str,
        role: str,
        action: str,
        campaign_id: int | None = None,
        experiment_number: int | None = None,
        detail: str = "",
    ) -> None:
        """Record that ``user`` (acting as ``role``) did ``action``."""
        with self.session() as s, s.begin():
            s.add(
                Audit(
                    at=utcnow(), user=user, role=role, action=action, campaign_id=campaign_id,
                    experiment_number=experiment_number, detail=detail,
                )
            )  # fmt: skip

    def audit(self, campaign_id: int | None = None) -> list[AuditEntry]:
        """Who did what, oldest first: on one campaign, or everything (``None``)."""
        query = select(Audit).order_by(Audit.id)
        if campaign_id is not None:
            query = query.where(Audit.campaign_id == campaign_id)
        with self.session() as s:
            return [
                AuditEntry(
                    _aware(a.at), a.user, a.role, a.action, a.campaign_id, a.experiment_number,
                    a.detail,
                )
                for a in s.scalars(query)
            ]  # fmt: skip

    # -- workcells -----------------------------------------------------------------------
    def register_workcell(
        self, name: str, *, zmq: str | None, http: str | None, lab: str, host: str, pid: int
    ) -> None:
        """Record that workcell ``name`` serves at these addresses (replacing an earlier
        record of the same name)."""
        with self.session() as s, s.begin():
            row = s.get(Workcell, name) or Workcell(name=name)
            row.zmq, row.http, row.lab, row.host, row.pid = zmq, http, lab, host, pid
            row.started_at, row.stopped_at = utcnow(), None
            s.add(row)

    def workcell_stopped(self, name: str) -> None:
        """Record that workcell ``name`` stopped serving."""
        with self.session() as s, s.begin():
            s.execute(update(Workcell).where(Workcell.name == name).values(stopped_at=utcnow()))

    def workcells(self) -> list[dict[str, Any]]:
        """The registered workcells by name (``stopped_at`` is None while one serves)."""
        with self.session() as s:
            return [
                {
                    "name": w.name,
                    "zmq": w.zmq,
                    "http": w.http,
                    "lab": w.lab,
                    "host": w.host,
                    "pid": w.pid,
                    "started_at": w.started_at.isoformat(),
                    "stopped_at": w.stopped_at.isoformat() if w.stopped_at else None,
                }
                for w in s.scalars(select(Workcell).order_by(Workcell.name)).all()
            ]

    # -- runs, documents, spectra ---------------------------------------------------------
    def reject_run(self, run_uid: str, reason: str, fence: Fence | None = None) -> None:
        """Mark a run's measurement as an instrument fault (it stays in the record; its
        experiment runs again)."""
        with self.session() as s, s.begin():
            self._hold(s, fence)
            s.execute(update(Run).where(Run.uid == run_uid).values(rejected=reason))

    def runs_with_stream(self, campaign_id: int, stream: str) -> set[str]:
        """The uids of a campaign's runs that stored spectra in event ``stream`` (one query:
        which runs were read in situ, without reading any run's documents)."""
        with self.session() as s:
            query = (
                select(Spectrum.run_uid)
                .join(Run, Run.uid == Spectrum.run_uid)
                .where(Run.campaign_id == campaign_id, Spectrum.stream == stream)
                .distinct()
            )
            return set(s.scalars(query))

    def runs(
        self, campaign_id: int | None = None, *, experiment_id: int | None = None
    ) -> list[dict[str, Any]]:
        """Runs (of a campaign, of an experiment, or all) in start order; ``complete`` is False
        after a crash."""
        with self.session() as s:
            query = select(Run).order_by(Run.start_time)
            if campaign_id is not None:
                query = query.where(Run.campaign_id == campaign_id)
            if experiment_id is not None:
                query = query.where(Run.experiment_id == experiment_id)
            return [
                {
                    "uid": r.uid,
                    "campaign_id": r.campaign_id,
                    "experiment_id": r.experiment_id,
                    "plan_name": r.plan_name,
                    "start_time": r.start_time,
                    "stop_time": r.stop_time,
                    "exit_status": r.exit_status,
                    "reason": r.reason,
                    "complete": r.stop_time is not None,
                    "rejected": r.rejected,
                }
                for r in s.scalars(query).all()
            ]

    def run_documents(self, run_uid: str) -> list[tuple[str, dict[str, Any]]]:
        """The documents of a run, in emission order, spectra put back in their events."""
        return list(self._documents(Document.run_uid == run_uid))

    def campaign_documents(self, campaign_id: int) -> Iterator[tuple[str, dict[str, Any]]]:
        """Every document of a campaign's runs, in emission order."""
        uids = select(Run.uid).where(Run.campaign_id == campaign_id)
        return self._documents(Document.run_uid.in_(uids))

    def _documents(self, where: Any) -> Iterator[tuple[str, dict[str, Any]]]:
        with self.session() as s:
            rows = s.execute(
                select(Document.name, Document.doc, Document.run_uid)
                .where(where)
                .order_by(Document.id)
            ).all()
            run_uids = {r.run_uid for r in rows}
            spectra: dict[tuple[str, str], list[float]] = {}
            if run_uids:
                for sp in s.scalars(select(Spectrum).where(Spectrum.run_uid.in_(run_uids))):
                    spectra[(sp.event_uid, sp.data_key)] = np.frombuffer(
                        sp.values, dtype="<f8"
                    ).tolist()
        for name, text, _ in rows:
            doc = json.loads(text)
            if name == "event":
                for key, value in doc["data"].items():
                    if value is None and (doc["uid"], key) in spectra:
                        doc["data"][key] = spectra[(doc["uid"], key)]
            yield name, doc

    def spectra(
        self,
        run_uid: str | None = None,
        *,
        experiment_id: int | None = None,
        stream: str | None = None,
    ) -> list[SpectrumRecord]:
        """Spectra of a run (or of an experiment's runs) as numpy arrays, in event order; of
        one event ``stream`` only (``primary``: the measurements), or of all."""
        with self.session() as s:
            query = select(Spectrum, WavelengthGrid).outerjoin(
                WavelengthGrid, WavelengthGrid.id == Spectrum.grid_id
            )
            if stream is not None:
                query = query.where(Spectrum.stream == stream)
            if experiment_id is not None:
                uids = select(Run.uid).where(Run.experiment_id == experiment_id)
                query = query.where(Spectrum.run_uid.in_(uids))
            else:
                query = query.where(Spectrum.run_uid == run_uid)
            rows = s.execute(query.order_by(Spectrum.id)).all()
            return [
                SpectrumRecord(
                    sp.data_key,
                    sp.seq_num,
                    None if grid is None else np.frombuffer(grid.values, dtype="<f8"),
                    np.frombuffer(sp.values, dtype="<f8"),
                    sp.stream,
                )
                for sp, grid in rows
            ]


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _campaign_dict(row: Campaign, experiments: int) -> dict[str, Any]:
    return {
        "id": row.id,
        "name": row.name,
        "route": row.route,
        "status": CampaignStatus(row.status),
        "status_reason": row.status_reason,
        "target": row.target,
        "config": row.config,
        "replay_of": row.replay_of,
        "uid": row.uid or f"campaign-{row.id}",
        "experiments": experiments,
        "created_at": row.created_at.isoformat(),
        "updated_at": row.updated_at.isoformat(),
    }


def _experiment_record(e: Experiment, o: Observation | None) -> ExperimentRecord:
    observables = None
    if o is not None:
        observables = {k: getattr(o, k) for k in OBSERVATION_FIELDS}
        observables.update(o.extra or {})
    return ExperimentRecord(
        id=e.id,
        campaign_id=e.campaign_id,
        index=e.index,
        status=ExperimentStatus(e.status),
        conditions=e.conditions,
        failure_reason=e.failure_reason,
        planner_name=e.planner_name,
        planner_version=e.planner_version,
        seed=e.seed,
        acquisition_value=e.acquisition_value,
        predicted_mean=e.predicted_mean,
        predicted_std=e.predicted_std,
        provenance=e.provenance,
        observables=observables,
        run_uid=o.run_uid if o is not None else None,
        workcell=e.workcell,
    )


def spectra_keys(descriptor: Mapping[str, Any]) -> dict[str, str | None]:
    """Data keys of a descriptor that hold 1-D numeric arrays of >= 16 points (spectra), each
    with the configuration key of its wavelength axis (``<device>_wavelengths``) if there is one.
    """
    out: dict[str, str | None] = {}
    config = descriptor.get("configuration", {})
    for key, info in descriptor.get("data_keys", {}).items():
        shape = info.get("shape") or []
        if info.get("dtype") != "array" or len(shape) != 1 or shape[0] < 16:
            continue
        device = info.get("object_name")
        axis = f"{device}_wavelengths"
        has_axis = device in config and axis in config[device].get("data", {})
        out[key] = axis if has_axis else None
    return out


def sequence(values: Sequence[float] | np.ndarray) -> np.ndarray:
    """A 1-D float64 array of ``values`` (spectra and grids are stored as little-endian f8)."""
    return np.ascontiguousarray(values, dtype="<f8").reshape(-1)
