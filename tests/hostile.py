"""Hostile gateway input for the MQTT decode path: hypothesis strategies and a reference decoder.

The strategies build telemetry, positioning and status payloads that mix valid items with every
kind of mistake a gateway (or an attacker with a gateway's password) can make: malformed JSON,
NaN/Infinity literals, numbers beyond float and int64, 10,000-deep nesting, wrong types, payloads
over 1 MiB, invalid UTF-8, lone surrogates, NUL bytes, identifiers outside `[A-Za-z0-9_.-]{1,64}`,
timestamps far in the past or future, repeated keys. A payload is written by `dump`, not
`json.dumps`, so that it may hold what JSON libraries refuse to write.

`reference_*` decode a payload straight from docs/protocol.md with the standard library (json,
datetime, re): nothing of `sitewatch.protocol` is used, so they judge it independently, and
`check_*` assert that `sitewatch.protocol` says exactly what they say. Two
parser limits are the implementation's, not the contract's, and the strategies keep clear of
their edges: msgspec refuses nesting deeper than about 1,000 levels and integer literals of more
than 4,300 characters (as Python's `int()` does), so generated nesting is either at most 40 deep
or at least 2,000, and integers have at most 400 digits or at least 5,000.
"""

from __future__ import annotations

import json
import math
import re
import string
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from hypothesis import strategies as st

from sitewatch import protocol
from tests.test_protocol import iso_reference

MAX_PAYLOAD = 1 << 20  # docs/protocol.md: at most 1 MiB
ITEM_CHARS = 4096  # a rejected message keeps up to 4 KiB of its payload
IDENT = re.compile(r"[A-Za-z0-9_.-]{1,64}", re.ASCII)
IDENT_CHARS = string.ascii_letters + string.digits + "_.-"
INT64 = range(-(1 << 63), 1 << 63)
QUALITY = {"good": 0, "uncertain": 1, "bad": 2}
KINDS = {"locate": 0, "exit": 1, "sos": 2}
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MS = timedelta(milliseconds=1)

# Every reason docs/protocol.md lists for the decode path (unknown_site and internal_error are ingest's).
MESSAGE_REASONS = frozenset({"invalid_json", "oversize", "invalid_message"})
READING_REASONS = frozenset({"invalid_reading", "unknown_point", "bad_timestamp", "non_numeric_value", "bad_quality"})
EVENT_REASONS = frozenset({"invalid_event", "unknown_zone", "bad_timestamp"})
STATUS_REASONS = frozenset({"invalid_json", "oversize", "bad_status"})


# ---------------------------------------------------------------------------------------------
# Writing payloads


@dataclass(frozen=True)
class Raw:
    """JSON text spliced in verbatim: `NaN`, `1e400`, a 5,000-digit integer, 10,000 brackets."""

    text: str


@dataclass(frozen=True)
class Pairs:
    """An object written key by key, so that a key may repeat."""

    items: tuple[tuple[str, Any], ...]


def dump(node: Any) -> str:
    """JSON text of a tree of plain values, `Raw` and `Pairs`."""
    if isinstance(node, Raw):
        return node.text
    if isinstance(node, Pairs | dict):
        pairs = node.items if isinstance(node, Pairs) else node.items()
        return "{" + ",".join(f"{_scalar(key)}:{dump(value)}" for key, value in pairs) + "}"
    if isinstance(node, list | tuple):
        return "[" + ",".join(dump(value) for value in node) + "]"
    return _scalar(node)


def _scalar(value: Any) -> str:
    # Unicode as is (so a lone surrogate becomes bytes that are not UTF-8); NaN and Infinity as
    # Python writes them, which JSON forbids.
    return json.dumps(value, ensure_ascii=False)


def encode(node: Any) -> bytes:
    return dump(node).encode("utf-8", "surrogatepass")


# ---------------------------------------------------------------------------------------------
# Strategies


def weighted(*options: tuple[int, st.SearchStrategy[Any]]) -> st.SearchStrategy[Any]:
    """One of the strategies, in proportion to its weight (`one_of` drops repeats); shrinks to the first."""
    index = st.sampled_from([i for i, (weight, _) in enumerate(options) for _ in range(weight)])

    @st.composite
    def one(draw: st.DrawFn) -> Any:
        return draw(options[draw(index)][1])

    return one()


IDENTIFIERS = st.text(IDENT_CHARS, min_size=1, max_size=64)

