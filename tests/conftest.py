"""Shared fixtures: a repository root and a helper to run the real ``qdlab`` console script."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

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
