"""Tests of the MQTT payload decoders (PROTOCOL.md §1)."""

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from sitewatch import protocol
from sitewatch.protocol import (
    BAD_QUALITY,
    BAD_STATUS,
    BAD_TIMESTAMP,
    IDENT_RE,
    INVALID_EVENT,
    INVALID_JSON,
    INVALID_MESSAGE,
    INVALID_READING,
    MAX_PAYLOAD,
    NON_NUMERIC,
    OVERSIZE,
    UNKNOWN_POINT,
    UNKNOWN_ZONE,
    Channel,
    PositionColumns,
    Reject,
    TelemetryColumns,
    Topic,
    decode_positions,
    decode_status,
    decode_telemetry,
    parse_timestamps,
    parse_topic,
)

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MS = timedelta(milliseconds=1)
T0 = 1_763_774_102_120  # 2025-11-22T01:15:02.120Z
WINDOW = {"min_ts_ms": T0 - 86_400_000, "max_ts_ms": T0 + 86_400_000}
POINTS = {"GT-101": 7, "ESV-01.fb": 3, "P_2": 11}
ZONES = frozenset({"WF-302", "WF-303"})


def telemetry(readings: list[Any], seq: Any = 1, **extra: Any) -> bytes:
    return json.dumps({"seq": seq, "readings": readings, **extra}).encode()


def positions(events: list[Any], seq: Any = 1) -> bytes:
    return json.dumps({"seq": seq, "events": events}).encode()


def reading(point: str = "GT-101", ts: Any = T0, value: Any = 18.5, **extra: Any) -> dict[str, Any]:
    return {"point": point, "ts": ts, "value": value, **extra}


def decode(payload: bytes, **window: int) -> TelemetryColumns:
    result = decode_telemetry(payload, POINTS, **{**WINDOW, **window})
    assert isinstance(result, TelemetryColumns), result
    return result


def rejected(payload: bytes) -> Reject:
    result = decode_telemetry(payload, POINTS, **WINDOW)
    assert isinstance(result, Reject), result
    return result


def reasons(columns: TelemetryColumns | PositionColumns) -> list[str]:
    return [reject.reason for reject in columns.rejects]


# --- topics ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("topic", "expected"),
    [
        ("sw/v1/MINE-A/GW-1/telemetry", Topic("MINE-A", "GW-1", Channel.TELEMETRY)),
        ("sw/v1/MINE-A/GW-1/positions", Topic("MINE-A", "GW-1", Channel.POSITIONS)),
        ("sw/v1/m_1.x/g/status", Topic("m_1.x", "g", Channel.STATUS)),
        ("sw/v1/" + "s" * 64 + "/g/status", Topic("s" * 64, "g", Channel.STATUS)),
        ("sw/v1/" + "s" * 65 + "/g/status", None),
        ("sw/v1/MINE-A/GW-1/alerts", None),
        ("sw/v1/MINE-A/alerts", None),
        ("sw/v2/MINE-A/GW-1/telemetry", None),
        ("xx/v1/MINE-A/GW-1/telemetry", None),
        ("sw/v1/MINE-A/GW-1/telemetry/", None),
        ("sw/v1/MINE-A/GW-1/telemetry/x", None),
        ("sw/v1//GW-1/telemetry", None),
        ("sw/v1/MINE A/GW-1/telemetry", None),
        ("sw/v1/MINE-A/GW+1/telemetry", None),
        ("sw/v1/MINE-A/GW-1\n/telemetry", None),
        ("sw/v1/MINE-A/GW-1/Telemetry", None),
        ("", None),
    ],
)
def test_parse_topic(topic: str, expected: Topic | None) -> None:
    assert parse_topic(topic) == expected


def test_identifier_pattern_is_a_full_match() -> None:
    assert IDENT_RE.fullmatch("T-00017")
    assert not IDENT_RE.fullmatch("T-00017\n")
    assert not IDENT_RE.fullmatch("")
    assert not IDENT_RE.fullmatch("点")


# --- whole-message rejects ---------------------------------------------------------------------


