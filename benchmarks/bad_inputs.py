"""Malformed inputs a lab operator can give ``qdlab``, each of which must be refused cleanly.

Clean means: exit code 2, one line on stderr naming the input, no traceback, and nothing written
to the database. :func:`hand_written` lists the inputs that once went wrong (the regression
set, also run by ``tests/test_bad_input.py``); :func:`generated` adds systematic variations
of every campaign and lab field (type, range, unknown keys), for ``benchmarks/reliability.py``.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tests.test_campaign import BASE

ROOT = Path(__file__).resolve().parents[1]
LAB = ROOT / "configs" / "labs" / "sim.yaml"
CAMPAIGN = {**BASE, "name": "probe", "budget": 2, "seed": 1}


@dataclass(frozen=True)
class Case:
    """One bad input: ``qdlab`` arguments and a fragment the one-line error must contain."""

    name: str
    args: tuple[str, ...]
    expect: str
    env: tuple[tuple[str, str], ...] = ()
    """Environment variables set for this case."""


def _yaml(path: Path, data: Any) -> str:
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return str(path)


def _campaign(tmp: Path, name: str, **changes: Any) -> str:
    return _yaml(tmp / f"{name}.yaml", {**CAMPAIGN, **changes})


def _text(tmp: Path, name: str, text: str) -> str:
    (tmp / f"{name}.yaml").write_text(text)
    return str(tmp / f"{name}.yaml")


def _lab(tmp: Path, name: str, edit: Callable[[dict], None]) -> str:
    lab = yaml.safe_load(LAB.read_text())
    edit(lab)
    lab_path = _yaml(tmp / f"{name}-lab.yaml", lab)
    return _campaign(tmp, name, lab=lab_path)


def hand_written(tmp: Path, db_url: str) -> list[Case]:
    """The inputs the reliability probe found mishandled, as cases (files made in ``tmp``)."""
    tmp.mkdir(parents=True, exist_ok=True)
    binary = tmp / "binary.yaml"
    binary.write_bytes(bytes(range(256)) * 4)
    not_db = tmp / "notes.txt"
    not_db.write_text("this is not a database\n" * 50)
    dup = tmp / "dup.yaml"
    dup.write_text(Path(_campaign(tmp, "dup-base")).read_text() + "budget: 5\n")
    binary_lab = _campaign(tmp, "binlab", lab=str(binary))

    def setdeep(*path: str, value: Any) -> Callable[[dict], None]:
        def edit(lab: dict) -> None:
            node = lab
            for key in path[:-1]:
                node = node.setdefault(key, {})
            node[path[-1]] = value

        return edit

    run = ("campaign", "run")
    return [
        Case("binary campaign config", (*run, str(binary)), "is not a text file"),
        Case("binary lab config", (*run, binary_lab), "is not a text file"),
        Case("campaign config is a folder", (*run, str(tmp)), "is not a file"),
        Case(
            "huge seed",
            (*run, _campaign(tmp, "seed", seed=99999999999999999999999999)),
            "seed: Input should be less than or equal to 4294967295",
        ),
        Case(
            "--seed override out of range",
            (*run, _campaign(tmp, "ok"), "--seed", "-4"),
            "--seed",
        ),
        Case(
            "botorch initial_points -3",
            (*run, _campaign(tmp, "ip", planner={"kind": "botorch", "initial_points": -3})),
            "planner.initial_points: Input should be greater than or equal to 0",
        ),
        Case(
            "botorch initial_points many",
            (*run, _campaign(tmp, "ipm", planner={"kind": "botorch", "initial_points": "many"})),
            "planner.initial_points: Input should be a valid integer",
        ),
        Case(
            "botorch secondary_weight heavy",
            (
                *run,
                _campaign(tmp, "sw", planner={"kind": "botorch", "secondary_weight": "heavy"}),
            ),
            "planner.secondary_weight: Input should be a valid number",
        ),
        Case("simulate --seed -1", ("simulate", "--seed", "-1"), "--seed"),
        Case(
            "export into a missing folder",
            ("campaign", "export", "1", "--out", str(tmp / "no" / "such" / "x.jsonl")),
            "does not exist",
        ),
        Case(
            "export onto a folder",
            ("campaign", "export", "1", "--out", str(tmp)),
            "is a folder",
        ),
        Case(
            "--db names a file that is not a database",
            ("campaign", "list", "--db", f"sqlite:///{not_db}"),
            "file is not a database",
        ),
        Case(
            "--db under a file",
            (*run, _campaign(tmp, "ok2"), "--db", f"sqlite:///{not_db}/x/q.db"),
            "is not a directory",
        ),
        Case(
            "injection_min_ul above injection_max_ul",
            (
                *run,
                _lab(
                    tmp,
                    "inj",
                    lambda lab: lab["reactor"].update(injection_min_ul=3000, injection_max_ul=2000),
                ),
            ),
            "injection_min_ul (3000) must be below injection_max_ul (2000)",
        ),
        Case(
            "min_integration_ms above max_integration_ms",
            (
                *run,
                _lab(
                    tmp,
                    "integ",
                    setdeep("cell", "min_integration_ms", value=20000),
                ),
            ),
            "min_integration_ms (20000) must be below max_integration_ms",
        ),
        Case(
            "wavelength_min_nm above wavelength_max_nm",
            (*run, _lab(tmp, "wl", setdeep("cell", "wavelength_min_nm", value=900))),
            "wavelength_min_nm (900) must be below wavelength_max_nm (800)",
        ),
        Case("a key given twice", (*run, str(dup)), "key 'budget' is given twice"),
        Case(
            "ramp above the heater's maximum",
            (*run, _lab(tmp, "ramp", setdeep("reactor", "ramp_c_per_min", value=1e12))),
            "ramp_c_per_min (1e+12) must be at most max_ramp_c_per_min (30)",
        ),
        Case(
            "suggest --top 0",
            ("suggest", "--target-nm", "480", "--top", "0"),
            "--top",
        ),
        Case(
            "suggest --top -3",
            ("suggest", "--target-nm", "480", "--top", "-3"),
            "--top",
        ),
        Case(
            "list on a mistyped database path",
            ("campaign", "list", "--db", f"sqlite:///{tmp / 'typo' / 'qdlab.db'}"),
            "no database at",
        ),
        Case(
            "show on a mistyped database path",
            ("campaign", "show", "1", "--db", f"sqlite:///{tmp / 'typo.db'}"),
            "no database at",
        ),
        Case(
            "report of an unknown campaign",
            ("campaign", "report", "9999", "--out", str(tmp / "report-9999")),
            "no campaign 9999",
        ),
        Case("--db empty", ("campaign", "list", "--db", ""), "--db: the database URL is empty"),
        Case(
            "resume of a completed campaign",
            ("campaign", "resume", "1"),
            "`qdlab campaign resume 1 --budget N`",
        ),
        Case(
            "resume --budget below what ran",
            ("campaign", "resume", "1", "--budget", "1"),
            "--budget: 1 must be above the 2 experiments",
        ),
        Case(
            "outcome model of a stored campaign",
            ("replay", "2"),
            "does not import code named in a database",
        ),
        *_hostile(tmp, run, setdeep),
    ]


def _hostile(tmp: Path, run: tuple[str, ...], setdeep: Callable[..., Any]) -> list[Case]:
    """The inputs of the reliability and security review (issue 30)."""
    text = yaml.safe_dump(CAMPAIGN, sort_keys=False)
    budget = f"budget: {CAMPAIGN['budget']}"
    hand = '{"br_pb_ratio": 8, "temperature_c": 150, "ligand": "oa_olam", "time_s": 30}'
    cases = [
        Case(
            "a YAML complex key",
            (*run, _text(tmp, "ck", text + "? [a, b]\n: 1\n")),
            "a key must be a plain value",
        ),
        Case(
            "nesting 5,000 deep",
            (*run, _text(tmp, "deep", text + "x: " + "[" * 5000 + "]" * 5000 + "\n")),
            "nested deeper than 50 levels",
        ),
        Case(
            "budget: 1:30 (YAML 1.1 base 60)",
            (*run, _text(tmp, "b60", text.replace(budget, "budget: 1:30"))),
            "budget",
        ),
        Case(
            "budget: true",
            (*run, _text(tmp, "btrue", text.replace(budget, "budget: true"))),
            "budget: Value error, a number, not true/false",
        ),
        Case(
            "QDLAB_RECONNECT_S=abc",
            (*run, _campaign(tmp, "rc")),
            "$QDLAB_RECONNECT_S: 'abc'",
            (("QDLAB_RECONNECT_S", "abc"),),
        ),
        Case(
            "QDLAB_RECONNECT_S=-5",
            (*run, _campaign(tmp, "rc5")),
            "$QDLAB_RECONNECT_S: '-5'",
            (("QDLAB_RECONNECT_S", "-5"),),
        ),
        Case(
            "QDLAB_INSTRUMENT_WAIT_S=nan",
            (*run, _campaign(tmp, "iw")),
            "$QDLAB_INSTRUMENT_WAIT_S: 'nan'",
            (("QDLAB_INSTRUMENT_WAIT_S", "nan"),),
        ),
        Case(
            "export --out /dev/full",
            ("campaign", "export", "1", "--out", "/dev/full"),
            "No space left on device",
        ),
        Case("report --out /proc/x", ("campaign", "report", "1", "--out", "/proc/x"), "/proc/x"),
        Case(
            "a clock of 1e-9 lab seconds per second",
            (*run, _lab(tmp, "slow", setdeep("simulator", "speed", value=1e-9))),
            "simulator.speed",
        ),
        Case("ioc --prefix with a space", ("ioc", "--prefix", "QD: x"), "--prefix"),
        Case(
            "a NaN temperature limit",
            (*run, _lab(tmp, "nan", setdeep("reactor", "min_temperature_c", value=float("nan")))),
            "reactor.min_temperature_c",
        ),
        Case(
            "an infinite transfer time",
            (*run, _lab(tmp, "inf", setdeep("robot", "seconds_per_transfer", value=float("inf")))),
            "robot.seconds_per_transfer",
        ),
        Case(
            "an ANSI escape in a name",
            (*run, _yaml(tmp / "ansi.yaml", {**CAMPAIGN, "name": "\x1b[31mred"})),
            "name",
        ),
        Case(
            "a NUL in a name",
            (*run, _yaml(tmp / "nul.yaml", {**CAMPAIGN, "name": "a\x00b"})),
            "name",
        ),
        Case(
            "a control character in a note",
            ("campaign", "add", "1", "--conditions", hand, "--note", "x\x1b[2J"),
            "--note: control characters are not allowed",
        ),
    ]
    cases.append(
        Case(
            "a workcell queue open to the network",
            ("workcell", "serve", "--lab", str(LAB), "--name", "W", "--zmq", "tcp://0.0.0.0:60615"),
            "--zmq: tcp://0.0.0.0:60615 would open the queue to the network",
        )
    )
    for model in ("os:system", "builtins:eval", "subprocess:run", "shutil:rmtree", "os:_exit"):
        cfg = _campaign(tmp, f"um-{model.replace(':', '-')}", simulator={"outcome_model": model})
        cases.append(Case(f"outcome model {model}", (*run, cfg), "is Python's own library"))
    return cases  # fmt: skip


def _mutations(value: Any) -> list[Any]:
    """Wrong values for a field that holds ``value``: other types, out of any sane range."""
    if isinstance(value, bool):
        return ["maybe", 2, None]
    if isinstance(value, int | float):
        return ["lots", -1e12, 1e12, None, [value], float("nan")]
    if isinstance(value, str):
        return [42, "", "x" * 500, None, ["a"]]
    if isinstance(value, list):
        return ["abc", [], [1, 2, 3, 4, 5], None]
    if isinstance(value, dict):
        return ["abc", 7, []]
    return []


def _walk(data: Any, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Any]]:
    out = [(path, data)] if path else []
    if isinstance(data, dict):
        for k, v in data.items():
            out += _walk(v, (*path, k))
    return out


def _set(data: dict, path: tuple[str, ...], value: Any) -> dict:
    data = copy.deepcopy(data)
    node = data
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return data


def generated(tmp: Path, limit: int = 200) -> list[Case]:
    """Each campaign field (and the lab's reactor and cell fields) set to wrong values, plus an
    unknown key at every level; at most ``limit`` cases."""
    tmp.mkdir(parents=True, exist_ok=True)
    cases: list[Case] = []
    for path, value in _walk(CAMPAIGN):
        if path == ("lab",):
            continue
        for i, bad in enumerate(_mutations(value)):
            name = f"campaign {'.'.join(path)} = {bad!r}"[:80]
            cfg = _yaml(tmp / f"g-{len(cases)}-{i}.yaml", _set(CAMPAIGN, path, bad))
            cases.append(Case(name, ("campaign", "run", cfg), path[0]))
        if isinstance(value, dict):
            extra = _set(CAMPAIGN, (*path, "colour"), "blue")
            cfg = _yaml(tmp / f"g-{len(cases)}-x.yaml", extra)
            cases.append(Case(f"unknown key under {'.'.join(path)}", ("campaign", "run", cfg), ""))
    lab = yaml.safe_load(LAB.read_text())
    for section in ("reactor", "cell", "robot"):
        for key, value in lab.get(section, {}).items():
            if key == "deck":
                continue
            for bad in _mutations(value)[:3]:
                edited = copy.deepcopy(lab)
                edited[section][key] = bad
                lab_path = _yaml(tmp / f"lab-{len(cases)}.yaml", edited)
                cfg = _yaml(tmp / f"labc-{len(cases)}.yaml", {**CAMPAIGN, "lab": lab_path})
                cases.append(
                    Case(f"lab {section}.{key} = {bad!r}"[:80], ("campaign", "run", cfg), section)
                )
    return cases[:limit]
