"""Package names that load on first use (PEP 562), so that importing a light submodule of a
package (CLI help, config validation) does not pay for the heavy ones its ``__init__`` names."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from importlib import import_module
from typing import Any

__all__ = ["lazy_names"]


def lazy_names(package: str, public: Mapping[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` for ``package`` that imports each name of ``public`` (name ->
    the module defining it) when it is first asked for."""

    def attribute(name: str) -> Any:
        if name in public:
            return getattr(import_module(public[name]), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return attribute
