"""Importing user code named ``package.module:name`` (outcome models, planner classes).

QDLab imports user code only from a config the user passed (see
:mod:`orchestrator.campaign.config`); this is the one place that does the import.
"""

from __future__ import annotations

import importlib
from typing import Any

from models.errors import UserError

__all__ = ["import_user_object"]


def import_user_object(path: str, label: str, error: type[UserError] = UserError) -> Any:
    """The object ``path`` (``package.module:name``) names, or None if the module lacks it.

    Raises ``error`` with ``label`` (how the user named it, e.g. ``outcome_model 'm:f'``) when
    the module cannot be imported: any failure at import time is the user code's, reported as
    such.
    """
    module_name, _, attr = path.partition(":")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:
        raise error(
            f"{label}: cannot import {module_name!r} ({type(exc).__name__}: {exc})"
        ) from exc
    return getattr(module, attr, None)
