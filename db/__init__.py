"""Campaign database: SQLAlchemy 2 schema, engine setup, live document writer, queries, export.

>>> db = Database("sqlite:///qdlab.db")      # migrates to the newest schema on open
>>> RE.subscribe(DocumentWriter(db))

The names below are the public API; they load on first use, so that importing ``db.records``
(the status enums, at the CLI's start-up) does not pay for SQLAlchemy.
"""

from models.lazy import lazy_names

_PUBLIC = {
    "DEFAULT_URL": "db.database",
    "Database": "db.database",
    "DatabaseError": "db.database",
    "Fence": "db.database",
    "LeaseLost": "db.database",
    "SpectrumRecord": "db.database",
    "resolve_url": "db.database",
    "safe_url": "db.database",
    "export_csv": "db.export",
    "export_jsonl": "db.export",
    "CampaignStatus": "db.records",
    "Experiment": "db.records",
    "ExperimentStatus": "db.records",
    "DocumentWriter": "db.writer",
}

__all__ = sorted(_PUBLIC)

__getattr__ = lazy_names(__name__, _PUBLIC)