def test_oversize_is_checked_before_parsing() -> None:
    payload = b"[" + b" " * (MAX_PAYLOAD - 1) + b"]"  # valid JSON, one byte too many
    for result in (
        decode_telemetry(payload, POINTS, **WINDOW),
        decode_positions(payload, ZONES, **WINDOW),
        decode_status(payload),
    ):
        assert isinstance(result, Reject)
        assert (result.reason, result.item) == (OVERSIZE, None)


def test_payload_of_exactly_max_size_is_decoded() -> None:
    body = telemetry([reading()])
    payload = body + b" " * (MAX_PAYLOAD - len(body))
    assert len(payload) == MAX_PAYLOAD
    assert decode(payload).rows() == [(7, T0, 18.5, 0)]


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        b"{",
        b'{"seq": 1, "readings": []} trailing',
        b"{'seq': 1}",
        b'{"seq": 1, "readings": [{"point": "GT-101", "ts": 1, "value": NaN}]}',
        telemetry([reading(point="GT-101")]).replace(b"GT-101", b"GT-\xff01"),  # invalid UTF-8
        b"[" * 100_000 + b"]" * 100_000,  # nesting deeper than any message needs
    ],
)
def test_invalid_json(payload: bytes) -> None:
    reject = rejected(payload)
    assert reject.reason == INVALID_JSON
    assert reject.detail
    assert reject.item == payload[:4096].decode("utf-8", "replace")[:4096]


def test_whole_message_item_is_truncated_to_4096_characters() -> None:
    payload = ("[" + "é" * 5000).encode()
    reject = rejected(payload)
    assert reject.reason == INVALID_JSON
    assert reject.item == "[" + "é" * 4095


@pytest.mark.parametrize(
    "message",
    [
        [],
        "text",
        None,
        {"readings": []},
        {"seq": -1, "readings": []},
        {"seq": 2**63, "readings": []},
        {"seq": 1.0, "readings": []},
        {"seq": "1", "readings": []},
        {"seq": True, "readings": []},
        {"seq": 1},
        {"seq": 1, "readings": {"point": "GT-101"}},
        {"seq": 1, "readings": None},
        {"seq": 1, "events": []},
    ],
)
def test_invalid_message(message: Any) -> None:
    payload = json.dumps(message).encode()
    reject = rejected(payload)
    assert (reject.reason, reject.item) == (INVALID_MESSAGE, payload.decode())


@pytest.mark.parametrize("seq", [0, 1, 2**63 - 1])
def test_seq_bounds(seq: int) -> None:
    assert decode(telemetry([], seq=seq)).seq == seq
    lenient = decode(telemetry([reading(value="x")], seq=seq))  # the lenient path too
    assert lenient.seq == seq


# --- readings ----------------------------------------------------------------------------------


def test_protocol_example() -> None:
    payload = b"""{"seq": 1042,
     "readings": [
       {"point": "GT-101", "ts": "2026-11-22T09:15:02.120+08:00", "value": 18.5},
       {"point": "ESV-01.fb", "ts": 1763774102120, "value": 1, "quality": "good"}
     ]}"""
    columns = decode(payload, min_ts_ms=0, max_ts_ms=2**62)
    assert columns.seq == 1042
    assert columns.rows() == [(7, 1_795_310_102_120, 18.5, 0), (3, 1_763_774_102_120, 1.0, 0)]
    assert columns.rejects == []
    assert columns.point_id.dtype == np.int32
    assert columns.ts_ms.dtype == np.int64
    assert columns.value.dtype == np.float64
    assert columns.quality.dtype == np.int16


def test_empty_batch() -> None:
    columns = decode(telemetry([]))
    assert columns.rows() == [] and columns.rejects == []
    assert columns.point_id.dtype == np.int32 and columns.quality.dtype == np.int16


@pytest.mark.parametrize(("quality", "code"), [("good", 0), ("uncertain", 1), ("bad", 2)])
def test_quality_codes(quality: str, code: int) -> None:
    assert decode(telemetry([reading(quality=quality)])).rows() == [(7, T0, 18.5, code)]


