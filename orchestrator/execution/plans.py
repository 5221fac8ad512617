"""bluesky plans of the lab: each synthesis reads like the protocol it automates.

Every synthesis plan is one bluesky run whose start document carries ``route``, ``conditions``
and whatever ``md`` the caller adds (campaign id, experiment index, target); its primary stream
carries the spectra and the observables the cell extracts, its ``baseline`` stream the lab's
temperatures at the start and the end, and a ``<heater>_monitor`` stream the heated vessel's
temperature all along (every ``monitor_interval_s`` of the heater's config). On a lab with a
dip probe in the flask (``reactor.in_situ_interval_s``) hot injection also reads the growing
dots in the hot mixture: the ``insitu`` stream (:func:`watch_growth`). Conditions are
validated and turned into a recipe before the first message, so bad input fails before any
device moves.

Plans take the :class:`~devices.lab.Lab` and work with any lab config, with
``bluesky.simulators.summarize_plan`` / ``check_limits`` and with standard callbacks.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Generator, Mapping, Sequence
from typing import Any

import bluesky.plan_stubs as bps
import bluesky.preprocessors as bpp
from bluesky.utils import Msg
from pydantic import ValidationError

from devices import Lab, Mix, Transfer
from devices.config import StepConfig, validation_message
from devices.plugins import check_step
from models.configfile import ConfigError
from models.parameters import get_route
from orchestrator.execution.observe import IN_SITU_STREAM
from orchestrator.execution.recipes import (
    FlowRecipe,
    flow_recipe,
    hot_injection_recipe,
    larp_recipe,
)

__all__ = [
    "IN_SITU_STREAM",
    "PLANS",
    "calibrate_cell",
    "empty",
    "flow_synthesis",
    "hot_injection_synthesis",
    "larp_synthesis",
    "load_cell",
    "measure",
    "measure_sample",
    "product_steps",
    "read_plate",
    "sweep_residence_times",
    "watch_growth",
]

Plan = Generator[Msg, Any, Any]

STEADY_STATE_RESIDENCE_TIMES = 3.0
"""A flow plan waits this many residence times before it measures (washout > 95 %)."""


# -- stubs ------------------------------------------------------------------------------------
def empty(lab: Lab, location: str) -> Plan:
    """Send whatever is in ``location`` to the waste."""
    volume = lab.robot.volume_of(location)
    if volume > 0:
        yield from bps.mv(lab.robot, Transfer(location, lab.config.reactor.waste, volume))


def calibrate_cell(lab: Lab, solvent: str) -> Plan:
    """Fill the cell with ``solvent``, take a dark and a lamp reference through it."""
    yield from bps.mv(
        lab.robot, Transfer(solvent, lab.config.cell.location, lab.config.cell.fill_ul)
    )
    yield from bps.trigger(lab.cell.dark_frame, wait=True)
    yield from bps.trigger(lab.cell.reference_frame, wait=True)


def load_cell(lab: Lab, source: str) -> Plan:
    """Transfer a sample from ``source`` into the optical cell."""
    yield from bps.mv(
        lab.robot, Transfer(source, lab.config.cell.location, lab.config.cell.fill_ul)
    )


def measure(lab: Lab, extra: Sequence[Any] = ()) -> Plan:
    """One event of the cell (absorption + PL) and of ``extra`` devices, then a checkpoint:
    once a sample is measured, pausing there (Ctrl-C) loses nothing and repeats nothing."""
    reading = yield from bps.trigger_and_read([lab.cell, *extra])
    yield from bps.checkpoint()
    return reading


def watch_growth(lab: Lab, until_s: float, interval_s: float, reactor: str = "reactor") -> Plan:
    """Read the flask of ``reactor`` through its dip probe every ``interval_s`` seconds of
    growth, up to ``until_s``: each reading an event of the :data:`IN_SITU_STREAM` stream with
    the cell's spectra, the flask's temperature and the growth time. The spectrometer looks
    through the cell again afterwards, also if the plan stops here."""
    device = lab.reactor_named(reactor)
    detectors = [lab.cell, device.temperature, device.growth_time]
    return (
        yield from _read_in_situ(
            lab, reactor, device.growth_time, interval_s, until_s, interval_s, detectors
        )
    )


def _read_in_situ(
    lab: Lab,
    view: str,
    clock: Any,
    first_at: float,
    until: float,
    interval_s: float,
    detectors: Sequence[Any],
) -> Plan:
    """Turn the spectrometer to ``view`` and read ``detectors`` into the
    :data:`IN_SITU_STREAM` stream when ``clock`` (a readable of seconds) reaches ``first_at``,
    then every ``interval_s`` (a time already passed is skipped), as long as a reading ends by
    ``until``; the spectrometer looks through the cell again afterwards, also if the plan
    stops here."""
    last_start = until - lab.config.cell.acquisition_s

    def readings() -> Plan:
        yield from bps.mv(lab.cell.view, view)
        at = first_at
        while True:
            elapsed = yield from bps.rd(clock, default_value=at)
            while at < elapsed - 1e-6:
                at += interval_s
            if at > last_start:
                return
            if elapsed < at:
                yield from bps.mv(lab.timer, at - elapsed)
            yield from bps.trigger_and_read(detectors, name=IN_SITU_STREAM)
            at += interval_s

    return (yield from bpp.finalize_wrapper(readings(), bps.mv(lab.cell.view, "cell")))


def read_plate(lab: Lab, started_at: float, wait_s: float, interval_s: float) -> Plan:
    """Wait ``wait_s`` for a LARP well to grow, reading it through the plate reader every
    ``interval_s`` seconds from ``started_at`` (the lab timer when the precursor went in): each
    reading an event of the :data:`IN_SITU_STREAM` stream, with ``cell_sample_age``, the well's
    growth time. The spectrometer looks through the cell again afterwards."""
    now = yield from bps.rd(lab.timer, default_value=started_at)
    until = now + wait_s
    yield from _read_in_situ(
        lab, "plate", lab.timer, started_at + interval_s, until, interval_s, [lab.cell]
    )
    elapsed = yield from bps.rd(lab.timer, default_value=until)
    yield from bps.mv(lab.timer, max(until - elapsed, 0.0))


def product_steps(
    lab: Lab, steps: Sequence[Mapping[str, Any] | StepConfig] | None, sample: str
) -> list[Plan]:
    """The plans of ``steps`` (each ``instrument``, ``step``, ``args``: a step of one of the
    lab's plugin instruments, :mod:`devices.plugins`) on the product in deck location
    ``sample``, in order. Each step is called here, so an instrument, step or argument the lab
    cannot take fails (naming ``steps[i]``) before any device moves."""
    plans = []
    for i, raw in enumerate(steps or ()):
        try:
            step = StepConfig.model_validate(raw)
        except ValidationError as exc:
            raise ConfigError(validation_message(exc, f"steps[{i}]")) from None
        run = check_step(lab.config, i, step)
        try:
            plans.append(run(lab.instruments[step.instrument], sample, **step.args))
        except ValueError as exc:  # the step refused an argument: say which step
            raise ConfigError(f"steps[{i}].args ({step.instrument} {step.step}): {exc}") from None
    return plans


def _step_md(run_md: dict[str, Any], steps: Sequence[Any] | None) -> dict[str, Any]:
    """``run_md`` saying which steps the product went through (when it went through any)."""
    if steps:
        dumped = [StepConfig.model_validate(s).model_dump() for s in steps]
        run_md["plan_args"]["steps"] = run_md["steps"] = dumped
    return run_md


def _baseline(lab: Lab) -> list[Any]:
    """What a synthesis records at its start and end (its ``baseline`` stream): the heaters
    and the plugin instruments."""
    heaters = [r.temperature for r in lab.reactors.values()]
    coil = [lab.flow.coil] if lab.flow is not None else []
    return [*heaters, *coil, *lab.instruments.values()]


def _recorded(plan: Plan, lab: Lab, heater: Any = None) -> Plan:
    """``plan`` with the lab's ``baseline`` stream and, for a heated route, the monitor stream
    of ``heater``'s temperature."""
    if heater is not None:
        plan = bpp.monitor_during_wrapper(plan, [heater.readback])
    return (yield from bpp.baseline_wrapper(plan, _baseline(lab)))


def measure_sample(
    lab: Lab, source: str, solvent: str | None = None, md: Mapping[str, Any] | None = None
) -> Plan:
    """A run that measures the sample in ``source`` (calibrating on ``solvent`` first)."""
    _md = {
        "plan_name": "measure_sample",
        "plan_args": {"source": source, "solvent": solvent},
        **(md or {}),
    }

    @bpp.run_decorator(md=_md)
    def inner() -> Plan:
        if solvent is not None:
            yield from calibrate_cell(lab, solvent)
        yield from load_cell(lab, source)
        return (yield from measure(lab))

    return (yield from inner())


def _run_md(
    route: str,
    plan_name: str,
    conditions: Mapping[str, Any],
    recipe: Any,
    md: Mapping[str, Any] | None,
    location: str,
) -> dict[str, Any]:
    """Start metadata of a synthesis: what, how, and which sample where (``sample_id`` is
    ``c<campaign>-e<experiment>`` in a campaign, so a vial or well traces back to its record)."""
    md = dict(md or {})
    if "campaign_id" in md and "experiment_index" in md:
        sample_id = f"c{md['campaign_id']}-e{md['experiment_index'] + 1}"
    else:
        sample_id = f"{route}-{uuid.uuid4().hex[:8]}"
    return {
        "plan_name": plan_name,
        "route": route,
        "conditions": dict(conditions),
        "recipe": dataclasses.asdict(recipe),
        "plan_args": {"conditions": dict(conditions)},
        "sample_id": sample_id,
        "sample_location": location,
        **md,
    }


# -- syntheses --------------------------------------------------------------------------------
def hot_injection_synthesis(
    lab: Lab,
    conditions: Mapping[str, Any],
    md: Mapping[str, Any] | None = None,
    reactor: str = "reactor",
    steps: Sequence[Mapping[str, Any]] | None = None,
) -> Plan:
    """Hot injection: load the lead halide, extra halide and ligand, heat, inject the cation
    oleate at temperature, grow for ``time_s``, quench, run ``steps`` on the product in the
    flask, transfer to the cell, measure absorption and PL.

    Parameters
    ----------
    lab
        The lab (robot, reactor, cell).
    conditions
        ``br_pb_ratio``, ``temperature_c``, ``ligand``, ``time_s``; optional ``material``
        and ``ligand_amount`` (see ``qdlab simulate --help``).
    md
        Extra start-document metadata.
    reactor
        Which reactor (``reactor``, or one of the lab config's ``reactors``); the start
        document says which.
    steps
        Steps of the lab's plugin instruments on the quenched product (:func:`product_steps`);
        the start document lists them.
    """
    conditions = get_route("hot_injection").validate(conditions)
    device = lab.reactor_named(reactor)
    recipe = hot_injection_recipe(conditions, lab.config, reactor)
    rc = lab.config.reactor_config(reactor)
    flask = rc.flask
    run_md = _run_md("hot_injection", "hot_injection_synthesis", conditions, recipe, md, flask)
    if reactor != "reactor":  # (the one-reactor lab's documents stay as they were)
        run_md["plan_args"]["reactor"] = run_md["reactor"] = reactor
    treatments = product_steps(lab, steps, flask)

    @bpp.run_decorator(md=_step_md(run_md, steps))
    def protocol() -> Plan:
        # a suspension (safety interlock) rewinds to the last checkpoint and goes on from there
        yield from bps.checkpoint()  # suspended while loading: empty the flask and load again
        yield from empty(lab, flask)
        yield from calibrate_cell(lab, rc.solvent)
        yield from bps.mv(lab.robot, Transfer(recipe.pb_source, flask, recipe.pb_ul))
        if recipe.halide_ul > 0:
            yield from bps.mv(lab.robot, Transfer(recipe.halide_source, flask, recipe.halide_ul))
        yield from bps.mv(lab.robot, Transfer(recipe.ligand_source, flask, recipe.ligand_ul))
        yield from bps.mv(device.injector.source, recipe.cation_source)
        yield from bps.checkpoint()  # loaded: heating may wait
        yield from bps.mv(device.temperature, conditions["temperature_c"])
        yield from bps.clear_checkpoint()  # injection to quench cannot wait: suspending aborts
        yield from bps.mv(device.injector, recipe.cation_ul)
        if rc.in_situ_interval_s is not None:
            yield from watch_growth(lab, conditions["time_s"], rc.in_situ_interval_s, reactor)
        yield from bps.mv(device.quench, conditions["time_s"])
        yield from bps.checkpoint()  # quenched: the product keeps
        for treatment in treatments:
            yield from treatment
        yield from load_cell(lab, flask)
        reading = yield from measure(lab, [device])
        yield from empty(lab, flask)
        return reading

    return (yield from _recorded(protocol(), lab, device.temperature))


def sweep_residence_times(lab: Lab, conditions: Mapping[str, Any]) -> list[float]:
    """The shorter residence times a flow synthesis measures first (``flow.sweep_points`` of
    the lab config): ``k/(n+1)`` of the one asked for, those the route and the pumps allow."""
    return [residence for residence, _ in _sweep(lab, conditions)]


def _sweep(lab: Lab, conditions: Mapping[str, Any]) -> list[tuple[float, FlowRecipe]]:
    """Each residence time of :func:`sweep_residence_times` with the recipe that runs it."""
    n = lab.config.flow.sweep_points if lab.config.flow is not None else 0
    route = get_route("flow")
    sweep = []
    for k in range(1, n + 1):
        residence = conditions["residence_time_s"] * k / (n + 1)
        try:
            faster = route.validate({**conditions, "residence_time_s": residence})
            sweep.append((residence, flow_recipe(faster, lab.config)))
        except ValueError:
            continue  # faster than the pumps (or the route) allow: not part of this sweep
    return sweep


def flow_synthesis(
    lab: Lab, conditions: Mapping[str, Any], md: Mapping[str, Any] | None = None
) -> Plan:
    """Flow: set the ligand valve, coil temperature and pump rates, wait a few residence times
    for steady state, measure in the in-line cell, stop the pumps. On a lab with
    ``flow.sweep_points``, the pumps first run faster: the product at each shorter residence
    time (:func:`sweep_residence_times`) is read into the :data:`IN_SITU_STREAM` stream after
    its own washout, then the one asked for is the measurement."""
    conditions = get_route("flow").validate(conditions)
    recipe = flow_recipe(conditions, lab.config)
    flow = lab.flow
    sweep = _sweep(lab, conditions)

    def pump_at(rates: Mapping[str, float]) -> Plan:
        yield from bps.mv(*(x for name, rate in rates.items() for x in (getattr(flow, name), rate)))

    outlet = f"{lab.config.cell.location} (in line with the flow reactor)"

    @bpp.run_decorator(md=_run_md("flow", "flow_synthesis", conditions, recipe, md, outlet))
    def protocol() -> Plan:
        yield from bps.checkpoint()  # a flow reactor can wait at any point: the pumps run on
        yield from calibrate_cell(lab, lab.config.reactor.solvent)
        yield from bps.mv(flow.ligand, conditions["ligand"])
        yield from bps.mv(flow.coil, conditions["temperature_c"])
        yield from bps.checkpoint()
        for residence, faster in sweep:
            yield from pump_at(faster.rates)
            yield from bps.checkpoint()  # suspended: this point's washout again after it
            yield from bps.mv(lab.timer, STEADY_STATE_RESIDENCE_TIMES * residence)
            yield from bps.trigger_and_read([lab.cell, flow], name=IN_SITU_STREAM)
        yield from pump_at(recipe.rates)
        yield from bps.checkpoint()  # suspended: wait for steady state again after it
        yield from bps.mv(lab.timer, STEADY_STATE_RESIDENCE_TIMES * recipe.residence_time_s)
        reading = yield from measure(lab, [flow])
        yield from pump_at(dict.fromkeys(recipe.rates, 0.0))
        return reading

    return (yield from _recorded(protocol(), lab, flow.coil))


def _free_well(lab: Lab) -> str:
    plate = lab.config.larp.plate
    fresh = lab.robot.fresh_wells(plate)
    if not fresh:
        raise RuntimeError(f"no empty well left on {plate}: load a fresh plate")
    return fresh[0]


def larp_synthesis(
    lab: Lab,
    conditions: Mapping[str, Any],
    md: Mapping[str, Any] | None = None,
    steps: Sequence[Mapping[str, Any]] | None = None,
) -> Plan:
    """LARP: antisolvent and oleylamine into a fresh well, precursor on top (nucleation), mix,
    wait, run ``steps`` on the product in the well (:func:`product_steps`), transfer to the
    cell and measure."""
    conditions = get_route("larp").validate(conditions)
    recipe = larp_recipe(conditions, lab.config)
    lp = lab.config.larp
    trip = lab.config.robot.seconds_per_transfer
    mix_cycles = 3
    handling_s = trip / 2 + 2.0 * mix_cycles + trip  # mixing and the transfer to the cell

    well = _free_well(lab)
    wait_s = max(conditions["time_s"] - handling_s, 0.0)
    treatments = product_steps(lab, steps, well)
    run_md = _run_md("larp", "larp_synthesis", conditions, recipe, md, well)

    @bpp.run_decorator(md=_step_md(run_md, steps))
    def protocol() -> Plan:
        yield from bps.checkpoint()
        yield from calibrate_cell(lab, lp.antisolvent)
        yield from bps.clear_checkpoint()  # the well fills and reacts: suspending aborts
        yield from bps.mv(lab.robot, Transfer(lp.antisolvent, well, recipe.antisolvent_ul))
        if recipe.oleylamine_ul > 0:
            yield from bps.mv(lab.robot, Transfer(lp.oleylamine, well, recipe.oleylamine_ul))
        yield from bps.mv(lab.robot, Transfer(lp.precursor, well, recipe.precursor_ul))
        mixing_from = yield from bps.rd(lab.timer, default_value=0.0)
        yield from bps.mv(lab.robot, Mix(well, lp.mix_ul, mix_cycles))
        if lp.read_interval_s is not None:
            yield from read_plate(lab, mixing_from, wait_s, lp.read_interval_s)
        else:
            yield from bps.mv(lab.timer, wait_s)
        for treatment in treatments:
            yield from treatment
        yield from load_cell(lab, well)
        return (yield from measure(lab))

    return (yield from _recorded(protocol(), lab))  # at room temperature: nothing to monitor


PLANS = {
    "hot_injection": hot_injection_synthesis,
    "flow": flow_synthesis,
    "larp": larp_synthesis,
}
"""Route name -> synthesis plan."""
