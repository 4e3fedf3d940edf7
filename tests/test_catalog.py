"""The catalog document: models, rule specs, default rules per kind, validation and parsing."""

from __future__ import annotations

import copy
import json
import math
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from sitewatch.catalog import (
    FAMILIES,
    POINT_KINDS,
    Catalog,
    Existing,
    Point,
    Problem,
    default_rules,
    parse_document,
    validate_catalog,
)
from sitewatch.catalog.rules import Threshold, point_rule, rule_spec

PROTOCOL_FAMILIES = {
    "threshold", "headcount", "shift_total", "overtime", "restricted_zone", "sos", "tag_lost", "slope_trend",
    "valve_mismatch", "interlock", "dust", "offline", "frozen", "stopped_but_running", "fake_offline",
}  # fmt: skip


def document() -> dict[str, Any]:
    """PROTOCOL §5's example, with the DUST-B site it refers to and a few more kinds."""
    return {
        "enterprises": [
            {"code": "ENT-1", "name": "威海某矿业有限公司", "escalation": {"1": ["安全总监"], "2": ["应急管理局"]}}
        ],
        "sites": [
            {"code": "MINE-A", "enterprise": "ENT-1", "name": "…", "kind": "underground_mine",
             "timezone": "Asia/Shanghai", "state": "operating", "shift_capacity": 120},
            {"code": "DUST-B", "enterprise": "ENT-1", "name": "除尘", "kind": "dust_plant", "power_baseline_kw": 40},
        ],
        "gateways": [{"code": "GW-1", "site": "MINE-A", "password": "gw-secret-1"}],
        "zones": [
            {"code": "WF-302", "site": "MINE-A", "name": "302 采场", "risk": "high", "max_people": 9},
            {"code": "MAG-1", "site": "MINE-A", "risk": "restricted", "allow": ["T-00017"]},
        ],
        "points": [
            {"code": "GT-101", "site": "MINE-A", "kind": "gas_lel", "unit": "%LEL", "period_s": 5},
            {"code": "DP-1", "site": "DUST-B", "kind": "dust_dp", "unit": "Pa", "period_s": 10,
             "rules": [{"rule": "threshold", "above": [1500, 1800], "below": [300], "for_s": 30}]},
            {"code": "AL-1", "site": "DUST-B", "kind": "airlock_running", "pair": "FAN-1"},
            {"code": "FAN-1", "site": "DUST-B", "kind": "fan_running", "pair": "AL-1"},
            {"code": "PWR", "site": "DUST-B", "kind": "power_kw", "unit": "kW"},
        ],
        "tags": [{"code": "T-00017", "site": "MINE-A", "person": "张三"}],
    }  # fmt: skip


def problems_of(doc: object, existing: Existing | None = None) -> dict[str, str]:
    catalog, problems = validate_catalog(doc, existing or Existing())
    assert catalog is None and problems
    assert len({p.path for p in problems}) == len(problems), problems  # one problem per path here
    return {p.path: p.message for p in problems}


def point(doc: dict[str, Any], code: str) -> Point:
    catalog, problems = validate_catalog(doc, Existing())
    assert catalog is not None, problems
    return next(p for p in catalog.points if p.code == code)


# --- a valid document -------------------------------------------------------------------------


def test_valid_document_is_accepted_with_defaults_filled_in() -> None:
    catalog, problems = validate_catalog(document(), Existing())
    assert problems == [] and catalog is not None
    assert [s.code for s in catalog.sites] == ["MINE-A", "DUST-B"]
    dust = catalog.sites[1]
    assert (dust.timezone, dust.state, dust.shift_hours, dust.tag_lost_s, dust.rainfall_mm_h) == (
        "Asia/Shanghai", "operating", 10, 900, 30,
    )  # fmt: skip
    assert catalog.enterprises[0].escalation == {"1": ["安全总监"], "2": ["应急管理局"]}
    assert catalog.zones[0].allow == [] and catalog.points[2].period_s == 60
    assert "gw-secret-1" not in repr(catalog)


