"""Default rules per point kind (DOMAIN §2), used when a catalog point gives no `rules`.

Threshold numbers only make sense in a known unit, so analog kinds list the units their
defaults are written in; a point in any other unit must give its own rules rather than be
checked against numbers of another scale (a tank level in m against 85 % would never alarm).
A point without a unit ("") is taken to be in its kind's unit when the kind has only one.

Every kind gets `offline`; analog kinds also get `frozen`. Choices of ours, not DOMAIN's:
- gas_toxic in ppm assumes H2S, the gas DOMAIN names: MAC 10 mg/m³ ≈ 7.05 ppm at 20 °C and
  101.3 kPa, so levels 7 and 14 ppm stay at or below 100 % and 200 % OEL. Other gases must
  give their rules (or report in %OEL).
- dust_dp: clogged filter above 1500/1800 Pa, broken bag below 300 Pa, 30 s on-delay.
- tank_level 85/95 %, tank_temperature 40/50 °C, tank_pressure 1.4/1.6 MPa (a pressure
  sphere designed for 1.77 MPa): placeholders every tank farm should set per tank.
- valve_mismatch sits on the feedback point only, so one faulty valve raises one alert.
- rainfall and power_kw tolerate a value frozen at 0 (dry weather, a plant switched off), and so do
  gas detectors: clean air reads exactly 0 for hours.
"""

from __future__ import annotations

import copy
from typing import Any, Literal, get_args

from sitewatch.catalog.rules import RAINFALL_MM_H

Rule = dict[str, Any]

PointKind = Literal[
    "gas_lel", "gas_toxic", "slope_displacement", "rainfall", "tank_level", "tank_temperature",
    "tank_pressure", "valve_command", "valve_feedback", "interlock_bypass", "dust_dp",
    "hopper_temperature", "spark", "airlock_running", "fan_running", "power_kw", "generic",
]  # fmt: skip
POINT_KINDS: tuple[str, ...] = get_args(PointKind)

_OFFLINE: Rule = {"rule": "offline"}
_FROZEN: Rule = {"rule": "frozen"}
_FROZEN_BUT_ZERO: Rule = {"rule": "frozen", "except_values": [0]}


def _threshold(**params: Any) -> Rule:
    return {"rule": "threshold", **params}


def _analog(*rules: Rule, frozen: Rule = _FROZEN) -> list[Rule]:
    return [*rules, _OFFLINE, frozen]


# kind → unit → rules (units compare case-insensitively).
_ANALOG: dict[str, dict[str, list[Rule]]] = {
    "gas_lel": {"%LEL": _analog(_threshold(above=[25, 50], latch=True, min=0, max=100), frozen=_FROZEN_BUT_ZERO)},
    "gas_toxic": {
        "%OEL": _analog(_threshold(above=[100, 200], latch=True, min=0), frozen=_FROZEN_BUT_ZERO),
        "ppm": _analog(_threshold(above=[7, 14], latch=True, min=0), frozen=_FROZEN_BUT_ZERO),
    },
    "hopper_temperature": {"°C": _analog(_threshold(above=[60, 70], deadband=2))},
    "dust_dp": {"Pa": _analog(_threshold(above=[1500, 1800], below=[300], deadband=50, for_s=30))},
    "tank_level": {"%": _analog(_threshold(above=[85, 95], deadband=1))},
    "tank_temperature": {"°C": _analog(_threshold(above=[40, 50], deadband=1))},
    "tank_pressure": {
        "MPa": _analog(_threshold(above=[1.4, 1.6], deadband=0.02)),
        "kPa": _analog(_threshold(above=[1400, 1600], deadband=20)),
    },
    "rainfall": {"mm/h": _analog(_threshold(above=[RAINFALL_MM_H]), frozen=_FROZEN_BUT_ZERO)},
    "slope_displacement": {"mm": _analog({"rule": "slope_trend"})},
    "power_kw": {"kW": _analog({"rule": "stopped_but_running"}, {"rule": "fake_offline"}, frozen=_FROZEN_BUT_ZERO)},
}

# Digital and generic kinds: the same rules whatever the unit.
_ANY_UNIT: dict[str, list[Rule]] = {
    "valve_feedback": [{"rule": "valve_mismatch"}, _OFFLINE],
    "valve_command": [_OFFLINE],
    "interlock_bypass": [{"rule": "interlock"}, _OFFLINE],
    "spark": [{"rule": "dust", "check": "spark"}, _OFFLINE],
    "airlock_running": [{"rule": "dust", "check": "airlock"}, _OFFLINE],
    "fan_running": [_OFFLINE],
    "generic": [_OFFLINE],
}

_UNIT_ALIASES = {"℃": "°c", "degc": "°c", "c": "°c", "mm/hr": "mm/h"}


def _unit_key(unit: str) -> str:
    key = unit.replace(" ", "").casefold()
    return _UNIT_ALIASES.get(key, key)


def _analog_rules(kind: str, unit: str) -> list[Rule]:
    by_unit = _ANALOG[kind]
    keys = {_unit_key(u): rules for u, rules in by_unit.items()}
    key = _unit_key(unit) or (next(iter(keys)) if len(keys) == 1 else "")
    if key not in keys:
        units = ", ".join(by_unit)
        given = f"not in {unit!r}" if unit else "and the point has no unit"
        raise ValueError(f"{kind} has default rules in {units} only, {given}: give the point's rules")
    return keys[key]


def default_rules(kind: str, unit: str) -> list[Rule]:
    """The rule dicts a point of `kind` in `unit` gets when its document gives none.

    Raises ValueError for an unknown kind, or a unit the kind's defaults are not written in.
    """
    if kind in _ANY_UNIT:
        rules = _ANY_UNIT[kind]
    elif kind in _ANALOG:
        rules = _analog_rules(kind, unit)
    else:
        raise ValueError(f"unknown point kind {kind!r}")
    return copy.deepcopy(rules)
