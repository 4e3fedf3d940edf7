"""The catalog document of PROTOCOL §5: what is monitored, where, and by which rules.

Unknown fields are rejected (a typo must not silently drop a setting) and values are never
coerced from another type. Fields beyond the fixed table columns (the site tuning fields,
`escalation`, `allow`) are kept in the tables' `extra` jsonb.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BeforeValidator, Field, StringConstraints, field_validator, model_validator

from sitewatch.catalog.defaults import PointKind, default_rules
from sitewatch.catalog.rules import (
    RAINFALL_MM_H,
    SHIFT_HOURS,
    TAG_LOST_S,
    WARN_RATIO,
    DustAirlock,
    FieldProblem,
    Hours,
    PointRule,
    Positive,
    Ratio,
    Spec,
    ValveMismatch,
    point_rule,
    raise_field_problems,
)

CODE = re.compile(r"[A-Za-z0-9_.-]{1,64}")
"""An identifier as PROTOCOL §1 allows it (use fullmatch): safe in MQTT topics and URLs."""
Code = Annotated[str, StringConstraints(pattern=f"^{CODE.pattern}$")]

Name = Annotated[str, StringConstraints(min_length=1)]
SiteKind = Literal["underground_mine", "open_pit", "tank_farm", "chemical_plant", "dust_plant"]
SiteState = Literal["operating", "stopped", "rectification"]
Risk = Literal["normal", "high", "restricted"]

MIN_PASSWORD = 8


def _level_key(value: object) -> object:
    """YAML reads `1:` as an integer key; accept it as the level "1"."""
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


EscalationLevel = Annotated[Literal["1", "2", "3"], BeforeValidator(_level_key)]


class Webhook(Spec):
    """Where an enterprise's alert changes are POSTed, signed with HMAC-SHA256 of `secret`."""

    url: str = Field(pattern=r"^https?://[^\s]+$", max_length=2000)
    secret: str = Field(min_length=16, max_length=200, repr=False)


class Enterprise(Spec):
    """An enterprise owns sites; `escalation` lists who is told at each step of an overdue alert.

    Level n is notified at the nth escalation step (DOMAIN §3: the safety director, then the
    regulator). `webhooks` receive every change of the enterprise's alerts.
    """

    code: Code
    name: Name
    escalation: dict[EscalationLevel, list[Name]] | None = None
    webhooks: list[Webhook] = Field(default_factory=list, max_length=10)


class Site(Spec):
    """A mine or plant: its time zone sets alert due times, its state arms 明停暗开 checks.

    The tuning fields default to DOMAIN.md: `shift_hours` (overtime), `tag_lost_s`,
    `rainfall_mm_h` (rain that raises slope alerts by one level), `headcount_warn_ratio`
    (zone warning before alarm); `power_baseline_kw` is the idle draw that stopped_but_running
    and fake_offline compare with.
    """

    code: Code
    enterprise: Code
    name: Name
    kind: SiteKind
    timezone: str = "Asia/Shanghai"
    state: SiteState = "operating"
    shift_capacity: int | None = Field(default=None, gt=0)
    power_baseline_kw: Positive | None = None
    shift_hours: Hours = SHIFT_HOURS
    tag_lost_s: Positive = TAG_LOST_S
    rainfall_mm_h: Positive = RAINFALL_MM_H
    headcount_warn_ratio: Ratio = WARN_RATIO

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError, OSError) as exc:
            raise ValueError(f"unknown time zone {value!r} (use an IANA name such as Asia/Shanghai)") from exc
        return value


class Gateway(Spec):
    """An MQTT gateway. The password is in the document only: the loader stores its hash."""

    code: Code
    site: Code
    password: str = Field(min_length=MIN_PASSWORD, repr=False)  # repr=False: kept out of logs


class Zone(Spec):
    """A reader's coverage area.

    `max_people` None: 9 in a high-risk zone (DOMAIN §2.1), no limit elsewhere; a site under
    rectification caps every zone at 9 whatever is set here.
    """

    code: Code
    site: Code
    name: str = ""
    risk: Risk = "normal"
    max_people: int | None = Field(default=None, ge=1)
    allow: list[Code] = Field(default_factory=list)

    @model_validator(mode="after")
    def _allow_only_restricted(self) -> Zone:
        if self.allow and self.risk != "restricted":
            raise_field_problems(
                self, [("allow", "an allow-list only applies to a zone of risk restricted", self.allow)]
            )
        return self


class Point(Spec):
    """A measured quantity; `rules` None means the kind's defaults, [] means no rules at all."""

    code: Code
    site: Code
    kind: PointKind
    name: str | None = None  # what dispatch calls it (e.g. "3号罐 液位"); kept in `extra`
    unit: str = ""
    period_s: Positive = 60.0
    pair: Code | None = None
    rules: list[PointRule] | None = None

    def effective_specs(self) -> list[PointRule]:
        """The rules this point is evaluated by: its own, else its kind's defaults."""
        if self.rules is not None:
            return list(self.rules)
        return [point_rule.validate_python(rule) for rule in default_rules(self.kind, self.unit)]

    @model_validator(mode="after")
    def _check_rules(self) -> Point:
        problems: list[FieldProblem] = []
        if self.pair == self.code:
            problems.append(("pair", "a point cannot pair with itself", self.pair))
        try:
            specs = self.effective_specs()
        except ValueError as exc:
            problems.append(("unit", str(exc), self.unit))
            specs = []
        if self.pair is None:
            problems += [("pair", _NEEDS_PAIR[type(spec)], None) for spec in specs if type(spec) in _NEEDS_PAIR]
        raise_field_problems(self, problems)
        return self


_NEEDS_PAIR: dict[type[Spec], str] = {
    ValveMismatch: "rule valve_mismatch compares a valve's command with its feedback: name the other in pair",
    DustAirlock: "rule dust (airlock) compares with the collector fan: name the fan's point in pair",
}


class Tag(Spec):
    """A worker's positioning tag."""

    code: Code
    site: Code
    person: str = ""


class Catalog(Spec):
    """A whole catalog document; cross-references are checked by `validate_catalog`."""

    enterprises: list[Enterprise] = Field(default_factory=list)
    sites: list[Site] = Field(default_factory=list)
    gateways: list[Gateway] = Field(default_factory=list)
    zones: list[Zone] = Field(default_factory=list)
    points: list[Point] = Field(default_factory=list)
    tags: list[Tag] = Field(default_factory=list)

    def effective_rules(self, point: Point) -> list[dict[str, Any]]:
        """The point's rules as complete JSON dicts (every default filled in) for storage.

        Given `rules` replace the kind defaults entirely, so a document can drop a default.
        """
        return [spec.model_dump(mode="json") for spec in point.effective_specs()]
