"""Decoders for the gateway → platform MQTT payloads of PROTOCOL.md §1.

Every ingested reading passes through `decode_telemetry`, so it is built for throughput: a strict
msgspec decode straight into typed structs, a few C-level passes to build numpy columns and a
vectorised RFC 3339 parser. Only a message that fails the strict decode takes the slower lenient
path, which checks item by item so that the valid part of a bad batch is always kept (§1).
"""

import re
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import IntEnum
from functools import lru_cache
from itertools import repeat
from typing import Annotated, Any, NamedTuple

import msgspec
import numpy as np
import numpy.typing as npt

IDENT_RE = re.compile(r"[A-Za-z0-9_.-]{1,64}")
"""Identifiers (site, gateway, point, zone, tag); use with `fullmatch`."""

MAX_PAYLOAD = 1 << 20
"""Largest accepted payload in bytes (§1: at most 1 MiB)."""

_ITEM_CHARS = 4096  # how much of a rejected whole message the dead letter keeps

# Reject reasons: stable values, listed by the dead-letter API.
INVALID_JSON = "invalid_json"
OVERSIZE = "oversize"
INVALID_MESSAGE = "invalid_message"
UNKNOWN_POINT = "unknown_point"
BAD_TIMESTAMP = "bad_timestamp"
NON_NUMERIC = "non_numeric_value"
BAD_QUALITY = "bad_quality"
INVALID_READING = "invalid_reading"
UNKNOWN_ZONE = "unknown_zone"
INVALID_EVENT = "invalid_event"
BAD_STATUS = "bad_status"


class Channel(IntEnum):
    """Topic channel; the value is what `ingest_messages.channel` stores."""

    TELEMETRY = 0
    POSITIONS = 1
    STATUS = 2


class Topic(NamedTuple):
    site: str
    gateway: str
    channel: Channel


_CHANNELS = {channel.name.lower(): channel for channel in Channel}


def parse_topic(topic: str) -> Topic | None:
    """Split `sw/v1/{site}/{gateway}/{channel}`; None for any other topic, so callers can ignore it."""
    parts = topic.split("/")
    if len(parts) != 5 or parts[0] != "sw" or parts[1] != "v1":
        return None
    _, _, site, gateway, name = parts
    channel = _CHANNELS.get(name)
    if channel is None or not IDENT_RE.fullmatch(site) or not IDENT_RE.fullmatch(gateway):
        return None
    return Topic(site, gateway, channel)


@dataclass(frozen=True, slots=True)
class Reject:
    """A dead letter: why a message or one of its items was refused, and what it was."""

    reason: str
    detail: str
    item: str | None  # the item as compact JSON, the (truncated) message, or None when oversize


@dataclass(slots=True)
class TelemetryColumns:
    """The valid readings of a batch, column-wise and in input order, plus a reject per bad one."""

    seq: int
    point_id: npt.NDArray[np.int32]
    ts_ms: npt.NDArray[np.int64]  # Unix epoch milliseconds, UTC
    value: npt.NDArray[np.float64]
    quality: npt.NDArray[np.int16]  # good 0, uncertain 1, bad 2
    rejects: list[Reject]

    def rows(self) -> list[tuple[int, int, float, int]]:
        """(point id, ts ms, value, quality) per valid reading: for comparing decoders."""
        columns = (self.point_id.tolist(), self.ts_ms.tolist(), self.value.tolist(), self.quality.tolist())
        return list(zip(*columns, strict=True))


@dataclass(slots=True)
class PositionColumns:
    """The valid events of a positioning batch, column-wise and in input order."""

    seq: int
    tag: list[str]
    ts_ms: npt.NDArray[np.int64]
    kind: npt.NDArray[np.int16]  # locate 0, exit 1, sos 2
    zone: list[str | None]
    rejects: list[Reject]


_QUALITY = {"good": 0, "uncertain": 1, "bad": 2}
_KIND = {"locate": 0, "exit": 1, "sos": 2}
_STATES = ("online", "offline")


