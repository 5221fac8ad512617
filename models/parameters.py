"""Synthesis parameters and their allowed ranges, per route.

A *route* is a way of making the quantum dots (hot injection, flow, room-temperature LARP by
pipetting). Each route declares its parameters once, here; the CLI, configs, planners and
devices all read their names, units and ranges from these declarations, so an out-of-range
value is refused with the same message everywhere, before anything runs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from models.errors import UserError

__all__ = [
    "LIGANDS",
    "MATERIAL_NAMES",
    "MAX_SEED",
    "ROUTES",
    "CategoricalParameter",
    "ContinuousParameter",
    "Parameter",
    "ParameterError",
    "Route",
    "get_route",
]

MAX_SEED = 2**32 - 1
"""Seeds are stored as 64-bit integers and drive numpy's SeedSequence: 0 .. 2**32 - 1."""


class ParameterError(UserError, ValueError):
    """A condition is missing, unknown, of the wrong type or outside its allowed range.

    The message always names the field and what is allowed, e.g.
    ``temperature_c = 250 is outside the allowed range [60, 200] °C``.
    """

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class ContinuousParameter:
    """A real-valued synthesis parameter with inclusive bounds."""

    name: str
    low: float
    high: float
    unit: str
    description: str
    default: float | None = None
    """The value a condition takes when it is not given; ``None``: the condition is required."""

    def validate(self, value: object) -> float:
        """Return ``value`` as a float, or raise :class:`ParameterError` naming the range."""
        if isinstance(value, bool) or not isinstance(value, int | float):
            try:
                value = float(value)  # type: ignore[arg-type]
            except (TypeError, ValueError):
                raise ParameterError(
                    self.name, f"{self.name} must be a number in {self.range_text()}, got {value!r}"
                ) from None
        value = float(value)
        if not (self.low <= value <= self.high):  # also rejects NaN
            raise ParameterError(
                self.name,
                f"{self.name} = {value:g} is outside the allowed range {self.range_text()}",
            )
        return value

    def range_text(self) -> str:
        """The allowed range as users read it, e.g. ``[60, 200] °C``."""
        unit = f" {self.unit}" if self.unit else ""
        return f"[{self.low:g}, {self.high:g}]{unit}"


@dataclass(frozen=True)
class CategoricalParameter:
    """A parameter that takes one of a fixed set of named choices."""

    name: str
    choices: tuple[str, ...]
    description: str
    default: str | None = None
    """The choice a condition takes when it is not given; ``None``: the condition is required."""

    def validate(self, value: object) -> str:
        """Return ``value`` if it is one of the choices, else raise :class:`ParameterError`."""
        if not isinstance(value, str) or value not in self.choices:
            raise ParameterError(
                self.name, f"{self.name} = {value!r} is not one of {self.range_text()}"
            )
        return value

    def range_text(self) -> str:
        """The allowed choices, comma-separated."""
        return "{" + ", ".join(self.choices) + "}"


Parameter = ContinuousParameter | CategoricalParameter

#: Ligand systems of the hot-injection and flow routes. Keys are what configs and the CLI use.
LIGANDS: dict[str, str] = {
    "oa_olam": "oleic acid / oleylamine 1:1 (Protesescu 2015)",
    "oa_olam_acid_rich": "excess oleic acid, more oleylammonium: nanoplatelets below ~140 °C",
    "olpa": "oleylphosphonic acid: slow growth, high PLQY, no platelets",
    "alkylammonium_br": "alkylammonium bromide assisted: strong Br- size focusing",
}

_BR_PB = ContinuousParameter(
    "br_pb_ratio", 2.0, 30.0, "", "Br/Pb molar ratio (2 = PbBr2 only; ZnBr2 adds Br)"
)
_TEMPERATURE = ContinuousParameter(
    "temperature_c", 60.0, 200.0, "°C", "reaction (injection) temperature"
)
_LIGAND = CategoricalParameter("ligand", tuple(LIGANDS), "ligand system")

MATERIAL_NAMES: tuple[str, ...] = ("CsPbBr3", "CsPbI3", "FAPbBr3")
"""What hot injection makes (the keys of :data:`models.optics.MATERIALS`, named here so that
validating a config does not import the optics)."""