def test_booleans_are_values_but_not_timestamps() -> None:
    columns = decode(telemetry([reading(value=True), reading(value=False), reading(ts=True)]))
    assert columns.rows() == [(7, T0, 1.0, 0), (7, T0, 0.0, 0)]
    assert reasons(columns) == [BAD_TIMESTAMP]


def test_redundant_fields_are_ignored() -> None:
    payload = telemetry(
        [reading(unit="%LEL", extra={"nested": [1, 2]}), reading(point="P_2", value=-3, note=None)],
        gateway="GW-1",
        firmware="1.2",
    )
    assert decode(payload).rows() == [(7, T0, 18.5, 0), (11, T0, -3.0, 0)]


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        ("not an object", INVALID_READING),
        ([1, 2], INVALID_READING),
        ({"ts": T0, "value": 1}, INVALID_READING),
        ({"point": "GT-101", "value": 1}, INVALID_READING),
        ({"point": "GT-101", "ts": T0}, INVALID_READING),
        (reading(point=7), INVALID_READING),  # type: ignore[arg-type]
        (reading(point="GT 101"), INVALID_READING),
        (reading(point="x" * 65), INVALID_READING),
        (reading(point="GT-999"), UNKNOWN_POINT),
        (reading(ts="yesterday"), BAD_TIMESTAMP),
        (reading(ts="2025-11-22T01:15:02"), BAD_TIMESTAMP),  # no offset
        (reading(ts="2025-11-22T01:15:60Z"), BAD_TIMESTAMP),  # leap second
        (reading(ts=1.5e12), BAD_TIMESTAMP),
        (reading(ts=None), BAD_TIMESTAMP),
        (reading(ts=2**70), BAD_TIMESTAMP),
        (reading(ts=WINDOW["max_ts_ms"] + 1), BAD_TIMESTAMP),
        (reading(value="12.5"), NON_NUMERIC),
        (reading(value=None), NON_NUMERIC),
        (reading(value=[1]), NON_NUMERIC),
        (reading(value={"v": 1}), NON_NUMERIC),
        (reading(value=10**400), NON_NUMERIC),
        (reading(quality="excellent"), BAD_QUALITY),
        (reading(quality="GOOD"), BAD_QUALITY),
        (reading(quality=0), BAD_QUALITY),
        (reading(quality=None), BAD_QUALITY),
    ],
)
def test_reading_rejects(bad: Any, reason: str) -> None:
    columns = decode(telemetry([reading(), bad, reading(point="P_2")]))
    assert columns.rows() == [(7, T0, 18.5, 0), (11, T0, 18.5, 0)]
    [reject] = columns.rejects
    assert reject.reason == reason and reject.detail
    assert reject.item == json.dumps(bad, separators=(",", ":"))


def test_out_of_range_float_is_non_numeric() -> None:
    payload = telemetry([reading()])[:-2] + b', {"point": "GT-101", "ts": %d, "value": 1e400}]}' % T0
    columns = decode(payload)
    assert columns.rows() == [(7, T0, 18.5, 0)]
    assert reasons(columns) == [NON_NUMERIC]


def test_timestamp_details_say_which_problem() -> None:
    columns = decode(telemetry([reading(ts="soon"), reading(ts=0)]))
    unparseable, outside = (reject.detail for reject in columns.rejects)
    assert "RFC 3339" in unparseable
    assert "outside" in outside and str(WINDOW["min_ts_ms"]) in outside


def test_reject_precedence() -> None:
    columns = decode(
        telemetry(
            [
                reading(point="GT 1", ts="x", value="x", quality="x"),
                reading(point="NOPE", ts="x", value="x", quality="x"),
                reading(ts="x", value="x", quality="x"),
                reading(value="x", quality="x"),
                reading(quality="x"),
            ]
        )
    )
    assert reasons(columns) == [INVALID_READING, UNKNOWN_POINT, BAD_TIMESTAMP, NON_NUMERIC, BAD_QUALITY]


