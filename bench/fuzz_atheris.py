"""Coverage-guided fuzzing of the MQTT decode path with atheris (libFuzzer), run by `make soak-fuzz`.

Each input's first byte picks a target, the rest is the payload (or topic):
`protocol.decode_telemetry`, `decode_positions`, `decode_status` or `parse_topic`. An input fails
when the decoder raises, or says something else than the reference decoder of tests/hostile.py
(the same oracle as the hypothesis tests). Where the payload reaches a parser limit that the
reference does not model (nesting deeper than 500, a number of more than 4,000 digits), only the
first holds: nothing raises. libFuzzer starts from a seed corpus of valid and classic hostile
messages and a dictionary of the protocol's tokens.

    .venv/bin/python bench/fuzz_atheris.py [RUNS]      # default 300,000 inputs

A failing input is written to var/fuzz/ (libFuzzer's crash-* file) and the run stops, exit 1.
"""

from __future__ import annotations

import re
import sys
import tempfile
from pathlib import Path

import atheris

with atheris.instrument_imports():
    from sitewatch import protocol  # noqa: F401  (instrumented: imported first here, used via tests.hostile)

from tests.hostile import check_positions, check_status, check_telemetry, check_topic

POINTS = {"GT-101": 7, "ESV-01.fb": 3, "P_2": 11}
ZONES = frozenset({"WF-302", "WF-303"})
T0 = 1_763_774_102_120
WINDOW = (T0 - 86_400_000, T0 + 86_400_000)
ARTIFACTS = Path("var/fuzz")

SEEDS = [
    b'\x00{"seq": 1042, "readings": [{"point": "GT-101", "ts": "2025-11-22T09:15:02.120+08:00", "value": 18.5},'
    b' {"point": "ESV-01.fb", "ts": 1763774102120, "value": 1, "quality": "good"}]}',
    b'\x00{"seq": 1, "readings": [{"point": "P_2", "ts": 1763774102120, "value": 1e400, "quality": "bad"}, 7]}',
    b'\x00{"seq": 2, "readings": [{"point": "GT 101", "ts": "2025-11-22t01:15:02.123456789z", "value": true}]}',
    b'\x01{"seq": 77, "events": [{"tag": "T-00017", "ts": 1763774102120, "kind": "locate", "zone": "WF-302"},'
    b' {"tag": "T-00018", "ts": 1763774102500, "kind": "exit"}, {"tag": "T-9", "ts": 1, "kind": "sos"}]}',
    b'\x02{"state": "online"}',
    b'\x02{"state": "offline", "since": 1}',
    b"\x03sw/v1/MINE-A/GW-1/telemetry",
    b"\x03sw/v1/MINE-A/GW-1/status",
]
TOKENS = [
    '"seq"', '"readings"', '"events"', '"point"', '"ts"', '"value"', '"quality"', '"good"', '"uncertain"',
    '"bad"', '"tag"', '"kind"', '"zone"', '"locate"', '"exit"', '"sos"', '"state"', '"online"', '"offline"',
    '"GT-101"', '"P_2"', '"WF-302"', "NaN", "Infinity", "1e400", "9223372036854775808", "true", "null",
    '"2025-11-22T09:15:02.120+08:00"', '"2025-11-22T01:15:02Z"', "1763774102120", "\\u0000", "\\ud800",
    "sw/v1/", "/telemetry", "/positions", "/status",
]  # fmt: skip

_DEEP = re.compile(rb"[\[{]{500}")
_LONG_NUMBER = re.compile(rb"[0-9]{4000}")


def _at_parser_limit(payload: bytes) -> bool:
    return bool(_DEEP.search(payload) or _LONG_NUMBER.search(payload))


def _entry(token: str) -> str:
    """A libFuzzer dictionary line: the token quoted, anything but plain characters as \\xNN."""
    return '"' + "".join(c if c.isalnum() or c in "-_.:/+ " else f"\\x{ord(c):02x}" for c in token) + '"'


def one_input(data: bytes) -> None:
    if not data:
        return
    target, payload = data[0] % 4, data[1:]
    try:
        if target == 0:
            check_telemetry(payload, POINTS, WINDOW)
        elif target == 1:
            check_positions(payload, ZONES, WINDOW)
        elif target == 2:
            check_status(payload)
        else:
            check_topic(payload.decode("utf-8", "replace"))
    except AssertionError:
        if not _at_parser_limit(payload):
            raise


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 300_000
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="sitewatch-fuzz-"))
    corpus = work / "corpus"
    corpus.mkdir()
    for i, seed in enumerate(SEEDS):
        (corpus / f"seed-{i}").write_bytes(seed)
    dictionary = work / "tokens.dict"
    dictionary.write_text("".join(f"{_entry(token)}\n" for token in TOKENS))
    args = [
        sys.argv[0],
        str(corpus),
        f"-runs={runs}",
        "-max_len=8192",
        f"-dict={dictionary}",
        f"-artifact_prefix={ARTIFACTS}/",
        "-print_final_stats=1",
    ]
    atheris.Setup(args, one_input)
    atheris.Fuzz()  # libFuzzer prints "Done N runs in S second(s)" and exits: 0, or 1 on a failing input


if __name__ == "__main__":
    main()
