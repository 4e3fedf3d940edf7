"""The evaluator's routing: one sorted batch for every family, late readings counted, not evaluated."""

from __future__ import annotations

import numpy as np

from sitewatch.catalog.models import Catalog
from sitewatch.protocol import TelemetryColumns
from sitewatch.rules.base import RuleCatalog
from sitewatch.rules.engine import Evaluator, default_families

NOW = 1_795_310_100_000


def evaluator() -> tuple[Evaluator, RuleCatalog]:
    catalog = RuleCatalog.from_catalog(
        Catalog.model_validate(
            {
                "enterprises": [{"code": "E", "name": "e"}],
                "sites": [{"code": "S", "enterprise": "E", "name": "s", "kind": "tank_farm"}],
                "points": [{"code": "GT", "site": "S", "kind": "gas_lel", "unit": "%LEL", "period_s": 5}],
            }
        )
    )
    ev = Evaluator(default_families(), late_window_ms=60_000)
    ev.load(catalog)
    return ev, catalog


def columns(ts: list[int], values: list[float]) -> TelemetryColumns:
    n = len(ts)
    return TelemetryColumns(
        1, np.zeros(n, np.int32), np.array(ts, np.int64), np.array(values), np.zeros(n, np.int16), []
    )


def test_readings_out_of_order_within_a_batch_are_put_in_time_order() -> None:
    ev, catalog = evaluator()
    site = catalog.site_ids["S"]
    signals = ev.readings([(site, "GW", columns([NOW - 1000, NOW - 3000, NOW - 2000], [30.0, 5.0, 55.0]))], NOW)
    threshold = [(s.ts_ms - NOW, s.severity) for s in signals if s.rule == "threshold"]
    assert threshold == [(-2000, 3)]  # 5 then 55 (level 2); the gas alarm latches through 30


def test_readings_beyond_the_late_window_are_counted_not_evaluated() -> None:
    ev, catalog = evaluator()
    site = catalog.site_ids["S"]
    assert ev.readings([(site, "GW", columns([NOW - 120_000, NOW - 61_000], [80.0, 90.0]))], NOW) == []
    assert ev.late_skipped == 2
    fresh = ev.readings([(site, "GW", columns([NOW - 59_000], [80.0]))], NOW)
    assert [s.rule for s in fresh] == ["threshold"]