@pytest.mark.parametrize("ts", [WINDOW["min_ts_ms"], WINDOW["max_ts_ms"]])
def test_window_bounds_are_inclusive(ts: int) -> None:
    columns = decode(telemetry([reading(ts=ts), reading(ts=ts - 1), reading(ts=ts + 1)]))
    assert columns.ts_ms.tolist()[0] == ts
    assert len(columns.ts_ms) == 2 and reasons(columns) == [BAD_TIMESTAMP]


def test_window_bounds_apply_to_strings() -> None:
    low = datetime.fromtimestamp(WINDOW["min_ts_ms"] / 1000, UTC).isoformat(timespec="milliseconds")
    below = low.replace(".120", ".119")
    columns = decode(telemetry([reading(ts=low), reading(ts=below)]))
    assert columns.ts_ms.tolist() == [WINDOW["min_ts_ms"]]
    assert reasons(columns) == [BAD_TIMESTAMP]


@pytest.mark.parametrize("strict_shape", [True, False])  # bad readings that pass the strict decode, or not
def test_partly_bad_batch_keeps_every_good_reading_in_order(strict_shape: bool) -> None:
    good = [
        reading("GT-101", T0 + i, float(i), quality=["good", "uncertain", "bad"][i % 3])
        if i % 2
        else reading("ESV-01.fb", "2025-11-22T09:15:02.120+08:00", i % 5 == 0)
        for i in range(60)
    ]
    bad = [
        reading("GT-999"),
        reading(ts="2025-13-22T09:15:02Z"),
        reading(ts=0),
        reading(value=2.5, point="GT 101") if strict_shape else reading(value="1"),
        reading(point="X") if strict_shape else reading(quality="unknown"),
    ]
    batch = list(good)
    for n, item in enumerate(bad):
        batch.insert(7 + 11 * n, item)
    columns = decode(telemetry(batch))
    expected = [(3, T0, float(i % 5 == 0), 0) if i % 2 == 0 else (7, T0 + i, float(i), i % 3) for i in range(60)]
    assert columns.rows() == expected
    assert [reject.item for reject in columns.rejects] == [json.dumps(item, separators=(",", ":")) for item in bad]


def test_strict_and_lenient_paths_agree() -> None:
    batch = [
        reading("GT-101", "2025-11-22T09:15:02.1+08:00", 1, quality="bad"),
        reading("P_2", T0, False),
        reading("ESV-01.fb", "2025-11-22t01:15:02.123456789z", -0.5),
        reading("GT-999"),
    ]
    strict = decode(telemetry(batch))
    lenient = decode(telemetry([*batch, "forces the lenient path"]))
    assert strict.rows() == lenient.rows()
    assert strict.rejects == lenient.rejects[:1]


# --- positions and status ----------------------------------------------------------------------


def test_positions_protocol_example() -> None:
    payload = b"""{"seq": 77,
     "events": [
       {"tag": "T-00017", "ts": 1763774102120, "kind": "locate", "zone": "WF-302"},
       {"tag": "T-00018", "ts": 1763774102500, "kind": "exit"},
       {"tag": "T-00019", "ts": 1763774103000, "kind": "sos", "zone": "WF-302"}
     ]}"""
    result = decode_positions(payload, ZONES, **WINDOW)
    assert isinstance(result, PositionColumns)
    assert result.seq == 77
    assert result.tag == ["T-00017", "T-00018", "T-00019"]
    assert result.ts_ms.tolist() == [1763774102120, 1763774102500, 1763774103000]
    assert result.kind.tolist() == [0, 1, 2] and result.kind.dtype == np.int16
    assert result.zone == ["WF-302", None, "WF-302"]
    assert result.rejects == []