def test_document_may_refer_to_what_the_database_holds() -> None:
    doc = {
        "sites": [{"code": "DUST-B", "enterprise": "ENT-2", "name": "x", "kind": "dust_plant"}],
        "zones": [{"code": "Z", "site": "MINE-A", "risk": "restricted", "allow": ["T-1"]}],
        "points": [{"code": "V-fb", "site": "MINE-A", "kind": "valve_feedback", "pair": "V-cmd"}],
    }
    existing = Existing(
        enterprises={"ENT-2"}, sites={"MINE-A": "ENT-1", "DUST-B": "ENT-2"},
        points={("MINE-A", "V-cmd")}, tags={("MINE-A", "T-1")},
    )  # fmt: skip
    catalog, problems = validate_catalog(doc, existing)
    assert problems == [] and catalog is not None and catalog.gateways == []


def test_catalog_model_validates_on_its_own_too() -> None:
    doc = document()
    assert Catalog.model_validate(doc) == validate_catalog(doc, Existing())[0]


# --- problems ---------------------------------------------------------------------------------


def test_every_problem_is_reported_at_once_with_its_path() -> None:
    doc = document()
    doc["enterprises"][0]["escalation"] = {"4": ["x"]}
    doc["sites"][0] |= {"kind": "volcano", "timezone": "Mars/Olympus"}
    doc["sites"].append({"code": "NEW", "enterprise": "ENT-9", "name": "n", "kind": "open_pit", "shift_capacity": 0})
    doc["gateways"].append({"code": "bad code!", "site": "MINE-A", "password": "short"})
    doc["zones"][0] |= {"site": "NO-SUCH-SITE", "allow": ["T-00017"]}
    doc["zones"][1]["allow"] = ["T-00017", "T-404"]
    doc["points"][0]["rules"] = [
        {"rule": "threshold", "above": [50, 25], "below": [60, 70], "latch": "yes", "frozen": 1},
        {"rule": "dust"},
        {"rule": "headcount"},
        {"rule": "threshold", "above": [1, 2, 3]},
        {"rule": "offline", "factor": 0.5},
    ]
    doc["points"][2]["pair"] = "FAN-9"
    doc["points"][3] |= {"kind": "teapot", "period_s": "10"}
    doc["points"].append({"code": "GT-101", "site": "MINE-A", "kind": "gas_toxic", "unit": "mg/m3"})
    doc["points"].append({"code": "V-1", "site": "MINE-A", "kind": "valve_feedback"})
    doc["tags"].append({"code": "T-00017", "site": "MINE-A", "badge": 7})
    doc["tagz"] = []

    problems = problems_of(doc)

    assert set(problems) == {
        "tagz",
        "enterprises[0].escalation.4",
        "sites[0].kind",
        "sites[0].timezone",
        "sites[2].shift_capacity",
        "sites[2].enterprise",
        "gateways[1].code",
        "gateways[1].password",
        "zones[0].allow",
        "zones[0].site",
        "zones[1].allow[1]",
        "points[0].rules[0].above",
        "points[0].rules[0].below",
        "points[0].rules[0].latch",
        "points[0].rules[0].frozen",
        "points[0].rules[1].check",
        "points[0].rules[2].rule",
        "points[0].rules[3].above",
        "points[0].rules[4].factor",
        "points[2].pair",
        "points[3].kind",
        "points[3].period_s",
        "points[5].code",
        "points[5].unit",
        "points[6].pair",
        "tags[1].code",
        "tags[1].badge",
    }
    assert "unknown section" in problems["tagz"]
    assert "'1', '2' or '3'" in problems["enterprises[0].escalation.4"]
    assert "unknown time zone 'Mars/Olympus'" in problems["sites[0].timezone"]
    assert problems["sites[2].enterprise"] == "unknown enterprise 'ENT-9'"
    assert problems["zones[0].site"] == "unknown site 'NO-SUCH-SITE'"
    assert "restricted" in problems["zones[0].allow"]
    assert problems["zones[1].allow[1]"] == "no tag 'T-404' on site MINE-A"
    assert "strictly increasing: level 2 (25.0) after level 1 (50.0)" in problems["points[0].rules[0].above"]
    assert "strictly decreasing" in problems["points[0].rules[0].below"]
    assert problems["points[0].rules[0].frozen"] == "unknown field"
    assert "'headcount' is not one of 'threshold'" in problems["points[0].rules[2].rule"]
    assert problems["points[2].pair"] == "no point 'FAN-9' on site DUST-B"
    assert problems["points[5].code"] == "duplicate of points[0] on the same site"
    assert "%OEL, ppm only, not in 'mg/m3'" in problems["points[5].unit"]
    assert "valve_mismatch" in problems["points[6].pair"]
    assert problems["tags[1].code"] == "duplicate of tags[0] on the same site"
    assert all("short" not in message for message in problems.values())  # passwords never echoed


