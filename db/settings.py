"""Settings read from the environment, checked: a bad value is one line naming the variable and
what it allows, when it is used (not a traceback at import)."""

from __future__ import annotations

import math
import os

from models.errors import UserError

__all__ = ["SettingError", "seconds"]


class SettingError(UserError, ValueError):
    """An environment variable holds a value QDLab cannot use (the message names it)."""


def seconds(name: str, default: float, low: float, high: float) -> float:
    """The duration in environment variable ``name`` (``default`` when unset or empty),
    within ``[low, high]`` seconds; :class:`SettingError` otherwise."""
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not low <= value <= high:  # (NaN fails both)
        raise SettingError(f"${name}: {text!r} must be a number of seconds in [{low:g}, {high:g}]")
    return value
