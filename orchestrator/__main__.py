"""``python -m orchestrator`` is the ``qdlab`` command."""

from orchestrator.cli import main

main()