def test_a_site_cannot_move_to_another_enterprise() -> None:
    doc = document()
    problems = problems_of(doc, Existing(sites={"MINE-A": "ENT-0"}))
    assert problems == {"sites[0].enterprise": "site MINE-A belongs to ENT-0: a site cannot move to another enterprise"}


def test_duplicates_are_per_site_for_site_scoped_codes() -> None:
    doc = document()
    doc["points"].append({"code": "GT-101", "site": "DUST-B", "kind": "generic"})  # same code, other site: fine
    doc["sites"].append(copy.deepcopy(doc["sites"][0]))
    assert problems_of(doc) == {"sites[2].code": "duplicate of sites[0]"}


@pytest.mark.parametrize(
    ("doc", "path", "message"),
    [
        ([], "", "a catalog document is an object"),
        (None, "", "a catalog document is an object"),
        ({"points": {"code": "x"}}, "points", "must be a list"),
        ({"points": ""}, "points", "must be a list"),
        ({"tags": ["T-1"]}, "tags[0]", "valid dictionary"),
    ],
)
def test_document_shape(doc: object, path: str, message: str) -> None:
    assert message in problems_of(doc)[path]


def test_an_empty_document_is_valid() -> None:
    assert validate_catalog({}, Existing()) == (Catalog(), [])
    assert validate_catalog(parse_document(b"tags:\n", "application/yaml"), Existing()) == (Catalog(), [])


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("code", "a" * 65, "should match pattern"),
        ("code", "GT 101", "should match pattern"),
        ("code", "GT/101", "should match pattern"),
        ("period_s", 0, "greater than 0"),
        ("period_s", "60", "valid number"),
        ("period_s", True, "valid number"),
        ("unit", 5, "valid string"),
        ("pair", "GT-101", "cannot pair with itself"),
        ("kind", "Gas_LEL", "Input should be 'gas_lel'"),
    ],
)
def test_point_fields(field: str, value: object, message: str) -> None:
    doc = document()
    doc["points"][0][field] = value
    assert message in problems_of(doc)[f"points[0].{field}"]


def test_problem_reads_as_path_and_message() -> None:
    assert str(Problem("points[3].rules[0].above", "bad")) == "points[3].rules[0].above: bad"
    assert str(Problem("", "not an object")) == "not an object"


# --- rule specs -------------------------------------------------------------------------------


def test_rule_families_are_protocols() -> None:
    assert FAMILIES == PROTOCOL_FAMILIES
    for family in FAMILIES - {"dust", "threshold"}:
        assert rule_spec.validate_python({"rule": family}).rule == family
    assert rule_spec.validate_python({"rule": "dust", "check": "airlock"}).model_dump() == {
        "rule": "dust", "check": "airlock", "delay_s": 60.0,
    }  # fmt: skip


