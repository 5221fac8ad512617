"""Commands that learn from stored campaigns: suggest, replay, backtest, calibrate."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Annotated, Any

import typer

from models.parameters import ParameterError, get_route
from orchestrator.cli.options import DbOption, quiet_bluesky

app = typer.Typer()


@app.command("suggest")
def suggest(
    target_nm: Annotated[
        float | None,
        typer.Option("--target-nm", help="PL peak to aim for, nm (default: the campaign's)"),
    ] = None,
    campaign: Annotated[
        str | None,
        typer.Option(
            help="a campaign config: its route, space, materials, target, tolerance and shape"
        ),
    ] = None,
    route: Annotated[
        str | None, typer.Option(help="hot-injection (default), flow or larp; not with --campaign")
    ] = None,
    db: DbOption = None,
    top: Annotated[int, typer.Option(help="how many suggestions", min=1, max=100)] = 5,
    material: Annotated[
        str | None, typer.Option(help="hot-injection: only this material (default: any)")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print a JSON object")] = False,
) -> None:
    """Inverse design without an experiment: conditions predicted closest to the target, and
    which material to make and why.

    The model is the BoTorch planner's: the physics of the route as prior mean, calibrated and
    corrected by every observation of the route stored in the database.
    """
    from orchestrator.campaign.config import load_campaign
    from orchestrator.history.suggest import route_space, suggest_conditions
    from planners import Target

    if campaign is not None:
        if route is not None:
            raise ParameterError("route", "--route: not with --campaign (the config names it)")
        loaded = load_campaign(campaign)
        spec, space, target = get_route(loaded.config.route), loaded.space, loaded.target
        if material is not None:
            space = _one_material(space, material)
        if target_nm is not None:
            if target.observable != "pl_peak_nm":
                raise ParameterError(
                    "target_nm", f"--target-nm: the campaign's target is {target.observable}"
                )
            target = replace(target, value=target_nm)
    else:
        if target_nm is None:
            raise ParameterError("target_nm", "--target-nm: give it, or --campaign FILE")
        spec = get_route(route or "hot-injection")
        space, target = route_space(spec.name, material), Target("pl_peak_nm", target_nm, 1.0)
    if target.observable == "pl_peak_nm" and not 380.0 <= target.value <= 700.0:
        raise ParameterError("target_nm", f"--target-nm {target.value:g} is outside [380, 700] nm")
    from db import Database, DatabaseError, resolve_url, safe_url

    url = resolve_url(db)
    try:
        database: Database | None = Database(url, create=False)
        source = f"from {safe_url(url)}"
    except DatabaseError:
        if db is not None:  # the user named it: a mistake to report
            raise
        database, source = None, f"in no database at {safe_url(url)}: the physics alone"
    found = suggest_conditions(spec.name, target, space, database, top)
    if as_json:
        print(
            json.dumps(
                {
                    "route": spec.name,
                    "target": {"observable": target.observable, "value": target.value,
                               "tolerance": target.tolerance, "shape": target.shape},
                    "observations": found.observations,
                    "database": None if database is None else safe_url(url),
                    "suggestions": found.rows,
                    "materials": found.materials,
                }
            )
        )  # fmt: skip
        return
    _print_suggestions(found, f"{spec.name}: closest to {target.value:g} nm "
                       f"({found.observations} stored observations {source})")  # fmt: skip


def _one_material(space: Any, material: str) -> Any:
    """A campaign's space with only ``material`` (one of its materials)."""
    from planners import SearchSpace

    choices = space.categorical.get("material", ())
    if material not in choices:
        raise ParameterError(
            "material", f"--material {material}: the campaign makes {', '.join(choices) or 'one'}"
        )
    ranges = {**space.continuous, **space.categorical, "material": [material]}
    return SearchSpace.from_config({n: list(ranges[n]) for n in space.order})


