"""Hostile input on the MQTT decode path (issue 8): sitewatch.protocol never raises, and says exactly
what a straightforward reference decoder (tests/hostile.py) says about every message and item.

`make test` runs a few thousand examples per decoder; `make soak-fuzz` runs 100,000 per decoder
(`SITEWATCH_FUZZ_EXAMPLES`), see docs/reliability.md.
"""

from __future__ import annotations

import json
import os

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from sitewatch.protocol import TelemetryColumns, decode_telemetry
from tests.hostile import (
    MAX_PAYLOAD,
    Decoded,
    Raw,
    Refused,
    check_positions,
    check_status,
    check_telemetry,
    check_topic,
    encode,
    nested,
    position_payloads,
    status_payloads,
    telemetry_payloads,
    topics,
)
from tests.test_protocol import POINTS, T0, WINDOW, ZONES

WINDOW_MS = (WINDOW["min_ts_ms"], WINDOW["max_ts_ms"])
_SOAK = int(os.environ.get("SITEWATCH_FUZZ_EXAMPLES", "0"))


def budget(short: int) -> settings:
    """`short` examples in `make test`, or the soak's count; 1 MiB payloads may be slow to generate."""
    return settings(
        max_examples=_SOAK or short,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
    )


def batch(*items: object, seq: object = 1, key: str = "readings") -> bytes:
    return encode({"seq": seq, key: list(items)})


GOOD = {"point": "GT-101", "ts": T0, "value": 18.5}
HANDCRAFTED = [
    batch(GOOD, {"point": "P_2", "ts": T0, "value": Raw("1e400")}, GOOD),
    batch(GOOD, {"point": "P_2", "ts": T0, "value": Raw("NaN")}),  # not JSON: the whole message
    batch({"point": "P_2", "ts": T0, "value": Raw("-Infinity")}),
    batch(GOOD, {"point": "P_2", "ts": T0, "value": Raw("9" * 400)}, {"point": "P_2", "ts": Raw("9" * 30), "value": 1}),
    batch(GOOD, {"point": "P_2", "ts": T0, "value": Raw("1" + "0" * 5000)}),  # beyond the parser
    batch(GOOD, {"point": "P_2", "ts": T0, "value": nested(10_000)}),
    batch(GOOD, {"point": "P_2", "ts": T0, "value": nested(40)}, GOOD),
    batch(GOOD, seq=Raw("1e400")),
    batch(GOOD, seq=2**63),
    batch(GOOD, {"point": "GT-101\x00", "ts": T0, "value": 1}, {"point": "x" * 65, "ts": T0, "value": 1}),
    batch(GOOD, {"point": "点", "ts": T0, "value": 1}, {"point": "٣", "ts": T0, "value": 1}),
    batch(GOOD, {"point": "GT-101", "ts": -(2**63), "value": 1}, {"point": "GT-101", "ts": 2**63, "value": 1}),
    batch(GOOD, {"point": "GT-101", "ts": "0001-01-01T00:00:00Z", "value": 1}),
    batch(GOOD, {"point": "GT-101", "ts": "9999-12-31T23:59:59.999999999+14:00", "value": 1}),
    batch(GOOD, {"point": "GT-101", "ts": T0, "value": "12.5", "quality": None}),
    batch(GOOD, {"point": "GT-101", "ts": "\ud800", "value": 1}),  # raw surrogate: not UTF-8
    batch(GOOD, {"point": "GT-101", "ts": Raw('"\\ud800"'), "value": 1}),  # escaped lone surrogate
    batch(GOOD) + b"\x00",
    batch(GOOD)[:-3] + b"\xff" + batch(GOOD)[-3:],
    batch(GOOD) + b" " * (MAX_PAYLOAD - len(batch(GOOD)) + 1),  # one byte past 1 MiB
    batch(GOOD) + b" " * (MAX_PAYLOAD - len(batch(GOOD))),  # exactly 1 MiB
    b"\xef\xbb\xbf" + batch(GOOD),
    b'{"seq": 1, "readings": [' + b",".join([json.dumps(GOOD).encode()] * 15_000) + b"]}",  # big, under 1 MiB
]


@budget(1500)
@given(telemetry_payloads([*POINTS, "GT-999"], WINDOW_MS))
def test_telemetry_matches_the_reference(payload: bytes) -> None:
    check_telemetry(payload, POINTS, WINDOW_MS)


def test_handcrafted_telemetry() -> None:
    outcomes = [check_telemetry(payload, POINTS, WINDOW_MS) for payload in HANDCRAFTED]
    refused = [o.reason for o in outcomes if isinstance(o, Refused)]
    assert refused.count("invalid_json") == 9 and refused.count("invalid_message") == 2
    assert refused.count("oversize") == 1
    kept = [len(o.rows) for o in outcomes if isinstance(o, Decoded)]
    assert 15_000 in kept and all(kept)


@budget(800)
@given(position_payloads([*ZONES], WINDOW_MS))
@example(
    batch(
        {"tag": "T-1", "ts": T0, "kind": "sos", "zone": None}, {"tag": "T\x00", "ts": T0, "kind": "exit"}, key="events"
    )
)
@example(batch({"tag": "T-1", "ts": T0, "kind": "exit", "zone": ["x"]}, {"ts": T0}, key="events"))
def test_positions_match_the_reference(payload: bytes) -> None:
    check_positions(payload, ZONES, WINDOW_MS)


@budget(500)
@given(status_payloads())
@example(b'{"state": "online"}\x00')
@example(b'{"state": "online", "state": "offline"}')
def test_status_matches_the_reference(payload: bytes) -> None:
    check_status(payload)


@budget(500)
@given(topics())
@example("sw/v1/MINE-A/GW-1/telemetry\x00")
@example("sw/v1/MINE-A/٣/status")
def test_topics_match_the_reference(topic: str) -> None:
    check_topic(topic)


@budget(200)
@given(st.binary(max_size=256))
def test_arbitrary_bytes(payload: bytes) -> None:
    check_telemetry(payload, POINTS, WINDOW_MS)
    check_positions(payload, ZONES, WINDOW_MS)
    check_status(payload)


# Found by the tests above: the strict decoder skips unknown fields without reading them, so a
# batch could pass it and then crash the lenient decode that fetches the items of its rejects.


def test_invalid_utf8_in_an_ignored_field_refuses_the_whole_message() -> None:
    for second in ({"point": "GT-999", "ts": T0, "value": 1}, GOOD):  # with and without a reject
        payload = batch(GOOD, second).replace(b'"seq"', b'"note": "\xed\xa0\x80", "seq"')
        assert check_telemetry(payload, POINTS, WINDOW_MS) == Refused(
            "invalid_json", payload.decode("utf-8", "replace")
        )


def test_integer_beyond_the_parser_in_an_ignored_field_keeps_the_batch() -> None:
    """The lenient decoder refuses integers of over 4,300 digits; the strict one skips an ignored one.
    The batch is kept, its rejects rebuilt from what the strict decoder read."""
    payload = batch(GOOD, {"point": "GT-999", "ts": T0, "value": 1}).replace(
        b'"seq"', b'"n": 1' + b"0" * 5000 + b', "seq"'
    )
    result = decode_telemetry(payload, POINTS, **WINDOW)
    assert isinstance(result, TelemetryColumns)
    assert result.rows() == [(7, T0, 18.5, 0)]
    [reject] = result.rejects
    assert reject.reason == "unknown_point"
    assert json.loads(reject.item or "") == {"point": "GT-999", "ts": T0, "value": 1.0, "quality": "good"}