def test_rule_defaults_come_from_domain() -> None:
    def spec(rule: dict[str, Any]) -> dict[str, Any]:
        return rule_spec.validate_python(rule).model_dump()

    assert spec({"rule": "offline"})["factor"] == 3
    assert spec({"rule": "frozen"})["frozen_s"] == 7200
    assert spec({"rule": "valve_mismatch"})["stroke_s"] == 30
    assert spec({"rule": "interlock"})["max_bypass_s"] == 8 * 3600
    assert spec({"rule": "stopped_but_running"}) | {} == {
        "rule": "stopped_but_running", "factor": 3.0, "for_s": 900.0, "baseline_kw": None,
    }  # fmt: skip
    assert spec({"rule": "slope_trend"})["angle_deg"] == [45, 80, 85]
    assert spec({"rule": "headcount"}) == {"rule": "headcount", "max_people": 9, "warn_ratio": 0.8}
    assert spec({"rule": "overtime"})["max_hours"] == 10 and spec({"rule": "tag_lost"})["after_s"] == 900


@pytest.mark.parametrize(
    ("spec", "field", "message"),
    [
        ({"above": []}, "above", "at least one level in above or below"),
        ({"above": [1, 2, 3]}, "above", "at most 2 items"),
        ({"above": [2, 2]}, "above", "strictly increasing"),
        ({"below": [1, 2]}, "below", "strictly decreasing"),
        ({"above": [10], "below": [10]}, "below", "lower than above[0]"),
        ({"above": [1, 2], "severities": [2]}, "severities", "one severity per level: 2 expected"),
        ({"above": [1, 2], "severities": [3, 2]}, "severities", "cannot be less severe"),
        ({"above": [1], "severities": [5]}, "severities.0", "less than or equal to 4"),
        ({"above": [1], "min": 5, "max": 5}, "max", "greater than min"),
        ({"above": [120], "min": 0, "max": 100}, "above", "outside the valid range"),
        ({"above": [1], "deadband": -1}, "deadband", "greater than or equal to 0"),
        ({"above": [math.nan]}, "above.0", "finite number"),
        ({"above": [1], "latch": 1}, "latch", "valid boolean"),
    ],
)
def test_invalid_threshold(spec: dict[str, Any], field: str, message: str) -> None:
    with pytest.raises(ValidationError) as info:
        Threshold.model_validate({"rule": "threshold", **spec})
    errors = {".".join(map(str, e["loc"])): e["msg"] for e in info.value.errors()}
    assert message in errors[field], errors


def test_threshold_severities_default_to_yellow_then_orange() -> None:
    assert Threshold.model_validate({"rule": "threshold", "above": [1, 2]}).severities == [2, 3]
    assert Threshold.model_validate({"rule": "threshold", "below": [5]}).severities == [2]


@pytest.mark.parametrize(
    ("rule", "path"),
    [
        ({"rule": "slope_trend", "rate_mm_d": [1, 2, 3]}, "rate_mm_d"),
        ({"rule": "slope_trend", "angle_deg": [45, 80, 90]}, "angle_deg[2]"),
        ({"rule": "slope_trend", "accel_mm_d2": [4, 3, 2, 1]}, "accel_mm_d2"),
        ({"rule": "dust", "check": "spark", "repeat": 1}, "repeat"),
        ({"rule": "dust", "check": "sparks"}, "check"),
        ({"rule": "stopped_but_running", "factor": 1}, "factor"),
        ({"rule": "frozen", "frozen_s": 0}, "frozen_s"),
        ({"rule": "interlock", "max_bypass": 60}, "max_bypass"),
    ],
)
def test_invalid_rule_of_other_families(rule: dict[str, Any], path: str) -> None:
    doc = document()
    doc["points"][0]["rules"] = [rule]
    assert f"points[0].rules[0].{path}" in problems_of(doc)


levels = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False)


