"""Reading the YAML files users write (lab, campaign and twin configs), strictly.

Whatever is wrong with the file itself (missing, a folder, unreadable, not UTF-8 text, not
YAML, a key given twice, a key that is not a plain value, nesting deeper than
:data:`MAX_DEPTH`) is a :class:`ConfigError` with one line naming the file, before any of its
content is looked at.

Values are read as YAML 1.2 reads them: ``yes``/``no``/``on``/``off`` stay strings and ``1:30``
is not 90 (YAML 1.1's sexagesimal numbers), so a typo is refused by the field it lands in
instead of becoming another number or a boolean.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from models.errors import UserError

__all__ = ["MAX_DEPTH", "ConfigError", "read_yaml"]

MAX_DEPTH = 50
"""The deepest nesting of mappings and lists a config may have (QDLab's need a handful)."""


class ConfigError(UserError, ValueError):
    """A config file is missing, not YAML, or fails validation (the message names the field)."""


class _StrictLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses a mapping key given twice (YAML would keep the last)."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        # (depth is counted while composing: a 5,000-deep document never reaches recursion)
        self._depth = getattr(self, "_depth", 0) + 1
        try:
            if self._depth > MAX_DEPTH:
                line = self.peek_event().start_mark.line + 1
                raise ConfigError(f"line {line}: nested deeper than {MAX_DEPTH} levels")
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                line = key_node.start_mark.line + 1
                raise ConfigError(f"line {line}: a key must be a plain value, not a list or map")
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                line = key_node.start_mark.line + 1
                raise ConfigError(f"line {line}: key {key!r} is given twice")
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


_StrictLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _StrictLoader.construct_mapping
)
# YAML 1.2's booleans and numbers: drop 1.1's yes/no/on/off and sexagesimal (base 60) values
_StrictLoader.yaml_implicit_resolvers = {
    first: [
        (tag, regexp)
        for tag, regexp in resolvers
        if not (
            (tag == "tag:yaml.org,2002:bool" and regexp.match("yes"))
            or (
                tag in ("tag:yaml.org,2002:int", "tag:yaml.org,2002:float") and regexp.match("1:30")
            )
        )
    ]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_StrictLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)
_StrictLoader.add_implicit_resolver(
    "tag:yaml.org,2002:int",
    re.compile(r"^(?:[-+]?(?:0|[1-9][0-9_]*)|0x[0-9a-fA-F_]+)$"),
    list("-+0123456789"),
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
