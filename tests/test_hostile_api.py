"""Schemathesis against the API's own OpenAPI document (issue 8): every operation, for every role
(admin, an operator limited to one site, an enterprise, no token), with valid and invalid
requests: no 5xx, no status code, content type, header or body that contradicts the document.

`GET /alerts/stream` is an endless Server-Sent Events response, which schemathesis would wait on
forever: it is called here for its status and content type only. `DELETE /tokens/{token_id}` is
never sent a numeric id, so that a fuzzed request cannot revoke a token the session uses.

`make test` sends a few examples per operation, mode and role; `make soak-fuzz` sets
`SITEWATCH_API_FUZZ_EXAMPLES` for a longer run (docs/reliability.md).
"""

from __future__ import annotations

import os
from typing import Any

import httpx
import hypothesis.errors
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import Case, GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.conftest import StackHandle, threshold_site
from tests.test_ingest import now_ms

EXAMPLES = int(os.environ.get("SITEWATCH_API_FUZZ_EXAMPLES", "0")) or 4
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
ROLES = ["admin", "operator", "enterprise", "anonymous"]
STREAM = "/api/v1/alerts/stream"


@pytest.fixture(scope="module")
def api_schema(stack: StackHandle) -> Any:
    return schemathesis.openapi.from_url(f"{stack.api}/openapi.json")


@pytest.fixture(scope="module")
def site(stack: StackHandle) -> str:
    """A site with data: readings, an alert, dead letters."""
    code = threshold_site(stack, "FUZZ")
    gw = stack.gateway(code, "GW-1", "gw-secret-1")
    t0 = now_ms()
    gw.flush([gw.telemetry([{"point": "P0", "ts": t0 + i, "value": 60.0 + i} for i in range(5)])])
    gw.flush([gw.publish_raw("telemetry", b'{"seq": 99, "readings": [{"point": "NOPE"')])
    gw.close()
    return code


@pytest.fixture(scope="module")
def headers(stack: StackHandle, site: str) -> dict[str, dict[str, str]]:
    """The Authorization header of each role; the operator's token is limited to `site`."""
    tokens = {
        "admin": stack.token,
        "operator": stack.token_for("operator", "--sites", site),
        "enterprise": stack.token_for("enterprise", "--enterprise", "ENT-T"),
    }
    return {role: {"Authorization": f"Bearer {token}"} for role, token in tokens.items()} | {"anonymous": {}}


def _safe(case: Case) -> bool:
    token_id = (case.path_parameters or {}).get("token_id")
    return not (isinstance(token_id, str) and token_id.isdigit())


def _fuzz(api: str, operation: Any, mode: GenerationMode, headers: dict[str, str]) -> str | None:
    """Run one operation in one mode; what schemathesis found, or None."""

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode).filter(_safe))
    def run(case: Case) -> None:
        response = case.call(base_url=api, headers=headers, timeout=30)
        case.validate_response(response, checks=CHECKS, headers=headers)

    try:
        run()
    except hypothesis.errors.Unsatisfiable:  # nothing invalid to send (no parameters, no body)
        return None
    except (Exception, BaseExceptionGroup) as exc:  # schemathesis raises a FailureGroup
        return f"{operation.label} ({mode.value}): {exc}"
    return None


@pytest.mark.parametrize("role", ROLES)
def test_every_operation_conforms_to_the_document(
    stack: StackHandle, api_schema: Any, headers: dict[str, dict[str, str]], role: str
) -> None:
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) >= 25
    failures = [
        failure
        for operation in operations
        if operation.path != STREAM
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
        if (failure := _fuzz(stack.api, operation, mode, headers[role])) is not None
    ]
    assert not failures, "\n\n".join(failures)


@pytest.mark.parametrize("role", ROLES)
def test_alert_stream_answers_as_documented(
    stack: StackHandle, api_schema: Any, headers: dict[str, dict[str, str]], role: str
) -> None:
    declared = set(api_schema.raw_schema["paths"][STREAM]["get"]["responses"])
    for params in ({}, {"after": "0"}, {"after": "x"}, {"after": str(2**70)}):
        with (
            httpx.Client(base_url=stack.api, headers=headers[role], timeout=10) as client,
            client.stream("GET", STREAM, params=params) as response,
        ):
            assert str(response.status_code) in declared, (params, response.status_code)
            if response.status_code == 200:
                assert response.headers["content-type"].startswith("text/event-stream")
            else:
                assert response.status_code < 500 and "detail" in response.read().decode()


# Found by the runs above: numbers beyond PostgreSQL's bigint, and text holding U+0000, reached a
# query (500); `str.isdigit` took a Last-Event-ID of "²", which `int` refuses (500).


def test_numbers_beyond_bigint_are_refused(stack: StackHandle, site: str) -> None:
    with stack.http() as c:
        for path, params in [
            ("/api/v1/alerts", {"offset": 2**70}),
            (f"/api/v1/sites/{site}/points", {"offset": 2**63}),
            (STREAM, {"after": 2**63}),
        ]:
            r = c.get(path, params=params)
            assert r.status_code == 422, (path, r.status_code, r.text)
        assert c.get("/api/v1/alerts", params={"offset": 2**63 - 1}).json()["alerts"] == []


@pytest.mark.parametrize(
    ("method", "path", "kw"),
    [
        ("GET", "/api/v1/points/P0/readings", {"params": {"site": "a\x00b"}}),
        ("GET", "/api/v1/dead-letters", {"params": {"reason": "\x00"}}),
        ("GET", "/api/v1/alerts", {"params": {"site": "\x00"}}),
        ("GET", "/api/v1/sites/a%00/zones", {}),
        ("POST", "/api/v1/hazards", {"json": {"by": "\x00", "title": "x", "site": "{site}"}}),
    ],
)
def test_text_with_a_nul_is_refused(stack: StackHandle, site: str, method: str, path: str, kw: dict[str, Any]) -> None:
    """PostgreSQL text cannot hold U+0000: a query or body holding one reached it and answered 500."""
    if "json" in kw:
        kw = {"json": {**kw["json"], "site": site}}
    with stack.http() as c:
        r = c.request(method, path, **kw)
    assert r.status_code == 422 and "U+0000" in r.json()["detail"], (r.status_code, r.text)


@pytest.mark.parametrize("last_event_id", ["²".encode("latin-1"), "٣".encode(), b"9" * 30, b"-1", b"x"])
def test_a_last_event_id_that_is_not_ours_streams_from_now(stack: StackHandle, last_event_id: bytes) -> None:
    with (
        stack.http() as c,
        c.stream("GET", STREAM, headers={"Last-Event-ID": last_event_id}) as response,
    ):
        assert response.status_code == 200
        assert next(response.iter_text()).startswith("retry:")