@st.composite
def thresholds(draw: st.DrawFn) -> dict[str, Any]:
    """Any valid threshold spec: optional fields are present or left to their defaults."""
    values = sorted(draw(st.sets(levels, min_size=1, max_size=4)))
    n_below = draw(st.integers(0, min(2, len(values) - 1)))
    below, above = values[:n_below][::-1], values[n_below:][:2]
    if not above or draw(st.booleans()):
        below, above = values[:2][::-1], []
    spec: dict[str, Any] = {"rule": "threshold"}
    if above:
        spec["above"] = above
    if below:
        spec["below"] = below
    n_levels = max(len(above), len(below))
    optional = {
        "deadband": st.floats(0, 100),
        "for_s": st.floats(0, 3600),
        "latch": st.booleans(),
        "severities": st.lists(st.integers(1, 4), min_size=n_levels, max_size=n_levels).map(sorted),
        "min": st.just(values[0] - draw(st.floats(0, 10))),
        "max": st.just(values[-1] + draw(st.floats(0.5, 10))),
    }
    for name in draw(st.sets(st.sampled_from(sorted(optional)))):
        spec[name] = draw(optional[name])
    return spec


@given(thresholds())
def test_any_valid_threshold_round_trips(spec: dict[str, Any]) -> None:
    model = point_rule.validate_python(spec)
    dumped = model.model_dump(mode="json")
    assert {k: dumped[k] for k in spec} == spec
    assert point_rule.validate_python(dumped) == model
    assert point_rule.validate_json(json.dumps(dumped)) == model


@given(st.lists(levels, min_size=2, max_size=2, unique=True).map(sorted))
def test_falling_above_levels_are_rejected(values: list[float]) -> None:
    with pytest.raises(ValidationError, match="strictly increasing"):
        Threshold.model_validate({"rule": "threshold", "above": values[::-1]})


# --- default rules ----------------------------------------------------------------------------

UNITS = {
    "gas_lel": "%LEL", "gas_toxic": "%OEL", "slope_displacement": "mm", "rainfall": "mm/h", "tank_level": "%",
    "tank_temperature": "°C", "tank_pressure": "MPa", "dust_dp": "Pa", "hopper_temperature": "°C",
    "power_kw": "kW",
}  # fmt: skip
DIGITAL = {"valve_command", "valve_feedback", "interlock_bypass", "spark", "airlock_running", "fan_running"}


def families(kind: str, unit: str | None = None) -> list[str]:
    return [r["rule"] for r in default_rules(kind, UNITS.get(kind, "") if unit is None else unit)]


def threshold_of(kind: str, unit: str) -> dict[str, Any]:
    return next(r for r in default_rules(kind, unit) if r["rule"] == "threshold")


@pytest.mark.parametrize("kind", POINT_KINDS)
def test_every_kind_has_valid_defaults_with_offline_and_frozen_for_analog(kind: str) -> None:
    rules = default_rules(kind, UNITS.get(kind, ""))
    assert [point_rule.validate_python(r).rule for r in rules] == [r["rule"] for r in rules]
    assert "offline" in families(kind)
    assert ("frozen" in families(kind)) is (kind in UNITS)
    assert set(UNITS) | DIGITAL | {"generic"} == set(POINT_KINDS)


