"""A plugin module that cannot be imported: its dependency is missing."""

import qdlab_hotplate_driver_that_is_not_installed  # noqa: F401