def _print_suggestions(found: Any, title: str) -> None:
    """One line a suggestion (prediction first, then its conditions as a campaign summary
    writes them), then a line a material: which to make, and why."""
    print(title)
    for i, r in enumerate(found.rows, 1):
        conditions = ", ".join(
            f"{n}={v if isinstance(v, str) else f'{v:.4g}'}" for n, v in r["conditions"].items()
        )
        print(
            f"{i:>3}. {r['predicted']:.1f} ± {r['predicted_std']:.1f}, FWHM "
            f"{r['pl_fwhm_nm']:.1f} ± {r['pl_fwhm_std_nm']:.1f} nm: {conditions}"
        )
    for m in found.materials:
        print(f"{m['material']}: {m['why']}")


@app.command("replay")
def replay(
    campaign_id: Annotated[int, typer.Argument(help="campaign to replay")],
    db: DbOption = None,
    lab: Annotated[str | None, typer.Option(help="lab config to replay on")] = None,
    outcome_model: Annotated[
        str | None, typer.Option(help="outcome model 'package.module:function' to replay with")
    ] = None,
    out: Annotated[str | None, typer.Option(help="folder for the parity plot")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the summary as JSON")] = False,
) -> None:
    """Re-run a campaign's recorded experiments on the simulated lab and compare."""
    from db import Database
    from orchestrator.history.replay import parity_plot, replay_campaign

    quiet_bluesky(False)
    result = replay_campaign(Database(db, create=False), campaign_id, lab, outcome_model)
    summary = result.summary()
    if out:
        parity_plot(result, out)
    if as_json:
        print(json.dumps(summary))
        return
    from rich.table import Table

    from orchestrator.cli.options import console as rich_console

    table = Table(
        "#",
        "recorded PL",
        "replayed PL",
        "recorded FWHM",
        "replayed FWHM",
        "recorded abs",
        "replayed abs",
        title=f"replay {result.replay_id} of campaign {campaign_id}",
    )

    def fmt(v: float | None) -> str:
        return "-" if v is None else f"{v:.2f}"

    for r in result.rows:
        table.add_row(
            str(r["index"] + 1),
            *(
                fmt(r[f"{k}_{w}"])
                for k in ("pl_peak_nm", "pl_fwhm_nm", "abs_peak_nm")
                for w in ("recorded", "replayed")
            ),
        )
    console = rich_console(soft_wrap=True)
    console.print(table)
    console.print(
        ", ".join(
            f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}" for k, v in summary.items()
        )
    )


@app.command("backtest")
def backtest_command(
    campaign_id: Annotated[int, typer.Argument(help="recorded campaign")],
    planner: Annotated[str, typer.Option(help="random, sobol or botorch")] = "botorch",
    seeds: Annotated[int, typer.Option(help="how many seeds", min=1, max=100)] = 5,
    db: DbOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the result as JSON")] = False,
) -> None:
    """How many of a campaign's own experiments a planner needs to reach its target."""
    from db import Database
    from orchestrator.history.replay import backtest

    result = backtest(Database(db, create=False), campaign_id, planner, range(seeds))
    if as_json:
        print(json.dumps(result))
        return
    print(
        f"backtest of {planner} on campaign {campaign_id} ({result['pool']} recorded "
        f"experiments; goal: {result['goal']})"
    )
    print(f"{'order':<22} experiments to goal")
    for seed, n in enumerate(result["experiments_to_goal"]):
        print(f"{planner + ' seed ' + str(seed):<22} {n if n is not None else 'not reached'}")
    print(f"{planner + ' median':<22} {result['median']:g}")
    print(f"{'original order':<22} {result['original_order']}")
    print(f"{'random order median':<22} {result['random_order_median']:g}")


@app.command("calibrate")
def calibrate_command(
    campaign_ids: Annotated[list[int], typer.Argument(help="recorded campaigns to fit")],
    out: Annotated[str, typer.Option("--out", help="twin YAML to write")],
    db: DbOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the fit as JSON")] = False,
) -> None:
    """Fit the twin's free parameters to recorded campaigns and write a twin file.

    Name the file in a lab config (simulator: {twin: FILE}): the simulated lab and the
    BoTorch planner's physics prior then become this lab's own.
    """
    from db import Database
    from orchestrator.history.calibrate import as_mapping, calibrate, describe

    result = calibrate(Database(db, create=False), campaign_ids)
    result.write(out)
    if as_json:
        print(json.dumps({**as_mapping(result), "out": out}))
        return
    print("\n".join(describe(result)))
    print(f"wrote {out}")
