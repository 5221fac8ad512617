"""``qdlab simulate``: one synthesis on the digital twin, its spectra analysed."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from models.parameters import MAX_SEED, ROUTES, ParameterError, get_route
from orchestrator.cli.options import json_value

app = typer.Typer()


#: CLI flag (python name) -> route parameter name.
_SIMULATE_FLAGS: dict[str, str] = {
    "br_pb": "br_pb_ratio",
    "temperature": "temperature_c",
    "ligand": "ligand",
    "time": "time_s",
    "residence_time": "residence_time_s",
    "flow_ratio": "flow_ratio",
    "precursor_ul": "precursor_ul",
    "ligand_ul": "ligand_ul",
    "material": "material",
    "ligand_amount": "ligand_amount",
}

_FLAG_OF = {param: "--" + flag.replace("_", "-") for flag, param in _SIMULATE_FLAGS.items()}


def _routes_help() -> str:
    lines = ["Routes, their parameters (flag and allowed range) and defaults:\n"]
    for route in ROUTES.values():
        lines.append(f"\b\n{route.name.replace('_', '-')}: {route.description}")
        for p in route.parameters:
            default = "" if p.default is None else f" (default {p.default})"
            lines.append(f"  {_FLAG_OF[p.name]:<17} {p.range_text()}{default}")
        example = ", ".join(f"{_FLAG_OF[k]} {v}" for k, v in route.example.items())
        lines.append(f"  defaults: {example}")
        lines.append("")
    return "\n".join(lines)


@app.command(
    help="Simulate one synthesis on the digital twin and analyse its spectra.\n\n" + _routes_help()
)
def simulate(
    route: Annotated[str, typer.Option(help="hot-injection, flow or larp")] = "hot-injection",
    br_pb: Annotated[float | None, typer.Option(help="Br/Pb molar ratio")] = None,
    temperature: Annotated[float | None, typer.Option(help="temperature, °C")] = None,
    ligand: Annotated[str | None, typer.Option(help="ligand system")] = None,
    time: Annotated[float | None, typer.Option(help="growth / wait time, s")] = None,
    residence_time: Annotated[float | None, typer.Option(help="flow: residence time, s")] = None,
    flow_ratio: Annotated[float | None, typer.Option(help="flow: Cs/Pb stream ratio")] = None,
    precursor_ul: Annotated[float | None, typer.Option(help="larp: precursor, µL")] = None,
    ligand_ul: Annotated[float | None, typer.Option(help="larp: oleylamine, µL")] = None,
    material: Annotated[
        str | None,
        typer.Option(help="hot-injection: CsPbBr3 (default), CsPbI3 (red) or FAPbBr3 (green)"),
    ] = None,
    ligand_amount: Annotated[
        float | None, typer.Option(help="hot-injection: ligand, × the standard load (1)")
    ] = None,
    seed: Annotated[
        int | None,
        typer.Option(help="seed; omit for the noiseless mean", min=0, max=MAX_SEED),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
) -> None:
    import numpy as np

    from models.simulation import simulate as run_simulation

    spec = get_route(route)
    given = {
        _SIMULATE_FLAGS[flag]: value
        for flag, value in locals().items()
        if flag in _SIMULATE_FLAGS and value is not None
    }
    for name in given:
        if name not in spec.names:
            raise ParameterError(
                name,
                f"{_FLAG_OF[name]} does not apply to route {spec.name.replace('_', '-')}; "
                f"its parameters are {', '.join(_FLAG_OF[n] for n in spec.names)}",
            )
    try:
        conditions = spec.validate({**spec.example, **given})
    except ParameterError as exc:  # say which flag, as the user typed it
        raise ParameterError(exc.field, f"{_FLAG_OF.get(exc.field, exc.field)}: {exc}") from None
    rng = None if seed is None else np.random.default_rng(seed)
    record = run_simulation(spec.name, conditions, rng).record(0)
    result = {"route": spec.name, "seed": seed, **record}
    if as_json:
        print(json.dumps({k: json_value(v) for k, v in result.items()}))
    else:
        _print_record(result, spec.names)


def _print_record(result: dict, condition_names: tuple[str, ...]) -> None:
    from rich.table import Table

    from models.analysis import OBSERVABLE_KEYS
    from models.synthesis import POPULATION_KEYS
    from orchestrator.cli.options import console as rich_console

    table = Table(
        title=f"{result['route']}, {result.get('material', 'CsPbBr3')} (seed {result['seed']})",
        show_header=False,
    )
    table.add_column("quantity")
    table.add_column("value", justify="right")
    for title, keys in (
        ("conditions", condition_names),
        ("population (ground truth)", POPULATION_KEYS),
        ("observables (from spectra)", OBSERVABLE_KEYS),
    ):
        table.add_section()
        table.add_row(f"[bold]{title}[/bold]", "")
        for key in keys:
            value = result[key]
            table.add_row(key, value if isinstance(value, str) else f"{value:.4g}")
    rich_console().print(table)
