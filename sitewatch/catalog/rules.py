"""Rule specifications a catalog attaches to points (PROTOCOL §4 rule families, DOMAIN §2 defaults).

A spec is configuration only: the evaluator implements the behaviour. Every default here is a
DOMAIN.md default (or one we chose and documented), so a document may omit any parameter.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, model_validator
from pydantic_core import InitErrorDetails

# Shared with the Site fields that tune the per-site families, so the two cannot drift apart.
SHIFT_HOURS = 10.0
TAG_LOST_S = 900.0
HEADCOUNT_LIMIT = 9  # DOMAIN §2.1: 9 allowed, the 10th person alarms
WARN_RATIO = 0.8
RAINFALL_MM_H = 30.0

# Threshold level 1 → yellow, level 2 → orange. Red (4) is kept for compound conditions the
# evaluator derives (level high-high with the shutoff valve open, SOS, imminent slope failure),
# so a single reading on one detector never reaches the top of the dispatch board.
DEFAULT_SEVERITIES = (2, 3)

Severity = Annotated[int, Field(ge=1, le=4)]
NonNegative = Annotated[float, Field(ge=0)]
Positive = Annotated[float, Field(gt=0)]
Angle = Annotated[float, Field(gt=0, lt=90)]
Hours = Annotated[float, Field(gt=0, le=24)]
Ratio = Annotated[float, Field(gt=0, le=1)]


class Spec(BaseModel):
    """Base of every catalog model: unknown keys are typos, and types are never guessed."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)


FieldProblem = tuple[str, str, object]
"""(field, message, offending value) found by a cross-field check."""


def raise_field_problems(model: BaseModel, problems: Sequence[FieldProblem]) -> None:
    """Raise the problems located at their fields, so cross-field checks report a precise path."""
    if problems:
        raise ValidationError.from_exception_data(
            type(model).__name__,
            [
                InitErrorDetails(type="value_error", loc=(field,), input=value, ctx={"error": ValueError(msg)})
                for field, msg, value in problems
            ],
        )


def _strictly(increasing: bool) -> AfterValidator:
    """A check that levels go from the mildest to the most severe, each past the one before."""
    word = "increasing" if increasing else "decreasing"

    def check(values: list[float]) -> list[float]:
        for i, (a, b) in enumerate(itertools.pairwise(values)):
            if b <= a if increasing else b >= a:
                raise ValueError(f"levels must be strictly {word}: level {i + 2} ({b}) after level {i + 1} ({a})")
        return values

    return AfterValidator(check)


RISING = _strictly(increasing=True)
FALLING = _strictly(increasing=False)


def _default_severities(data: dict[str, Any]) -> list[int]:
    levels = max(len(data.get("above", ())), len(data.get("below", ())))
    return list(DEFAULT_SEVERITIES[:levels])


class Threshold(Spec):
    """Up to two high and two low levels on an analog reading (GB 50493 two-level gas alarms).

    Level n of `above` and of `below` both take `severities[n-1]`. An alert clears once the value
    is back inside the level by `deadband` (hysteresis against chattering); it raises only after
    the condition held `for_s` seconds; a `latch`ed alert stays active until an operator resets
    it. A reading outside [`min`, `max`] is a detector fault, not a level crossing.
    """

    rule: Literal["threshold"]
    above: Annotated[list[float], RISING] = Field(default_factory=list, max_length=2)
    below: Annotated[list[float], FALLING] = Field(default_factory=list, max_length=2)
    deadband: NonNegative = 0.0
    for_s: NonNegative = 0.0
    latch: bool = False
    severities: list[Severity] = Field(default_factory=_default_severities, min_length=1, max_length=2)
    min: float | None = None
    max: float | None = None

    @model_validator(mode="after")
    def _check_levels(self) -> Threshold:
        errors: list[FieldProblem] = []
        if not self.above and not self.below:
            errors.append(("above", "give at least one level in above or below", self.above))
        levels = max(len(self.above), len(self.below))
        if levels and len(self.severities) != levels:
            errors.append(("severities", f"give one severity per level: {levels} expected", self.severities))
        if self.severities != sorted(self.severities):
            errors.append(("severities", "a higher level cannot be less severe", self.severities))
        if self.above and self.below and self.below[0] >= self.above[0]:
            errors.append(("below", f"below[0] must be lower than above[0] ({self.above[0]})", self.below))
        if self.min is not None and self.max is not None and self.min >= self.max:
            errors.append(("max", f"max must be greater than min ({self.min})", self.max))
        for name, values in (("above", self.above), ("below", self.below)):
            outside = [v for v in values if not self._in_range(v)]
            if outside:
                errors.append((name, f"levels {outside} lie outside the valid range [min, max]", outside))
        raise_field_problems(self, errors)
        return self

    def _in_range(self, value: float) -> bool:
        return (self.min is None or value >= self.min) and (self.max is None or value <= self.max)


class Headcount(Spec):
    """People in one zone: warn at `warn_ratio` of the limit, alarm above it (DOMAIN §2.1)."""

    rule: Literal["headcount"]
    max_people: int = Field(default=HEADCOUNT_LIMIT, ge=1)
    warn_ratio: Ratio = WARN_RATIO