def test_positions_zone_rules_and_rejects() -> None:
    good = [
        {"tag": "T-1", "ts": T0, "kind": "exit", "zone": "anything at all"},
        {"tag": "T-2", "ts": "2025-11-22T01:15:02.120Z", "kind": "sos"},
        {"tag": "T-3", "ts": T0, "kind": "locate", "zone": "WF-303", "rssi": -70},
    ]
    bad = [
        ({"tag": "T-4", "ts": T0, "kind": "locate"}, INVALID_EVENT),
        ({"tag": "T-5", "ts": T0, "kind": "locate", "zone": 302}, INVALID_EVENT),
        ({"tag": "T 6", "ts": T0, "kind": "exit"}, INVALID_EVENT),
        ({"ts": T0, "kind": "exit"}, INVALID_EVENT),
        ({"tag": "T-7", "kind": "exit"}, INVALID_EVENT),
        ({"tag": "T-8", "ts": T0, "kind": "enter"}, INVALID_EVENT),
        ({"tag": "T-9", "ts": T0, "kind": ["exit"]}, INVALID_EVENT),
        (["T-10"], INVALID_EVENT),
        ({"tag": "T-11", "ts": T0, "kind": "locate", "zone": "WF-999"}, UNKNOWN_ZONE),
        ({"tag": "T-12", "ts": T0, "kind": "sos", "zone": "WF-999"}, UNKNOWN_ZONE),
        ({"tag": "T-13", "ts": "later", "kind": "exit"}, BAD_TIMESTAMP),
        ({"tag": "T-14", "ts": 0, "kind": "exit"}, BAD_TIMESTAMP),
    ]
    result = decode_positions(positions([*good[:2], *(event for event, _ in bad), good[2]]), ZONES, **WINDOW)
    assert isinstance(result, PositionColumns)
    assert result.tag == ["T-1", "T-2", "T-3"]
    assert result.ts_ms.tolist() == [T0, T0, T0]
    assert result.kind.tolist() == [1, 2, 0]
    assert result.zone == [None, None, "WF-303"]
    assert [(reject.reason, reject.item) for reject in result.rejects] == [
        (reason, json.dumps(event, separators=(",", ":"))) for event, reason in bad
    ]


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"{", INVALID_JSON),
        (b'{"seq": 1}', INVALID_MESSAGE),
        (b'{"seq": 1, "events": {}}', INVALID_MESSAGE),
        (b'{"seq": -5, "events": []}', INVALID_MESSAGE),
    ],
)
def test_positions_whole_message_rejects(payload: bytes, reason: str) -> None:
    result = decode_positions(payload, ZONES, **WINDOW)
    assert isinstance(result, Reject) and result.reason == reason


@pytest.mark.parametrize("state", ["online", "offline"])
def test_status(state: str) -> None:
    assert decode_status(json.dumps({"state": state, "since": 1}).encode()) == state


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b'{"state": "sleeping"}', BAD_STATUS),
        (b'{"state": ["online"]}', BAD_STATUS),
        (b'{"status": "online"}', BAD_STATUS),
        (b'"online"', BAD_STATUS),
        (b"online", INVALID_JSON),
    ],
)
def test_bad_status(payload: bytes, reason: str) -> None:
    result = decode_status(payload)
    assert isinstance(result, Reject)
    assert (result.reason, result.item) == (reason, payload.decode())


# --- timestamps --------------------------------------------------------------------------------


def iso_reference(text: str) -> int | None:
    """What the contract promises for odd strings: fromisoformat with an offset (Z may be z)."""
    if not (text.isascii() and text.isprintable()):
        return None
    try:
        when = datetime.fromisoformat(text[:-1] + "Z" if text.endswith("z") else text)
    except ValueError:
        return None
    return None if when.tzinfo is None else (when - EPOCH) // MS


@st.composite
def rfc3339(draw: st.DrawFn) -> tuple[str, int]:
    """A valid timestamp string and its epoch ms, computed without the code under test."""
    local = draw(st.datetimes(min_value=datetime(1, 1, 1))).replace(microsecond=0)
    fraction = draw(st.text("0123456789", max_size=12))
    offset = draw(st.integers(-(24 * 60 - 1), 24 * 60 - 1))
    zulu = draw(st.sampled_from(["", "Z", "z"])) if offset == 0 else ""
    text = f"{local.year:04d}-{local:%m-%d}{draw(st.sampled_from('Tt '))}{local:%H:%M:%S}"
    text += "." + fraction if fraction else ""
    text += zulu or f"{'-' if offset < 0 else '+'}{abs(offset) // 60:02d}:{abs(offset) % 60:02d}"
    whole = (local - datetime(1970, 1, 1)) // MS
    return text, whole + int(fraction[:3].ljust(3, "0")) - offset * 60_000