def test_default_rules_table() -> None:
    assert threshold_of("gas_lel", "%LEL") == {"rule": "threshold", "above": [25, 50], "latch": True, "min": 0,
                                               "max": 100}  # fmt: skip
    assert threshold_of("gas_toxic", "%OEL")["above"] == [100, 200] and threshold_of("gas_toxic", "%OEL")["latch"]
    assert threshold_of("gas_toxic", "ppm")["above"] == [7, 14]  # H2S
    assert threshold_of("hopper_temperature", "°C")["above"] == [60, 70]
    assert threshold_of("dust_dp", "Pa") | {} == {
        "rule": "threshold", "above": [1500, 1800], "below": [300], "deadband": 50, "for_s": 30,
    }  # fmt: skip
    for kind, unit in (("tank_level", "%"), ("tank_temperature", "°C"), ("tank_pressure", "kPa")):
        tank = threshold_of(kind, unit)
        assert len(tank["above"]) == 2 and tank["deadband"] > 0
    assert threshold_of("rainfall", "mm/h")["above"] == [30]
    assert families("slope_displacement") == ["slope_trend", "offline", "frozen"]
    assert families("power_kw") == ["stopped_but_running", "fake_offline", "offline", "frozen"]
    assert families("valve_feedback") == ["valve_mismatch", "offline"]
    assert families("valve_command") == families("fan_running") == families("generic") == ["offline"]
    assert families("interlock_bypass") == ["interlock", "offline"]
    assert default_rules("spark", "")[0] == {"rule": "dust", "check": "spark"}
    assert default_rules("airlock_running", "")[0] == {"rule": "dust", "check": "airlock"}
    # clean air, dry weather and a switched-off plant read exactly 0 for hours: not a frozen sensor
    for kind, unit in (("gas_lel", "%LEL"), ("gas_toxic", "ppm"), ("gas_toxic", "%OEL"), ("rainfall", "mm/h")):
        assert {"rule": "frozen", "except_values": [0]} in default_rules(kind, unit)
    assert {"rule": "frozen"} in default_rules("tank_level", "%")


@pytest.mark.parametrize(
    ("kind", "unit"),
    [("gas_lel", ""), ("gas_lel", "%lel"), ("hopper_temperature", "℃"), ("tank_temperature", "degC"), ("rainfall", "")],
)
def test_default_units_tolerate_spelling_and_omission(kind: str, unit: str) -> None:
    assert "threshold" in families(kind, unit)


