"""Shared fixtures: a repository root and a helper to run the real ``qdlab`` console script."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from bluesky import RunEngine
from event_model import DocumentNames, schema_validators

from devices import build_lab

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def run_qdlab():
    """Run ``qdlab ARGS`` as a user would (a subprocess) and return the completed process."""

    def run(*args: str, timeout: float = 120.0, **kwargs) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "orchestrator", *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=kwargs.pop("cwd", ROOT),
            **kwargs,
        )

    return run


@pytest.fixture
def lab():
    """A fresh simulated lab on a fast virtual clock, seed 0."""
    return build_lab(seed=0)


@pytest.fixture
def RE():
    """A real RunEngine that keeps every document it emits in ``RE.docs``."""
    engine = RunEngine({})
    engine.docs = []
    engine.subscribe(lambda name, doc: engine.docs.append((name, doc)))
    return engine


def validate_documents(docs):
    """Validate every (name, doc) pair with event-model's JSON schemas; return the count."""
    for name, doc in docs:
        schema_validators[DocumentNames(name)].validate(doc)
    return len(docs)
