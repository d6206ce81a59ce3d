"""The deploy and host status state machines: which status may follow which (no hosts here)."""

from saltops.errors import Conflict

# Deploy statuses.
PENDING = "pending"
STAGING = "staging"
SWITCHING = "switching"
PAUSED = "paused"
ROLLING_BACK = "rolling_back"
SUCCEEDED = "succeeded"
FAILED = "failed"
ROLLED_BACK = "rolled_back"
ROLLBACK_FAILED = "rollback_failed"
ABORTED = "aborted"
# Superseded: its runner died and another deploy took the lock over.
INTERRUPTED = "interrupted"

TERMINAL = frozenset({SUCCEEDED, FAILED, ROLLED_BACK, ROLLBACK_FAILED, ABORTED, INTERRUPTED})
ACTIVE = frozenset({PENDING, STAGING, SWITCHING, PAUSED, ROLLING_BACK})

TRANSITIONS = {
    PENDING: {STAGING, FAILED, ABORTED, INTERRUPTED},
    STAGING: {SWITCHING, FAILED, ABORTED, INTERRUPTED},
    SWITCHING: {SWITCHING, PAUSED, SUCCEEDED, ROLLING_BACK, FAILED, INTERRUPTED},
    PAUSED: {SWITCHING, ROLLING_BACK, INTERRUPTED},
    ROLLING_BACK: {ROLLED_BACK, ROLLBACK_FAILED, ABORTED, INTERRUPTED},
}

# Host statuses.
H_PENDING = "pending"
H_STAGED = "staged"
H_STAGE_FAILED = "stage_failed"
H_SKIPPED = "skipped"
H_SWITCHED = "switched"
H_FAILED = "failed"
H_UNREACHABLE = "unreachable"
H_ROLLED_BACK = "rolled_back"
H_ROLLBACK_FAILED = "rollback_failed"
# Nothing to go back to (the deploy was the app's first on the host).
H_NO_PREVIOUS = "no_previous"

HOST_TRANSITIONS = {
    H_PENDING: {H_STAGED, H_STAGE_FAILED, H_UNREACHABLE},
    H_STAGED: {H_SWITCHED, H_FAILED, H_UNREACHABLE, H_SKIPPED, H_STAGED},
    H_STAGE_FAILED: {H_SKIPPED},
    H_UNREACHABLE: {H_SKIPPED, H_ROLLED_BACK, H_ROLLBACK_FAILED, H_NO_PREVIOUS, H_STAGED, H_STAGE_FAILED},
    H_SWITCHED: {H_ROLLED_BACK, H_ROLLBACK_FAILED, H_NO_PREVIOUS, H_SWITCHED},
    H_FAILED: {H_ROLLED_BACK, H_ROLLBACK_FAILED, H_NO_PREVIOUS},
    H_ROLLBACK_FAILED: {H_ROLLED_BACK, H_ROLLBACK_FAILED},
}
# Hosts a rollback has to visit: the switch ran (or may have run) there.
NEEDS_ROLLBACK = frozenset({H_SWITCHED, H_FAILED, H_UNREACHABLE, H_ROLLBACK_FAILED})


def check(current, new):
    """Raise :class:`Conflict` unless a deploy may go from ``current`` to ``new``."""
    if new not in TRANSITIONS.get(current, ()):
        raise Conflict(f"a deploy cannot go from {current!r} to {new!r}")


def check_host(current, new):
    if new not in HOST_TRANSITIONS.get(current, ()):
        raise Conflict(f"a host cannot go from {current!r} to {new!r}")
