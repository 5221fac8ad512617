"""How experiments run: executors the campaign loop dispatches to, and what runs under them.

- :mod:`.executor`: the :class:`~orchestrator.execution.executor.Executor` protocol (submit /
  poll / withdraw) and the outcomes it reports;
- :mod:`.local`: in process, on this process's RunEngine and lab;
- :mod:`.queue`: on workcells (bluesky-queueserver RE Managers), as queue items;
- :mod:`.engine`: the one RunEngine factory (database writer, tiled, safety watch, abort
  reasons) both the local executor and a workcell's worker use;
- :mod:`.plans`, :mod:`.recipes`: the synthesis plans and the volumes they dispense;
- :mod:`.safety`: the lab's interlocks as bluesky suspenders; :mod:`.observe`: observables
  from a run's documents;
- :mod:`.workcell` (client), :mod:`.workcell_server` (``qdlab workcell serve``),
  :mod:`.workcell_env` (the worker's startup module).
"""
