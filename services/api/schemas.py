"""Response bodies as the OpenAPI document declares them, for the endpoints whose shape is the
contract (PROTOCOL §4): the alert object and the dead letters.

They document and are checked by the schemathesis tests (tests/test_hostile_api.py); routes keep
returning plain dicts (`response_model=None`), so a field added to a body is never dropped by
validation. Objects allow more fields than they list: the protocol may be extended.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field


def ok(model: type[BaseModel], status: int = 200) -> dict[int | str, dict[str, Any]]:
    """`responses=` declaring a success body."""
    return {status: {"model": model}}


class Source(BaseModel):
    type: Literal["point", "zone", "site", "tag", "gateway"]
    code: str


class Alert(BaseModel):
    """The alert object of PROTOCOL §4, times RFC 3339 in the site's time zone."""

    id: str
    site: str
    source: Source
    rule: str
    kind: str | None
    severity: int = Field(ge=1, le=4)
    state: Literal["open", "acknowledged", "handled", "closed"]
    cleared: bool
    value: float | None
    peak: float | None
    count: int
    message: str
    details: dict[str, Any]
    raised_at: str
    due_at: str | None
    overdue: bool
    acknowledged_at: str | None
    handled_at: str | None
    closed_at: str | None
    shelved: bool
    shelved_until: str | None


class AlertPage(BaseModel):
    total: int
    limit: int
    offset: int
    alerts: list[Alert]


Reason = Literal[  # docs/protocol.md, "Rejections"
    "invalid_json",
    "oversize",
    "invalid_message",
    "unknown_site",
    "invalid_reading",
    "invalid_event",
    "unknown_point",
    "unknown_zone",
    "bad_timestamp",
    "non_numeric_value",
    "bad_quality",
    "bad_status",
    "internal_error",
]


class DeadLetter(BaseModel):
    id: int
    received_at: str
    site: str | None  # None: a topic outside the catalog
    gateway: str | None
    topic: str
    seq: int | None  # None: the whole message was rejected
    reason: Reason
    detail: str
    item: str | None  # the item as JSON, the start of the message, or None (oversize)


class DeadLetters(BaseModel):
    dead_letters: list[DeadLetter]