BAD_IDENTIFIERS = st.one_of(  # outside [A-Za-z0-9_.-]{1,64}: empty, too long, MQTT wildcards, Unicode digits
    st.sampled_from(["", " ", "GT 101", "GT/101", "+", "#", "GT\x00", "GT-101\n", "点", "ＧＴ-101", "٣", "ǅ", "é"]),
    st.text(IDENT_CHARS, min_size=65, max_size=80),
    st.tuples(IDENTIFIERS, st.characters(exclude_characters=IDENT_CHARS), IDENTIFIERS).map("".join),
)


def json_values(max_leaves: int) -> st.SearchStrategy[Any]:
    """Any JSON value: finite numbers, strings with any code point, lone surrogates raw and escaped."""
    scalars = weighted(
        (4, st.one_of(st.none(), st.booleans(), st.integers(-(10**30), 10**30), st.text(max_size=8))),
        (2, st.floats(allow_nan=False, allow_infinity=False)),
        (1, st.sampled_from(['"a\\u0000b"', '"\\ud83d\\ude00"', '"\\ud800"', '"\\udfff x"']).map(Raw)),  # escapes
        (1, st.text(st.characters(categories=["Cs"]), min_size=1, max_size=2)),  # raw: bytes that are not UTF-8
    )
    return st.recursive(
        scalars,
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
        max_leaves=max_leaves,
    )


ANY_SMALL, ANY_MEDIUM = json_values(2), json_values(4)

HUGE_NUMBERS = st.one_of(  # literals JSON allows but float64 and int64 do not hold, and those JSON forbids
    st.sampled_from(["1e400", "-1e400", "1E+999", "2e308", "1e-400", "NaN", "Infinity", "-Infinity", "-0"]).map(Raw),
    st.integers(20, 400).map(lambda digits: Raw("9" * digits)),  # beyond int64, still parsed
    st.integers(5_000, 6_000).map(lambda digits: Raw("1" + "0" * digits)),  # beyond the parser: whole message
    st.integers(-(2**70), 2**70).map(lambda n: Raw(str(n))),
)

FINITE = st.one_of(st.floats(allow_nan=False, allow_infinity=False), st.integers(-(2**53), 2**53), st.booleans())


def nested(depth: int) -> Raw:
    return Raw("[" * depth + "]" * depth)


def far_timestamps(window: tuple[int, int]) -> st.SearchStrategy[Any]:
    """Timestamps outside [lo, hi] or unparseable, and what is not a timestamp at all."""
    lo, hi = window
    return st.one_of(
        st.sampled_from([lo - 1, hi + 1, 0, -1, 2**62, -(2**63), 2**63 - 1, lo - 100 * 86_400_000]),
        st.integers(-(2**70), lo - 1) | st.integers(hi + 1, 2**70),
        st.sampled_from(
            [
                "0001-01-01T00:00:00Z",
                "9999-12-31T23:59:59.999+14:00",
                "1970-01-01T00:00:00Z",
                "2025-11-22T01:15:02",  # no offset
                "2025-11-22T01:15:60Z",  # leap second
                "2025-02-30T00:00:00Z",
                "2025-11-22T24:00:00Z",
                "yesterday",
                "",
                "2025-11-22T01:15:02.1234567890Z",
                "+002025-11-22T01:15:02Z",
            ]
        ),
        st.booleans(),
        st.floats(allow_nan=False, allow_infinity=False),
        st.sampled_from(["1.5e12", "1e400", "-1e400", "NaN"]).map(Raw),
        ANY_SMALL,
    )


def timestamps_in(window: tuple[int, int]) -> st.SearchStrategy[Any]:
    """A valid `ts` inside the window: epoch ms, or RFC 3339 with any offset, 0-9 fraction digits, T/t, Z/z."""
    lo, hi = window
    ms_s, offset_s = st.integers(lo, hi), st.integers(-(24 * 60 - 1), 24 * 60 - 1)
    extra_s, flag_s, zulu_s, sep_s = (
        st.text("0123456789", max_size=6),
        st.booleans(),
        st.sampled_from("Zz"),
        st.sampled_from("Tt"),
    )

    @st.composite
    def rfc3339(draw: st.DrawFn) -> str:
        offset = draw(offset_s)
        local = EPOCH.astimezone(timezone(timedelta(minutes=offset))) + draw(ms_s) * MS
        millis = f"{local.microsecond // 1000:03d}"
        # the shortest exact fraction (none for a whole second), or 3 digits and up to 6 more, truncated
        fraction = millis.rstrip("0") if draw(flag_s) else millis + draw(extra_s)
        sign = "-" if offset < 0 else "+"
        zone = draw(zulu_s) if offset == 0 and draw(flag_s) else f"{sign}{abs(offset) // 60:02d}:{abs(offset) % 60:02d}"
        return f"{local:%Y-%m-%d}{draw(sep_s)}{local:%H:%M:%S}" + (f".{fraction}" if fraction else "") + zone

    return st.one_of(ms_s, rfc3339())


