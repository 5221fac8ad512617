"""Campaign database: SQLAlchemy 2 schema, engine setup, live document writer, queries, export.

>>> db = Database("sqlite:///qdlab.db")      # migrates to the newest schema on open
>>> RE.subscribe(DocumentWriter(db))
"""

from db.database import (
    DEFAULT_URL,
    Database,
    DatabaseError,
    Fence,
    LeaseLost,
    SpectrumRecord,
    resolve_url,
    safe_url,
)
from db.export import export_csv, export_jsonl
from db.records import CampaignStatus, Experiment, ExperimentStatus
from db.writer import DocumentWriter

__all__ = [
    "DEFAULT_URL",
    "CampaignStatus",
    "Database",
    "DatabaseError",
    "DocumentWriter",
    "Experiment",
    "ExperimentStatus",
    "Fence",
    "LeaseLost",
    "SpectrumRecord",
    "export_csv",
    "export_jsonl",
    "resolve_url",
    "safe_url",
]
