"""Exports of a campaign: its documents as JSONL, its experiments as CSV."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from db.database import OBSERVATION_FIELDS, Database

__all__ = ["export_csv", "export_jsonl"]


def export_jsonl(db: Database, campaign_id: int, path: str | Path) -> int:
    """Write ``[name, doc]`` lines in emission order (bluesky's JSONL); return the line count."""
    db.campaign(campaign_id)  # raises if there is no such campaign
    count = 0
    with Path(path).open("w") as out:
        for name, doc in db.campaign_documents(campaign_id):
            out.write(json.dumps([name, doc]) + "\n")
            count += 1
    return count


def export_csv(db: Database, campaign_id: int, path: str | Path) -> int:
    """Write the experiments table (conditions, status, provenance, observables); return rows."""
    campaign = db.campaign(campaign_id)
    rows = db.experiments(campaign_id)
    condition_names = list(campaign["config"].get("campaign", {}).get("space", {})) or sorted(
        {k for r in rows for k in r.conditions}
    )
    header = [
        "experiment",  # numbered from 1, as everywhere users read it
        "status",
        *condition_names,
        *OBSERVATION_FIELDS,
        "shape",  # cubes or platelets, as the spectra tell
        "failure_reason",
        "planner_name",
        "planner_version",
        "seed",
        "acquisition_value",
        "predicted_mean",
        "predicted_std",
        "run_uid",
    ]
    with Path(path).open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(header)
        for r in rows:
            obs = r.observables or {}
            writer.writerow(
                [
                    r.number,
                    r.status,
                    *(r.conditions.get(c) for c in condition_names),
                    *(obs.get(k) for k in OBSERVATION_FIELDS),
                    r.shape or "",
                    r.failure_reason or "",
                    r.planner_name,
                    r.planner_version,
                    r.seed,
                    r.acquisition_value,
                    r.predicted_mean,
                    r.predicted_std,
                    r.run_uid or "",
                ]
            )
    return len(rows)