def _spoilable(
    valid: st.SearchStrategy[dict[str, Any]], hostile: Mapping[str, st.SearchStrategy[Any]]
) -> st.SearchStrategy[Any]:
    """Valid items, the same with one to three fields spoilt or dropped or a key repeated, and any JSON."""
    fields = st.lists(st.sampled_from(list(hostile)), min_size=1, max_size=3, unique=True)
    dice = st.sampled_from([False] * 7 + [True])  # one in eight

    @st.composite
    def spoiled(draw: st.DrawFn) -> Any:
        item = draw(valid)
        names = draw(fields)
        for name in names:
            if draw(dice):
                item.pop(name, None)
            else:
                item[name] = draw(hostile[name])
        if draw(dice):  # a repeated key: the last one counts, as in any JSON object
            first = draw(ANY_SMALL)
            pairs = [(key, first if key == names[0] else value) for key, value in item.items()]
            return Pairs((*pairs, (names[0], item[names[0]]))) if names[0] in item else Pairs(tuple(pairs))
        return item

    return weighted((4, valid), (3, spoiled()), (1, json_values(3)))


def readings(points: Sequence[str], window: tuple[int, int]) -> st.SearchStrategy[Any]:
    """A valid reading, or one spoilt in the ways gateways get wrong."""
    extra = st.dictionaries(st.text(max_size=6), json_values(3), max_size=1)
    valid = st.builds(
        lambda fields, more: {**more, **fields},
        st.fixed_dictionaries(
            {"point": st.sampled_from(points), "ts": timestamps_in(window), "value": FINITE},
            optional={"quality": st.sampled_from(list(QUALITY))},
        ),
        st.one_of(st.just({}), st.just({}), st.just({}), extra),  # an extra field is ignored
    )
    hostile = {
        "point": st.one_of(BAD_IDENTIFIERS, IDENTIFIERS, ANY_SMALL),
        "ts": far_timestamps(window),
        "value": st.one_of(
            HUGE_NUMBERS,
            ANY_MEDIUM,
            st.integers(2, 40).map(nested),
            st.sampled_from([2_000, 10_000]).map(nested),  # beyond the parser: whole message
        ),
        "quality": st.one_of(st.sampled_from(["GOOD", "Good", "excellent", "", "good "]), ANY_SMALL),
    }
    return _spoilable(valid, hostile)


def events(zones: Sequence[str], window: tuple[int, int]) -> st.SearchStrategy[Any]:
    zone = st.sampled_from(zones)
    common = {"tag": IDENTIFIERS, "ts": timestamps_in(window)}
    valid = st.one_of(
        st.fixed_dictionaries({**common, "kind": st.sampled_from(["locate", "sos"]), "zone": zone}),
        st.fixed_dictionaries({**common, "kind": st.sampled_from(["exit", "sos"])}, optional={"zone": zone}),
    )
    hostile = {
        "tag": st.one_of(BAD_IDENTIFIERS, ANY_SMALL),
        "ts": far_timestamps(window),
        "kind": st.one_of(st.sampled_from(["enter", "LOCATE", "", "sos "]), ANY_SMALL),
        "zone": st.one_of(IDENTIFIERS, BAD_IDENTIFIERS, st.none(), ANY_SMALL),
    }
    return _spoilable(valid, hostile)


SEQS = weighted(  # mostly valid; sometimes negative, 2**63, a float, a string, a boolean
    (8, st.integers(0, 2**63 - 1)),
    (1, st.sampled_from([-1, 2**63, 1.0, "1", True, None, Raw("1e400")])),
    (1, ANY_SMALL),
)