@given(st.lists(st.one_of(rfc3339(), st.integers(-(2**63), 2**63 - 1).map(lambda i: (i, i))), max_size=40))
@example([("2026-11-22T09:15:02.120+08:00", 1_795_310_102_120), ("0001-01-01T00:00:00+23:59", -62_135_683_140_000)])
@example([("9999-12-31T23:59:59.999-23:59", 253_402_387_139_999), ("2024-02-29T00:00:00Z", 1_709_164_800_000)])
def test_valid_timestamps_match_the_reference(items: list[tuple[str | int, int]]) -> None:
    ms, ok = parse_timestamps([raw for raw, _ in items])
    assert ok.all()
    assert ms.tolist() == [expected for _, expected in items]


_TIMESTAMP_CHARS = '0123456789-:.+TtZz ,W\x00é"\\'


@st.composite
def mutated(draw: st.DrawFn) -> str:
    """A valid timestamp with a few characters replaced, inserted or deleted."""
    chars = list(draw(rfc3339())[0])
    for _ in range(draw(st.integers(1, 3))):
        at = draw(st.integers(0, len(chars)))
        action = draw(st.sampled_from(["replace", "insert", "delete"]))
        if action != "insert" and at < len(chars):
            del chars[at]
        if action != "delete":
            chars.insert(at, draw(st.sampled_from(_TIMESTAMP_CHARS)))
    return "".join(chars)


@settings(max_examples=300)
@given(st.lists(st.one_of(mutated(), st.text(_TIMESTAMP_CHARS, max_size=35), st.text(max_size=10)), max_size=30))
@example(["2026-02-29T00:00:00Z", "2026-11-22T24:00:00Z", "2026-11-22T09:15:02,5Z", "2026-11-22T09:15:02.Z"])
@example(["2026-11-22T09:15:02Z\x00", "2026-11-22T09:15:02+08:00,", "2026-11-22T09:15:02", "20261122T091502Z"])
@example(["0000-01-01T00:00:00Z", "2026-00-10T00:00:00Z", "2026-11-22T09:15:02+24:00", "2026-11-22T09:15:02,08:00"])
def test_garbage_strings_are_refused_or_match_fromisoformat(texts: list[str]) -> None:
    ms, ok = parse_timestamps(texts)
    expected = [iso_reference(text) for text in texts]
    assert ok.tolist() == [value is not None for value in expected]
    assert [value for value, good in zip(ms.tolist(), ok, strict=True) if good] == [
        value for value in expected if value is not None
    ]


@given(st.lists(st.integers(-(2**70), 2**70), max_size=30))
def test_integers_pass_through_within_int64(values: list[int]) -> None:
    ms, ok = parse_timestamps(values)
    inside = [-(2**63) <= value < 2**63 for value in values]
    assert ok.tolist() == inside
    assert [v for v, good in zip(ms.tolist(), inside, strict=True) if good] == [
        v for v, good in zip(values, inside, strict=True) if good
    ]


def test_non_timestamps_are_refused() -> None:
    ms, ok = parse_timestamps([True, 1.5, None, [1], "", "é", T0])  # type: ignore[list-item]
    assert ok.tolist() == [False] * 6 + [True]
    assert ms[-1] == T0


def test_common_forms_take_the_vector_path(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_fallback(text: str) -> int | None:
        raise AssertionError(f"{text!r} fell back to datetime")

    monkeypatch.setattr(protocol, "_parse_one", no_fallback)
    texts = [
        "2026-11-22T09:15:02+08:00",
        "2026-11-22T09:15:02.1-05:30",
        "2026-11-22t09:15:02.123456789Z",
        "2026-11-22T09:15:02z",
        "2026-11-22T09:15:02.120Z",
    ]
    ms, ok = parse_timestamps([*texts, T0])
    assert ok.all()
    assert ms.tolist() == [iso_reference(text) for text in texts] + [T0]