class ShiftTotal(Spec):
    """People underground on a site above its approved capacity; None uses the site's."""

    rule: Literal["shift_total"]
    capacity: int | None = Field(default=None, gt=0)


class Overtime(Spec):
    """A tag underground longer than one shift."""

    rule: Literal["overtime"]
    max_hours: Hours = SHIFT_HOURS


class RestrictedZone(Spec):
    """A tag in a restricted zone without being on its allow-list (the list is on the zone)."""

    rule: Literal["restricted_zone"]


class Sos(Spec):
    """The tag's call button: highest severity, never suppressed, so nothing to tune."""

    rule: Literal["sos"]


class TagLost(Spec):
    """A tag underground not located for longer than `after_s`."""

    rule: Literal["tag_lost"]
    after_s: Positive = TAG_LOST_S


class SlopeTrend(Spec):
    """Slope displacement trend over a sliding window (DOMAIN §2.2), four levels blue..red.

    `rate_mm_d` (mm/d) and `accel_mm_d2` (mm/d²) levels are our chosen defaults, to be tuned
    per slope. `angle_deg` bands the improved tangent angle: about the first value blue
    (constant stage), above it yellow, from the second orange, from the third red; below the
    first, no alert. `steady_rate_mm_d` normalises the T–t curve; None estimates it from history.
    """

    rule: Literal["slope_trend"]
    window_h: Positive = 24.0
    rate_mm_d: Annotated[list[Positive], RISING] = Field(
        default_factory=lambda: [2.0, 5.0, 10.0, 20.0], min_length=4, max_length=4
    )
    accel_mm_d2: Annotated[list[Positive], RISING] = Field(
        default_factory=lambda: [0.5, 1.0, 2.0, 5.0], min_length=4, max_length=4
    )
    angle_deg: Annotated[list[Angle], RISING] = Field(
        default_factory=lambda: [45.0, 80.0, 85.0], min_length=3, max_length=3
    )
    steady_rate_mm_d: Positive | None = None


class ValveMismatch(Spec):
    """Emergency shutoff valve: command and feedback disagree (DOMAIN §2.4); needs `pair`.

    Raised when the valve is commanded closed and the feedback is not closed within `stroke_s`,
    or when the feedback changes with no command. `closed_value` is what both points report
    for "closed".
    """

    rule: Literal["valve_mismatch"]
    stroke_s: Positive = 30.0
    closed_value: float = 1.0


class Interlock(Spec):
    """An interlock bypassed (point value non-zero) for longer than `max_bypass_s` (8 h)."""

    rule: Literal["interlock"]
    max_bypass_s: Positive = 8 * 3600.0


class DustSpark(Spec):
    """A detected spark alarms at once; `repeat` sparks within `window_s` escalate."""

    rule: Literal["dust"]
    check: Literal["spark"]
    window_s: Positive = 600.0
    repeat: int = Field(default=3, ge=2)


class DustAirlock(Spec):
    """Airlock stopped while its collector fan (the `pair` point) runs, for `delay_s`."""

    rule: Literal["dust"]
    check: Literal["airlock"]
    delay_s: NonNegative = 60.0


Dust = Annotated[DustSpark | DustAirlock, Field(discriminator="check")]


class Offline(Spec):
    """No data for more than `factor` reporting periods."""

    rule: Literal["offline"]
    factor: float = Field(default=3.0, ge=1)


class Frozen(Spec):
    """An analog value exactly unchanged for `frozen_s` (fake-data suspicion).

    `except_values` may legitimately hold still (a dry rain gauge at 0, a stopped plant at 0 kW).
    """

    rule: Literal["frozen"]
    frozen_s: Positive = 7200.0
    except_values: list[float] = Field(default_factory=list)


class _PowerRule(Spec):
    """Site power above `factor` × its idle baseline for `for_s` counts as production.

    `baseline_kw` None uses the site's `power_baseline_kw`.
    """

    factor: float = Field(default=3.0, gt=1)
    for_s: NonNegative = 900.0
    baseline_kw: Positive | None = None


class StoppedButRunning(_PowerRule):
    """明停暗开: production while the site's declared state is stopped or rectification."""

    rule: Literal["stopped_but_running"]


class FakeOffline(_PowerRule):
    """虚假离线: the site's monitoring points are silent while its power shows production."""

    rule: Literal["fake_offline"]


PointRule = Annotated[
    Threshold | SlopeTrend | ValveMismatch | Interlock | Dust | Offline | Frozen | StoppedButRunning | FakeOffline,
    Field(discriminator="rule"),
]
"""A rule a point may carry; positioning families are evaluated per zone, tag or site instead."""

RuleSpec = Annotated[
    PointRule | Headcount | ShiftTotal | Overtime | RestrictedZone | Sos | TagLost,
    Field(discriminator="rule"),
]
"""Any rule family of PROTOCOL §4."""

point_rule: TypeAdapter[PointRule] = TypeAdapter(PointRule)
rule_spec: TypeAdapter[RuleSpec] = TypeAdapter(RuleSpec)

_MAPPING: dict[str, Any] = rule_spec.json_schema()["discriminator"]["mapping"]
FAMILIES = frozenset(_MAPPING)
"""The rule family names, as an alert's `rule` field carries them."""
DUST_CHECKS = frozenset(_MAPPING["dust"]["discriminator"]["mapping"])
