"""The human side of an alert (DOMAIN §3): open → acknowledged (签收) → handled (处置, a written
disposition) → closed (销号). One function decides whether a step is allowed; the store applies it
inside one transaction with the row locked, so two operators clicking at once yield one step."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Action = Literal["acknowledge", "handle", "close"]
ACTIONS: tuple[Action, ...] = ("acknowledge", "handle", "close")

# action → (states it may start from, state it leads to)
TRANSITIONS: dict[str, tuple[frozenset[str], str]] = {
    "acknowledge": (frozenset({"open"}), "acknowledged"),
    # handling an alert nobody acknowledged acknowledges it in the same step
    "handle": (frozenset({"open", "acknowledged"}), "handled"),
    "close": (frozenset({"handled"}), "closed"),
}


@dataclass(frozen=True, slots=True)
class TransitionError(Exception):
    status: int  # 409: not from this state; 422: the request itself is incomplete
    reason: str


def target_state(action: str, state: str, by: str, note: str) -> str:
    """The state `action` leads to from `state`, or a TransitionError saying why not."""
    if action not in TRANSITIONS:
        raise TransitionError(422, f"unknown action {action!r}; one of {', '.join(ACTIONS)}")
    if not by.strip():
        raise TransitionError(422, "'by' is required: who does this")
    if action == "handle" and not note.strip():
        raise TransitionError(422, "handling needs a disposition: 'note' is required")
    sources, target = TRANSITIONS[action]
    if state not in sources:
        if state == "closed":
            raise TransitionError(409, "the alert is already closed")
        if action == "close":
            raise TransitionError(409, f"the alert is {state}: handle it (with a disposition) before closing")
        raise TransitionError(409, f"the alert is already {state}")
    return target


NEVER_SHELVED_RULES = frozenset({"sos", "headcount"})


def check_shelve(rule: str, severity: int, state: str, by: str, reason: str) -> None:
    """Whether an alert may be shelved: never SOS, headcount or red alerts, never a closed one, and
    always with who and why."""
    if not by.strip():
        raise TransitionError(422, "'by' is required: who shelves it")
    if not reason.strip():
        raise TransitionError(422, "shelving needs a reason: 'note' is required")
    if rule in NEVER_SHELVED_RULES or severity >= 4:
        raise TransitionError(409, f"{rule} alerts and red alerts can never be shelved")
    if state == "closed":
        raise TransitionError(409, "the alert is already closed")