def envelope(key: str, items: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """A batch around `items`; sometimes the envelope itself is wrong."""
    batch = st.lists(items, max_size=12)
    extra = st.dictionaries(st.text(max_size=6), ANY_MEDIUM, min_size=1, max_size=1)
    right = st.builds(lambda seq, items: {"seq": seq, key: items}, SEQS, batch)
    return weighted(
        (16, right),
        (1, st.builds(lambda more, message: {**more, **message}, extra, right)),  # more fields, ignored
        (1, st.builds(lambda items: {key: items}, batch)),  # no seq
        (1, st.builds(lambda seq, items: {"seq": seq, key: items}, SEQS, ANY_SMALL)),  # items not a list
        (1, json_values(4)),  # not an object, or one without the batch's keys
    )


BAD_BYTES = st.sampled_from([b"\xff", b"\xc3", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\x00", b"\x80", b"\xc0\x80"])


SPOILS = st.sampled_from(["keep"] * 35 + ["cut", "bytes", "bom", "size", "junk"])  # keep: also what shrinks to


@st.composite
def spoil_bytes(draw: st.DrawFn, payload: bytes) -> bytes:
    """Mostly the payload as written; sometimes cut, padded to 1 MiB and past, or spoilt by bytes
    that make it something else than UTF-8 JSON."""
    spoil = draw(SPOILS)
    if spoil == "cut" and payload:
        return payload[: draw(st.integers(0, len(payload) - 1))]
    if spoil == "bytes":
        at = draw(st.integers(0, len(payload)))
        return payload[:at] + draw(BAD_BYTES) + payload[at:]  # invalid UTF-8 or a NUL, anywhere
    if spoil == "bom":
        return b"\xef\xbb\xbf" + payload
    if spoil == "size":
        size = draw(st.sampled_from([MAX_PAYLOAD, MAX_PAYLOAD + 1, MAX_PAYLOAD + 4096]))
        return payload + b" " * max(0, size - len(payload))  # at, or just past, the limit
    if spoil == "junk":
        return draw(st.binary(max_size=64))
    return payload


def payloads(messages: st.SearchStrategy[Any]) -> st.SearchStrategy[bytes]:
    return messages.map(encode).flatmap(spoil_bytes)


def telemetry_payloads(points: Sequence[str], window: tuple[int, int]) -> st.SearchStrategy[bytes]:
    return payloads(envelope("readings", readings(points, window)))


def position_payloads(zones: Sequence[str], window: tuple[int, int]) -> st.SearchStrategy[bytes]:
    return payloads(envelope("events", events(zones, window)))


STATES = st.one_of(st.sampled_from(["online", "offline", "Online", "sleeping", ""]), ANY_SMALL)
STATUSES = weighted((3, st.builds(lambda state: {"state": state}, STATES)), (1, json_values(3)))


def status_payloads() -> st.SearchStrategy[bytes]:
    return payloads(STATUSES)


def topics() -> st.SearchStrategy[str]:
    part = st.one_of(IDENTIFIERS, BAD_IDENTIFIERS)
    channel = st.sampled_from(["telemetry", "positions", "status", "alerts", "Telemetry", ""])
    parts = st.tuples(st.sampled_from(["sw", "SW", ""]), st.sampled_from(["v1", "v2"]), part, part, channel)
    return st.one_of(
        parts.map("/".join),
        st.tuples(IDENTIFIERS, IDENTIFIERS, channel).map(lambda p: "sw/v1/" + "/".join(p)),
        st.lists(part, max_size=7).map("/".join),
        st.text(max_size=40),
    )


# ---------------------------------------------------------------------------------------------
# The reference decoder


@dataclass(frozen=True)
class Refused:
    """A whole message refused: reason and the start of its payload (None when oversize)."""

    reason: str
    item: str | None


@dataclass(frozen=True)
class Decoded:
    """A batch: its seq, the valid items (as decoded rows) in order, and (reason, item) per rejected one."""

    seq: int
    rows: list[tuple[Any, ...]]
    rejects: list[tuple[str, Any]]


class _Bad(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _has_surrogate(value: Any) -> bool:
    """A string anywhere in the value holding a lone surrogate (JSON text that is not Unicode)."""
    stack = [value]
    while stack:
        node = stack.pop()
        if isinstance(node, str):
            try:
                node.encode("utf-8")
            except UnicodeEncodeError:
                return True
        elif isinstance(node, list):
            stack.extend(node)
        elif isinstance(node, dict):
            stack.extend(node)
            stack.extend(node.values())
    return False


def head(payload: bytes) -> str:
    """What a rejected message keeps: its first 4,096 characters, invalid bytes replaced."""
    return payload.decode("utf-8", "replace")[:ITEM_CHARS]


def reference_json(payload: bytes) -> Any:
    """The payload's JSON value; raises _Bad(oversize | invalid_json)."""
    if len(payload) > MAX_PAYLOAD:
        raise _Bad("oversize")
    try:
        data = json.loads(payload.decode("utf-8"), parse_constant=_no_constants, object_pairs_hook=_last_wins)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise _Bad("invalid_json") from None
    if _has_surrogate(data):
        raise _Bad("invalid_json")
    return data


def _last_wins(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """An object as JSON parsers build it (a repeated key keeps its place and takes the last value);
    a value it overrides must still be Unicode."""
    result = dict(pairs)
    if len(result) < len(pairs) and _has_surrogate([value for _, value in pairs]):
        raise ValueError("lone surrogate in an overridden value")
    return result


_RFC3339 = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt]([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]{1,9}))?([Zz]|[+-][0-9]{2}:[0-9]{2})"
)


def reference_ts(ts: Any) -> int | None:
    """Epoch ms of a `ts`: an integer within int64, or RFC 3339 with an offset (fraction truncated to
    ms), or what `datetime.fromisoformat` reads with an offset (docs/protocol.md's fallback)."""
    if type(ts) is int:
        return ts if ts in INT64 else None
    if not isinstance(ts, str) or not (ts.isascii() and ts.isprintable()):
        return None
    match = _RFC3339.fullmatch(ts)
    if match:
        year, month, day, hour, minute, second = (int(g) for g in match.groups()[:6])
        fraction, zone = match.group(7) or "", match.group(8)
        offset = 0 if zone in "Zz" else (int(zone[1:3]) * 60 + int(zone[4:6])) * (-1 if zone[0] == "-" else 1)
        if year >= 1 and zone[1:3] <= "23" and zone[4:6] <= "59":
            try:
                local = datetime(year, month, day, hour, minute, second, tzinfo=UTC)
            except ValueError:
                return None
            ms = (local - EPOCH) // MS + int(fraction[:3].ljust(3, "0")) - offset * 60_000
            return ms
        return None
    return iso_reference(ts)


def _in_window(ts: Any, window: tuple[int, int]) -> int:
    ms = reference_ts(ts)
    if ms is None or not window[0] <= ms <= window[1]:
        raise _Bad("bad_timestamp")
    return ms


def _envelope(payload: bytes, key: str) -> tuple[int, list[Any]] | Refused:
    try:
        data = reference_json(payload)
    except _Bad as exc:
        return Refused(exc.reason, None if exc.reason == "oversize" else head(payload))
    seq = data.get("seq") if isinstance(data, dict) else None
    if type(seq) is not int or not 0 <= seq < 1 << 63 or not isinstance(data.get(key), list):
        return Refused("invalid_message", head(payload))
    return seq, data[key]


def _items(seq: int, items: list[Any], check: Any) -> Decoded:
    rows, rejects = [], []
    for item in items:
        try:
            rows.append(check(item))
        except _Bad as exc:
            rejects.append((exc.reason, item))
    return Decoded(seq, rows, rejects)


def reference_telemetry(payload: bytes, points: Mapping[str, int], window: tuple[int, int]) -> Decoded | Refused:
    """Rows are (point id, ts ms, value, quality code)."""
    envelope = _envelope(payload, "readings")
    if isinstance(envelope, Refused):
        return envelope

    def check(reading: Any) -> tuple[int, int, float, int]:
        if not isinstance(reading, dict) or not {"point", "ts", "value"} <= reading.keys():
            raise _Bad("invalid_reading")
        point = reading["point"]
        if not isinstance(point, str) or not IDENT.fullmatch(point):
            raise _Bad("invalid_reading")
        if point not in points:
            raise _Bad("unknown_point")
        ts = _in_window(reading["ts"], window)
        value = reading["value"]
        if not isinstance(value, int | float):
            raise _Bad("non_numeric_value")
        try:
            number = float(value)
        except OverflowError:
            raise _Bad("non_numeric_value") from None
        if not math.isfinite(number):
            raise _Bad("non_numeric_value")
        quality = reading.get("quality", "good")
        if not isinstance(quality, str) or quality not in QUALITY:
            raise _Bad("bad_quality")
        return points[point], ts, number, QUALITY[quality]

    return _items(*envelope, check)


def reference_positions(payload: bytes, zones: Collection[str], window: tuple[int, int]) -> Decoded | Refused:
    """Rows are (tag, ts ms, kind code, zone or None)."""
    envelope = _envelope(payload, "events")
    if isinstance(envelope, Refused):
        return envelope

    def check(event: Any) -> tuple[str, int, int, str | None]:
        if not isinstance(event, dict) or "ts" not in event:
            raise _Bad("invalid_event")
        tag, kind = event.get("tag"), event.get("kind")
        if not isinstance(tag, str) or not IDENT.fullmatch(tag) or not isinstance(kind, str) or kind not in KINDS:
            raise _Bad("invalid_event")
        zone = None if kind == "exit" else event.get("zone")  # an exit leaves the site, whatever its zone
        if (zone is None and kind == "locate") or (zone is not None and not isinstance(zone, str)):
            raise _Bad("invalid_event")
        if zone is not None and zone not in zones:
            raise _Bad("unknown_zone")
        return tag, _in_window(event["ts"], window), KINDS[kind], zone

    return _items(*envelope, check)


def reference_status(payload: bytes) -> str | Refused:
    try:
        data = reference_json(payload)
    except _Bad as exc:
        return Refused(exc.reason, None if exc.reason == "oversize" else head(payload))
    state = data.get("state") if isinstance(data, dict) else None
    return state if state in ("online", "offline") else Refused("bad_status", head(payload))


def reference_topic(topic: str) -> tuple[str, str, str] | None:
    parts = topic.split("/")
    if len(parts) != 5 or parts[:2] != ["sw", "v1"] or parts[4] not in ("telemetry", "positions", "status"):
        return None
    return (parts[2], parts[3], parts[4]) if IDENT.fullmatch(parts[2]) and IDENT.fullmatch(parts[3]) else None


def as_stored(item: Any) -> Any:
    """An item as its dead letter shows it: JSON has no infinity, so 1e400 reads back as null."""
    if isinstance(item, float) and not math.isfinite(item):
        return None
    if isinstance(item, list):
        return [as_stored(value) for value in item]
    if isinstance(item, dict):
        return {key: as_stored(value) for key, value in item.items()}
    return item


# ---------------------------------------------------------------------------------------------
# Judging sitewatch.protocol against the reference


def _same_rejects(rejects: Sequence[protocol.Reject], expected: list[tuple[str, Any]], reasons: frozenset[str]) -> None:
    assert [r.reason for r in rejects] == [reason for reason, _ in expected]
    for reject, (reason, item) in zip(rejects, expected, strict=True):
        assert reason in reasons and reject.detail
        assert reject.item is not None and json.loads(reject.item) == as_stored(item), (reject, item)


def _same_refusal(result: object, expected: Refused, reasons: frozenset[str]) -> None:
    assert isinstance(result, protocol.Reject), (result, expected)
    assert expected.reason in reasons and result.detail
    assert (result.reason, result.item) == (expected.reason, expected.item), (result, expected)


def _same_batch(
    result: object,
    expected: Decoded | Refused,
    columns: type[protocol.TelemetryColumns | protocol.PositionColumns],
    reasons: frozenset[str],
) -> None:
    if isinstance(expected, Refused):
        _same_refusal(result, expected, MESSAGE_REASONS)
        return
    assert isinstance(result, columns), (result, expected)
    assert result.seq == expected.seq
    if isinstance(result, protocol.TelemetryColumns):
        assert result.rows() == expected.rows
    else:
        rows = list(zip(result.tag, result.ts_ms.tolist(), result.kind.tolist(), result.zone, strict=True))
        assert rows == expected.rows
    _same_rejects(result.rejects, expected.rejects, reasons)


def check_telemetry(payload: bytes, points: Mapping[str, int], window: tuple[int, int]) -> Decoded | Refused:
    """Decode with sitewatch.protocol and assert it says what the reference says; the reference's answer."""
    result = protocol.decode_telemetry(payload, points, min_ts_ms=window[0], max_ts_ms=window[1])
    expected = reference_telemetry(payload, points, window)
    _same_batch(result, expected, protocol.TelemetryColumns, READING_REASONS)
    return expected


def check_positions(payload: bytes, zones: Collection[str], window: tuple[int, int]) -> Decoded | Refused:
    result = protocol.decode_positions(payload, zones, min_ts_ms=window[0], max_ts_ms=window[1])
    expected = reference_positions(payload, zones, window)
    _same_batch(result, expected, protocol.PositionColumns, EVENT_REASONS)
    return expected


def check_status(payload: bytes) -> None:
    result, expected = protocol.decode_status(payload), reference_status(payload)
    if isinstance(expected, Refused):
        _same_refusal(result, expected, STATUS_REASONS)
    else:
        assert result == expected


def check_topic(topic: str) -> None:
    parsed = protocol.parse_topic(topic)
    expected = reference_topic(topic)
    assert (None if parsed is None else (parsed.site, parsed.gateway, parsed.channel.name.lower())) == expected
