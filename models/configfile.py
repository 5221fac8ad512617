"""Reading the YAML files users write (lab, campaign and twin configs), strictly.

Whatever is wrong with the file itself (missing, a folder, unreadable, not UTF-8 text, not
YAML, a key given twice) is a :class:`ConfigError` with one line naming the file, before any of
its content is looked at.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from models.errors import UserError

__all__ = ["ConfigError", "read_yaml"]


class ConfigError(UserError, ValueError):
    """A config file is missing, not YAML, or fails validation (the message names the field)."""


class _StrictLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses a mapping key given twice (YAML would keep the last)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                line = key_node.start_mark.line + 1
                raise ConfigError(f"line {line}: key {key!r} is given twice")
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


_StrictLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _StrictLoader.construct_mapping
)


def read_yaml(path: str | Path, what: str) -> tuple[Any, str]:
    """``(data, text)`` of the YAML file ``path``; ``what`` names it in errors ("lab config")."""
    path = Path(path)
    label = f"{what} {str(path)!r}"
    if not path.exists():
        raise ConfigError(f"{label} does not exist")
    if not path.is_file():
        raise ConfigError(f"{label} is not a file")
    try:
        text = path.read_text(encoding="utf-8")
    except PermissionError:
        raise ConfigError(f"{label} cannot be read (permission denied)") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{label} is not a text file (not UTF-8)") from None
    except OSError as exc:
        raise ConfigError(f"{label} cannot be read ({exc.strerror})") from None
    if "\x00" in text:
        raise ConfigError(f"{label} is not a text file")
    try:
        data = yaml.load(text, Loader=_StrictLoader)
    except ConfigError as exc:
        raise ConfigError(f"{label}: {exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{label} is not valid YAML ({str(exc).splitlines()[0]})") from None
    return data, text