@dataclass(frozen=True)
class Route:
    """A synthesis route: its name, its parameters, and what it is."""

    name: str
    parameters: tuple[Parameter, ...]
    description: str
    example: Mapping[str, float | str]
    """Typical conditions, used when a user gives none (CLI) and in docs."""
    growth_time: str
    """The parameter that says how long the dots grow before they are measured: what an
    in-situ trajectory observes at every earlier time too."""

    @property
    def names(self) -> tuple[str, ...]:
        """Parameter names in declaration order."""
        return tuple(p.name for p in self.parameters)

    def parameter(self, name: str) -> Parameter:
        """The parameter called ``name``; :class:`ParameterError` if the route has none."""
        for p in self.parameters:
            if p.name == name:
                return p
        raise ParameterError(
            name,
            f"{name} is not a parameter of route {self.name}; allowed: {', '.join(self.names)}",
        )

    @property
    def required(self) -> tuple[str, ...]:
        """Names of the parameters without a default: every campaign's space names them."""
        return tuple(p.name for p in self.parameters if p.default is None)

    def validate(self, conditions: Mapping[str, object]) -> dict[str, float | str]:
        """Check a set of conditions: every required parameter present, none unknown, all in
        range; a parameter with a default that is not given takes its default.

        Returns the conditions in declaration order with values coerced (floats, choice strings).
        """
        unknown = [k for k in conditions if k not in self.names]
        if unknown:
            self.parameter(unknown[0])  # raises with the allowed names
        missing = [n for n in self.required if n not in conditions]
        if missing:
            p = self.parameter(missing[0])
            raise ParameterError(
                p.name, f"{p.name} is required for route {self.name}; allowed {p.range_text()}"
            )
        return {p.name: p.validate(conditions.get(p.name, p.default)) for p in self.parameters}


ROUTES: dict[str, Route] = {
    "hot_injection": Route(
        "hot_injection",
        (
            _BR_PB,
            _TEMPERATURE,
            _LIGAND,
            ContinuousParameter("time_s", 1.0, 600.0, "s", "growth time from injection to quench"),
            CategoricalParameter(
                "material",
                MATERIAL_NAMES,
                "what is made: Cs- or FA-oleate injected into PbBr2 or PbI2",
                default="CsPbBr3",
            ),
            ContinuousParameter(
                "ligand_amount",
                0.25,
                3.0,
                "",
                "ligand loaded, in units of the lab's standard load (reactor.ligand_ul)",
                default=1.0,
            ),
        ),
        "Cs-oleate injected into hot PbBr2 (+ZnBr2) in octadecene, quenched after time_s "
        "(FA-oleate for FAPbBr3; PbI2 + ZnI2 for CsPbI3, br_pb_ratio then the I/Pb ratio)",
        {"br_pb_ratio": 12.0, "temperature_c": 140.0, "ligand": "oa_olam", "time_s": 10.0},
        "time_s",
    ),
    "flow": Route(
        "flow",
        (
            _BR_PB,
            ContinuousParameter("temperature_c", 60.0, 180.0, "°C", "reaction coil temperature"),
            _LIGAND,
            ContinuousParameter(
                "residence_time_s", 1.0, 120.0, "s", "time in the heated coil (coil volume / flow)"
            ),
            ContinuousParameter(
                "flow_ratio", 0.25, 4.0, "", "Cs-oleate stream / PbBr2 stream flow-rate ratio"
            ),
        ),
        "two precursor streams mixed and grown in a heated coil",
        {
            "br_pb_ratio": 12.0,
            "temperature_c": 150.0,
            "ligand": "oa_olam",
            "residence_time_s": 20.0,
            "flow_ratio": 1.0,
        },
        "residence_time_s",
    ),
    "larp": Route(
        "larp",
        (
            ContinuousParameter(
                "precursor_ul", 5.0, 100.0, "µL", "DMF precursor (PbBr2 + CsBr) into 1 mL toluene"
            ),
            ContinuousParameter("ligand_ul", 0.0, 50.0, "µL", "extra oleylamine added"),
            ContinuousParameter("time_s", 5.0, 600.0, "s", "time from mixing to measurement"),
        ),
        "room-temperature ligand-assisted reprecipitation by pipetting",
        {"precursor_ul": 20.0, "ligand_ul": 10.0, "time_s": 60.0},
        "time_s",
    ),
}


def get_route(name: str) -> Route:
    """Look a route up by name; ``hot-injection`` and ``hot_injection`` are the same route."""
    key = name.strip().lower().replace("-", "_")
    if key not in ROUTES:
        allowed = ", ".join(r.replace("_", "-") for r in ROUTES)
        raise ParameterError("route", f"route {name!r} is not one of {{{allowed}}}")
    return ROUTES[key]