@pytest.mark.parametrize(
    ("kind", "unit", "message"),
    [
        ("gas_lel", "%VOL", "gas_lel has default rules in %LEL only, not in '%VOL'"),
        ("gas_toxic", "", "%OEL, ppm only, and the point has no unit"),
        ("tank_level", "m", "in % only"),
        ("teapot", "", "unknown point kind 'teapot'"),
    ],
)
def test_no_defaults_in_another_unit(kind: str, unit: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        default_rules(kind, unit)


def test_default_rules_are_fresh_copies() -> None:
    default_rules("gas_lel", "%LEL")[0]["above"].append(75)
    assert threshold_of("gas_lel", "%LEL")["above"] == [25, 50]


def test_a_point_without_rules_gets_its_kinds_defaults_complete() -> None:
    doc = document()
    gas = point(doc, "GT-101")
    catalog = Catalog.model_validate(doc)
    rules = catalog.effective_rules(gas)
    assert [r["rule"] for r in rules] == ["threshold", "offline", "frozen"]
    assert rules[0] == {
        "rule": "threshold", "above": [25, 50], "below": [], "deadband": 0, "for_s": 0, "latch": True,
        "severities": [2, 3], "min": 0, "max": 100,
    }  # fmt: skip
    assert rules[1] == {"rule": "offline", "factor": 3}


def test_given_rules_replace_the_defaults() -> None:
    doc = document()
    catalog = Catalog.model_validate(doc)
    assert catalog.effective_rules(point(doc, "DP-1")) == [
        {"rule": "threshold", "above": [1500, 1800], "below": [300], "deadband": 0, "for_s": 30, "latch": False,
         "severities": [2, 3], "min": None, "max": None},
    ]  # fmt: skip
    doc["points"][0]["rules"] = []
    assert catalog.effective_rules(point(doc, "GT-101")) == []


def test_given_rules_lift_the_unit_and_pair_requirements_of_defaults() -> None:
    doc = document()
    doc["points"] += [
        {"code": "X-1", "site": "MINE-A", "kind": "gas_toxic", "unit": "mg/m3",
         "rules": [{"rule": "threshold", "above": [10, 20], "latch": True}]},
        {"code": "V-1", "site": "MINE-A", "kind": "valve_feedback", "rules": [{"rule": "offline"}]},
    ]  # fmt: skip
    assert point(doc, "X-1").rules is not None and point(doc, "V-1").pair is None


# --- parsing ----------------------------------------------------------------------------------

YAML_DOC = """
enterprises:
  - {code: ENT-1, name: 威海某矿业有限公司, escalation: {1: [安全总监], 2: [应急管理局]}}
sites:
  - {code: MINE-A, enterprise: ENT-1, name: …, kind: underground_mine, timezone: Asia/Shanghai,
     state: operating, shift_capacity: 120}
  - {code: DUST-B, enterprise: ENT-1, name: 除尘, kind: dust_plant, power_baseline_kw: 40}
gateways: [{code: GW-1, site: MINE-A, password: gw-secret-1}]
zones:
  - {code: WF-302, site: MINE-A, name: 302 采场, risk: high, max_people: 9}
  - {code: MAG-1, site: MINE-A, risk: restricted, allow: [T-00017]}
points:
  - {code: GT-101, site: MINE-A, kind: gas_lel, unit: "%LEL", period_s: 5}
  - code: DP-1
    site: DUST-B
    kind: dust_dp
    unit: Pa
    period_s: 10
    rules:
      - {rule: threshold, above: [1500, 1800], below: [300], for_s: 30}
  - &airlock {code: AL-1, site: DUST-B, kind: airlock_running, pair: FAN-1}
  - {<<: *airlock, code: FAN-1, kind: fan_running, pair: AL-1}
  - {code: PWR, site: DUST-B, kind: power_kw, unit: kW}
tags: [{code: T-00017, site: MINE-A, person: 张三}]
"""


@pytest.mark.parametrize("content_type", ["application/yaml", "application/x-yaml", "text/yaml; charset=utf-8"])
def test_yaml_is_accepted_and_means_the_same(content_type: str) -> None:
    doc = parse_document(YAML_DOC.encode(), content_type)
    assert isinstance(doc, dict) and doc["enterprises"][0]["escalation"] == {1: ["安全总监"], 2: ["应急管理局"]}
    assert {k: v for k, v in doc.items() if k != "enterprises"} == {
        k: v for k, v in document().items() if k != "enterprises"
    }  # the anchor and merge key expanded
    catalog, problems = validate_catalog(doc, Existing())
    assert problems == [] and catalog == validate_catalog(document(), Existing())[0]  # level keys as strings


def test_json_is_the_default() -> None:
    body = json.dumps(document(), ensure_ascii=False).encode()
    assert parse_document(body, "application/json") == parse_document(b"\xef\xbb\xbf" + body, "") == document()


@pytest.mark.parametrize(
    ("body", "content_type", "message"),
    [
        (b'{"sites": [}', "application/json", "invalid JSON at line 1, column 12"),
        (b'{"sites": [],\n "sites": []}', "application/json", "duplicate key 'sites'"),
        (b"sites: [ {code: 'x'", "application/yaml", "invalid YAML at line 1"),
        (b"sites: []\nsites: []\n", "application/yaml", "invalid YAML at line 2, column 1: duplicate key 'sites'"),
        (b"\xff\xfe", "application/json", "not UTF-8"),
    ],
)
def test_syntax_errors_are_clear(body: bytes, content_type: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_document(body, content_type)


def test_yaml_document_that_is_not_a_mapping_is_a_problem_not_a_crash() -> None:
    assert problems_of(parse_document(b"- just a list\n", "application/yaml")) == {
        "": "a catalog document is an object with the lists enterprises, sites, gateways, zones, points, tags"
    }
    assert "valid string" in problems_of(yaml.safe_load("sites: [{code: 2026-01-01}]"))["sites[0].code"]