class _Reading(msgspec.Struct, gc=False):
    """Strict shape of a reading: a JSON type mismatch sends the message to the lenient path.

    Values are checked afterwards, in bulk: identifiers, timestamps and quality names.
    """

    point: str
    ts: str | int
    value: float | bool  # msgspec's float takes JSON integers too
    quality: str = "good"


class _Batch(msgspec.Struct, gc=False):
    seq: Annotated[int, msgspec.Meta(ge=0, le=(1 << 63) - 1)]
    readings: list[_Reading]


_STRICT = msgspec.json.Decoder(_Batch)
# float_hook=float turns an out-of-range number such as 1e400 into inf (a per-item reject)
# instead of failing the whole message.
_LENIENT = msgspec.json.Decoder(float_hook=float)
_DECODE_ERRORS = (msgspec.DecodeError, UnicodeDecodeError, RecursionError)

_Bad = tuple[int, str, str]  # (index in the batch, reason, detail)


class _Invalid(Exception):
    """Raised by the validators; carries the reject reason."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(reason, detail)
        self.reason = reason
        self.detail = detail

    def reject(self, payload: bytes) -> Reject:
        """The whole-message reject: keeps the start of the payload, except when it is oversize."""
        text = None if self.reason == OVERSIZE else _payload_text(payload)
        return Reject(self.reason, self.detail, text)


def _payload_text(payload: bytes) -> str:
    # 4 bytes per character at most, so this slice holds the first _ITEM_CHARS characters.
    return payload[: 4 * _ITEM_CHARS].decode("utf-8", "replace")[:_ITEM_CHARS]


def _compact(item: Any) -> str:
    return msgspec.json.encode(item).decode()


def _json(payload: bytes) -> Any:
    if len(payload) > MAX_PAYLOAD:
        raise _Invalid(OVERSIZE, f"payload is {len(payload)} bytes, the limit is {MAX_PAYLOAD}")
    try:
        return _LENIENT.decode(payload)
    except _DECODE_ERRORS as exc:
        raise _Invalid(INVALID_JSON, str(exc)) from None


def _message(payload: bytes, key: str) -> tuple[int, list[Any]]:
    """Parse a batch leniently and check its envelope: `seq` and the list of items under `key`."""
    data = _json(payload)
    if not isinstance(data, dict):
        raise _Invalid(INVALID_MESSAGE, "message must be a JSON object")
    seq = data.get("seq")
    if not isinstance(seq, int) or isinstance(seq, bool) or not 0 <= seq < 1 << 63:
        raise _Invalid(INVALID_MESSAGE, "seq must be an integer in [0, 2**63)")
    items = data.get(key)
    if not isinstance(items, list):
        raise _Invalid(INVALID_MESSAGE, f"{key} must be a list")
    return seq, items


def _validate(
    items: list[Any], check: Callable[[Any], tuple[Any, ...]]
) -> tuple[list[int], list[tuple[Any, ...]], list[_Bad]]:
    """Run `check` on every item: the indices and fields of those that pass, and the failures."""
    index: list[int] = []
    rows: list[tuple[Any, ...]] = []
    bad: list[_Bad] = []
    for i, item in enumerate(items):
        try:
            rows.append(check(item))
        except _Invalid as exc:
            bad.append((i, exc.reason, exc.detail))
        else:
            index.append(i)
    return index, rows, bad


def _transpose(rows: Iterable[tuple[Any, ...]], width: int) -> list[tuple[Any, ...]]:
    return list(zip(*rows, strict=True)) or [()] * width


def _rejects(bad: list[_Bad], items: list[Any]) -> list[Reject]:
    """Rejects in input order, each with its item as compact JSON."""
    return [Reject(reason, detail, _compact(items[i])) for i, reason, detail in sorted(bad)]


def _stamp(ts: Any) -> str | int:
    """Pass str/int timestamps on; anything else becomes "", which fails to parse."""
    return ts if isinstance(ts, str | int) and not isinstance(ts, bool) else ""


def _timestamps(
    stamps: Sequence[str | int], min_ts_ms: int, max_ts_ms: int
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.bool_], npt.NDArray[np.bool_]]:
    """Parse and window-check: (ms, parsed, parsed and inside [min_ts_ms, max_ts_ms])."""
    ts, parsed = parse_timestamps(stamps)
    return ts, parsed, parsed & (ts >= min_ts_ms) & (ts <= max_ts_ms)


def _ts_detail(parsed: bool, ts: int, min_ts_ms: int, max_ts_ms: int) -> str:
    if not parsed:
        return "ts must be an RFC 3339 date-time with offset or integer epoch milliseconds"
    return f"ts {ts} ms is outside the accepted window [{min_ts_ms}, {max_ts_ms}]"


# ---------------------------------------------------------------------------------------------
# Telemetry


def decode_telemetry(
    payload: bytes, points: Mapping[str, int], *, min_ts_ms: int, max_ts_ms: int
) -> TelemetryColumns | Reject:
    """Decode a telemetry batch into columns; `points` maps the site's point codes to dense ids.

    `points` comes from the validated catalog, so a code found there is a valid identifier.
    A reading gets at most one reject, checked in this order: invalid reading, unknown point,
    bad timestamp, non-numeric value, bad quality.
    """
    if len(payload) <= MAX_PAYLOAD and _utf8(payload):
        try:
            batch = _STRICT.decode(payload)
        except _DECODE_ERRORS:
            pass  # the lenient path below says what is wrong and keeps what is right
        else:
            rs = batch.readings  # list comprehensions beat attrgetter on structs
            return _telemetry(
                batch.seq,
                len(rs),
                [r.point for r in rs],
                [r.ts for r in rs],
                [r.value for r in rs],
                map(_QUALITY.get, [r.quality for r in rs], repeat(-1, len(rs))),
                points,
                min_ts_ms,
                max_ts_ms,
                lambda: _strict_items(payload, batch),
            )
    try:
        seq, readings = _message(payload, "readings")
    except _Invalid as exc:
        return exc.reject(payload)
    index, rows, bad = _validate(readings, _reading_fields)
    codes, stamps, values, quality = _transpose(rows, 4)
    return _telemetry(
        seq,
        len(rows),
        codes,
        stamps,
        values,
        quality,
        points,
        min_ts_ms,
        max_ts_ms,
        lambda: readings,
        index,
        bad,
    )


def _utf8(payload: bytes) -> bool:
    """Whether the payload is UTF-8: the strict decoder skips unknown fields without looking."""
    if payload.isascii():  # the usual case, and much faster than decoding
        return True
    try:
        payload.decode()
    except UnicodeDecodeError:
        return False
    return True


def _strict_items(payload: bytes, batch: _Batch) -> list[Any]:
    """The readings of a strictly decoded batch as parsed JSON, for its rejects.

    The strict decoder skips unknown fields; one may hold what the lenient decoder refuses (an
    integer of more than 4,300 digits). The rejects then show the readings as decoded instead of
    losing the batch.
    """
    try:
        readings: list[Any] = _LENIENT.decode(payload)["readings"]
    except _DECODE_ERRORS:
        return [msgspec.structs.asdict(reading) for reading in batch.readings]
    return readings


def _reading_fields(reading: Any) -> tuple[str, str | int, float, int]:
    """Lenient per-reading check of what the later vector checks cannot see (shape, types)."""
    if not isinstance(reading, dict):
        raise _Invalid(INVALID_READING, "reading must be a JSON object")
    missing = [name for name in ("point", "ts", "value") if name not in reading]
    if missing:
        raise _Invalid(INVALID_READING, f"reading lacks {', '.join(missing)}")
    point = reading["point"]
    if not isinstance(point, str):
        raise _Invalid(INVALID_READING, "point must be an identifier string")
    quality = reading.get("quality", "good")
    code = _QUALITY.get(quality, -1) if isinstance(quality, str) else -1  # -1 is refused later
    return point, _stamp(reading["ts"]), _number(reading["value"]), code


def _number(value: Any) -> float:
    """JSON numbers and booleans as float; NaN (rejected as non-numeric later) for anything else."""
    if isinstance(value, int | float):
        try:
            return float(value)
        except OverflowError:  # an integer beyond float range
            pass
    return float("nan")


def _telemetry(
    seq: int,
    n: int,
    codes: Iterable[str],
    stamps: Sequence[str | int],
    values: Iterable[float],
    quality: Iterable[int],
    points: Mapping[str, int],
    min_ts_ms: int,
    max_ts_ms: int,
    items: Callable[[], list[Any]],
    index: Sequence[int] | None = None,
    bad: list[_Bad] | None = None,
) -> TelemetryColumns:
    """Build the columns of n readings with whole-batch checks; Python only visits bad readings.

    `quality` holds codes (-1 if invalid), `values` NaN for a non-number. `items` gives the
    readings as parsed JSON, for the rejects; `index` their positions there when the lenient
    path already set some aside as `bad`.
    """
    point_id = np.fromiter(map(points.get, codes, repeat(-1, n)), np.int32, n)
    ts, parsed, ts_ok = _timestamps(stamps, min_ts_ms, max_ts_ms)
    value = np.fromiter(values, np.float64, n)
    qual = np.fromiter(quality, np.int16, n)
    finite = np.isfinite(value)
    ok = ts_ok & finite & (point_id >= 0) & (qual >= 0)
    if ok.all() and not bad:
        return TelemetryColumns(seq, point_id, ts, value, qual, [])
    raw = items()
    bad = bad or []
    where = range(n) if index is None else index
    for i in np.flatnonzero(~ok).tolist():
        if point_id[i] < 0:
            code = raw[where[i]]["point"]
            if IDENT_RE.fullmatch(code):
                problem = UNKNOWN_POINT, f"point {code!r} is not registered for this site"
            else:
                problem = INVALID_READING, "point is not a valid identifier"
        elif not ts_ok[i]:
            problem = BAD_TIMESTAMP, _ts_detail(bool(parsed[i]), int(ts[i]), min_ts_ms, max_ts_ms)
        elif not finite[i]:
            problem = NON_NUMERIC, "value must be a finite number (booleans count as 1/0)"
        else:
            problem = BAD_QUALITY, "quality must be good, uncertain or bad"
        bad.append((where[i], *problem))
    return TelemetryColumns(seq, point_id[ok], ts[ok], value[ok], qual[ok], _rejects(bad, raw))


# ---------------------------------------------------------------------------------------------
# Positions and status


def decode_positions(
    payload: bytes, zones: Collection[str], *, min_ts_ms: int, max_ts_ms: int
) -> PositionColumns | Reject:
    """Decode a positioning batch; `zones` holds the site's zone codes.

    An event gets at most one reject: invalid event, unknown zone, then bad timestamp.
    """
    try:
        seq, events = _message(payload, "events")
    except _Invalid as exc:
        return exc.reject(payload)
    index, rows, bad = _validate(events, lambda event: _event_fields(event, zones))
    tags, stamps, kinds, zone = _transpose(rows, 4)
    ts, parsed, ok = _timestamps(stamps, min_ts_ms, max_ts_ms)
    bad += [
        (index[i], BAD_TIMESTAMP, _ts_detail(bool(parsed[i]), int(ts[i]), min_ts_ms, max_ts_ms))
        for i in np.flatnonzero(~ok).tolist()
    ]
    keep = ok.tolist()
    return PositionColumns(
        seq,
        [tag for tag, k in zip(tags, keep, strict=True) if k],
        ts[ok],
        np.array(kinds, dtype=np.int16)[ok],
        [z for z, k in zip(zone, keep, strict=True) if k],
        _rejects(bad, events),
    )


def _event_fields(event: Any, zones: Collection[str]) -> tuple[str, str | int, int, str | None]:
    if not isinstance(event, dict) or "ts" not in event:
        raise _Invalid(INVALID_EVENT, "event must be a JSON object with tag, ts and kind")
    tag = event.get("tag")
    if not isinstance(tag, str) or not IDENT_RE.fullmatch(tag):
        raise _Invalid(INVALID_EVENT, "tag must be an identifier")
    kind = event.get("kind")
    if not isinstance(kind, str) or kind not in _KIND:
        raise _Invalid(INVALID_EVENT, "kind must be locate, exit or sos")
    zone = None if kind == "exit" else event.get("zone")
    if zone is None and kind == "locate":
        raise _Invalid(INVALID_EVENT, "locate needs a zone")
    if zone is not None:
        if not isinstance(zone, str):
            raise _Invalid(INVALID_EVENT, "zone must be a string")
        if zone not in zones:
            raise _Invalid(UNKNOWN_ZONE, f"zone {zone!r} is not registered for this site")
    return tag, _stamp(event["ts"]), _KIND[kind], zone


def decode_status(payload: bytes) -> str | Reject:
    """Decode a status message: "online" or "offline"."""
    try:
        data = _json(payload)
    except _Invalid as exc:
        return exc.reject(payload)
    state = data.get("state") if isinstance(data, dict) else None
    if isinstance(state, str) and state in _STATES:
        return state
    detail = 'status must be {"state": "online"} or {"state": "offline"}'
    return Reject(BAD_STATUS, detail, _payload_text(payload))


# ---------------------------------------------------------------------------------------------
# Timestamps

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)
_INT64 = range(-(1 << 63), 1 << 63)
_ENCODER = msgspec.json.Encoder()
_MAX_INT_DIGITS = 15  # the most a float64 matrix product adds up exactly


def parse_timestamps(raw: Sequence[str | int]) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.bool_]]:
    """Timestamps as Unix epoch ms (int64) and an ok mask.

    Integers are epoch ms (within int64). Strings are RFC 3339 with a mandatory offset ("Z", "z"
    or ±HH:MM), "T" or "t" between date and time and an optional 1-9 digit fraction, truncated
    to ms. Both are parsed in bulk: one JSON encode of the list gives a byte buffer in which
    every item is a digit run or a quoted string; items are grouped by layout (length, and
    whether a string ends in Z) and each layout is checked and decoded by byte columns with
    numpy. What that does not take (a space separator, a longer fraction, a negative integer,
    ...) is retried one by one with `datetime.fromisoformat`, which must find an offset. Leap
    seconds (:60) are rejected, as `datetime` has none.
    """
    n = len(raw)
    ms = np.zeros(n, dtype=np.int64)
    ok = np.zeros(n, dtype=np.bool_)
    if not n:
        return ms, ok
    if all(type(x) is int for x in raw):  # epoch ms, the common gateway form: nothing to parse
        try:
            return np.array(raw, dtype=np.int64), ~ok
        except OverflowError:  # beyond int64: item by item below
            pass
    data, start, key = _json_items(raw)
    for group in set(key.tolist()):  # a batch usually has one or two
        layout = _layout(group)
        if layout is not None:
            rows = np.flatnonzero(key == group)
            ms[rows], ok[rows] = layout.parse(_columns(data, start[rows], layout.width))
    if not ok.all():
        for i in np.flatnonzero(~ok).tolist():
            value = _parse_scalar(raw[i])
            if value is not None:
                ms[i], ok[i] = value, True
    return ms, ok


def _json_items(raw: Sequence[str | int]) -> tuple[bytes, npt.NDArray[np.intp], npt.NDArray[np.intp]]:
    """JSON-encode the list; per item, where it starts and its key: length * 2 + ends in Z or z.

    Commas split the items unless a string holds one or needs escapes (which hide quotes):
    such strings, and any item that is neither str nor int, are blanked first; they are not
    timestamps the vector path could take anyway.
    """
    data = _ENCODER.encode(raw if isinstance(raw, list | tuple) else list(raw))
    bounds = _commas(data)
    if bounds.size != len(raw) + 1 or b"\\" in data:
        data = _ENCODER.encode([_plain(item) for item in raw])
        bounds = _commas(data)
    start, end = bounds[:-1] + 1, bounds[1:]
    zulu = (np.frombuffer(data, dtype=np.uint8)[end - 2] | 0x20) == ord("z")  # before a closing quote
    return data, start, (end - start) * 2 + zulu


def _commas(data: bytes) -> npt.NDArray[np.intp]:
    """Positions of the opening bracket, the commas and the closing bracket."""
    sep = np.frombuffer(data, dtype=np.uint8) == ord(",")
    sep[0] = sep[-1] = True
    return np.flatnonzero(sep)


def _plain(item: object) -> object:
    if type(item) is int or (isinstance(item, str) and item.isprintable() and not any(c in item for c in ',"\\')):
        return item
    return None


def _columns(data: bytes, start: npt.NDArray[np.intp], width: int) -> npt.NDArray[np.uint8]:
    """The `width` bytes from each start, as a C-contiguous (width × items) matrix."""
    windows = np.ndarray((len(data) - width + 1, width), np.uint8, data, 0, (1, 1))
    return np.ascontiguousarray(windows[start].T)


def _parse_scalar(item: object) -> int | None:
    """Per-item fallback for what the vector path does not take."""
    if type(item) is int:
        return item if item in _INT64 else None
    return _parse_one(item) if isinstance(item, str) else None


def _parse_one(text: str) -> int | None:
    """Printable ASCII that `datetime.fromisoformat` reads, with an offset."""
    if not (text.isascii() and text.isprintable()):
        return None
    if text.endswith("z"):  # RFC 3339 allows it; fromisoformat (3.11) does not
        text = text[:-1] + "Z"
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        return None
    if when.tzinfo is None:
        return None
    return (when - _EPOCH) // _MS


class _Layout:
    """A fixed byte layout: the range each column must be in, and weights from digits to fields.

    Pattern letters: "d" a digit, "s" an offset sign, "t" and "z" either case of T and Z (their
    columns are OR-ed with 0x20, which maps exactly T and t to t), anything else itself. Each
    weight row is one field: the sum of its digits times their place values.
    """

    def __init__(self, pattern: str, weights: npt.NDArray[np.float64]) -> None:
        ranges = {"d": "09", "s": "+-", "t": "tt", "z": "zz"}
        lo, hi = zip(*(ranges.get(c, c + c) for c in pattern), strict=True)
        self.width = len(pattern)
        self.lo = np.array([[ord(c)] for c in lo], dtype=np.uint8)
        self.span = np.array([[ord(b) - ord(a)] for a, b in zip(lo, hi, strict=True)], dtype=np.uint8)
        self.fold = np.array([[0x20 if c in "tz" else 0] for c in pattern], dtype=np.uint8)
        self.weights = weights
        self.bias = ord("0") * weights.sum(axis=1, keepdims=True)

    def fields(self, chars: npt.NDArray[np.uint8]) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.bool_]]:
        """The fields of each column of `chars`, and whether its bytes fit (uint8 wraps below lo).

        One float64 matrix product: exact, as every partial sum is an integer below 2**53.
        """
        ok = np.logical_and.reduce(((chars | self.fold) - self.lo) <= self.span, axis=0)
        return (self.weights @ chars - self.bias).astype(np.int64), ok

    def parse(self, chars: npt.NDArray[np.uint8]) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.bool_]]:
        """Integers: one field, the value."""
        fields, ok = self.fields(chars)
        return fields[0], ok


# Range-checked date fields (rows 0-7 of a date layout's weights), as lo and hi - lo:
# year month day hour minute second offset-hours offset-minutes.
_FIELD_LO = np.array([[1], [1], [1], [0], [0], [0], [0], [0]], dtype=np.int64)
_FIELD_SPAN = np.array([[9998], [11], [30], [23], [59], [59], [23], [59]], dtype=np.uint64)


class _DateLayout(_Layout):
    """A JSON string `"YYYY-MM-DDTHH:MM:SS[.f{digits}](Z|±HH:MM)"`, quotes included.

    Beyond the range-checked fields, the weights give year * 12 + month (the index into the
    calendar tables), the ms from the month's day 0 to the local time, the offset in ms and,
    through its bias, the sign byte minus ',' (-1 for '+', 1 for '-', 0 for ',', refused).
    """

    def __init__(self, digits: int, zulu: bool) -> None:
        pattern = '"dddd-dd-ddtdd:dd:dd' + ("." + "d" * digits if digits else "") + ('z"' if zulu else 'sdd:dd"')
        self.zulu = zulu
        weights = np.zeros((12, len(pattern)), dtype=np.float64)

        def field(row: int, start: int, places: Sequence[int], unit: int = 1) -> None:
            weights[row, start : start + len(places)] += np.multiply(places, unit)

        field(0, 1, (1000, 100, 10, 1))  # year
        field(1, 6, (10, 1))  # month
        field(8, 1, (1000, 100, 10, 1), 12)
        field(8, 6, (10, 1))
        for row, start, unit in ((2, 9, 86_400_000), (3, 12, 3_600_000), (4, 15, 60_000), (5, 18, 1000)):
            field(row, start, (10, 1))
            field(9, start, (10, 1), unit)
        field(9, 21, (100, 10, 1)[:digits])
        if not zulu:
            sign = pattern.index("s")
            for row, start, unit in ((6, sign + 1, 3_600_000), (7, sign + 4, 60_000)):
                field(row, start, (10, 1))
                field(10, start, (10, 1), unit)
            field(11, sign, (1,))
        super().__init__(pattern, weights)
        if not zulu:
            self.bias[11] = ord(",")  # instead of ord("0"): the sign row is its byte minus ','

    def parse(self, chars: npt.NDArray[np.uint8]) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.bool_]]:
        fields, ok = self.fields(chars)
        # lo <= field <= hi as one unsigned comparison: below lo wraps to a huge value.
        ok &= np.logical_and.reduce((fields[:8] - _FIELD_LO).view(np.uint64) <= _FIELD_SPAN, axis=0)
        index, local, offset, sign = fields[8:]
        ok &= fields[2] <= _MONTH_DAYS.take(index, mode="clip")
        ms = _MONTH_MS.take(index, mode="clip") + local
        if not self.zulu:
            ok &= sign != 0
            ms += sign * offset
        return ms, ok


@lru_cache(maxsize=64)
def _layout(key: int) -> _Layout | None:
    """The layout for JSON items with this key (length * 2 + ends in Z); None if the vector path has none."""
    length, zulu = key >> 1, bool(key & 1)
    if not zulu and length <= _MAX_INT_DIGITS:
        places = (10.0 ** np.arange(length - 1, -1, -1)).astype(np.float64)
        return _Layout("d" * length, places[None])
    base = 22 if zulu else 27  # a quoted string without a fraction
    if not (length == base or base + 2 <= length <= base + 10):
        return None
    return _DateLayout(max(length - base - 1, 0), zulu)


def _days_from_civil(
    year: npt.NDArray[np.int64], month: npt.NDArray[np.int64], day: npt.NDArray[np.int64]
) -> npt.NDArray[np.int64]:
    """Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm)."""
    year = year - (month <= 2)
    era = year // 400
    year_of_era = year - era * 400
    day_of_year = (153 * ((month + 9) % 12) + 2) // 5 + day - 1
    day_of_era = year_of_era * 365 + year_of_era // 4 - year_of_era // 100 + day_of_year
    days: npt.NDArray[np.int64] = era * 146_097 + day_of_era - 719_468
    return days


def _calendar() -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int8]]:
    """By year * 12 + month (years 0-9999): epoch ms at the month's day 0, and its length in days.

    Indices whose month is out of range alias other months; the range check refuses those rows.
    """
    year = np.repeat(np.arange(10_000, dtype=np.int64), 12)
    month = np.tile(np.arange(1, 13, dtype=np.int64), 10_000)
    first = _days_from_civil(year, month, np.ones_like(year))
    following = _days_from_civil(year + month // 12, month % 12 + 1, np.ones_like(year))
    start = np.zeros(10_000 * 12 + 1, dtype=np.int64)
    length = np.zeros(start.size, dtype=np.int8)
    start[year * 12 + month] = (first - 1) * 86_400_000
    length[year * 12 + month] = following - first
    return start, length


_MONTH_MS, _MONTH_DAYS = _calendar()
