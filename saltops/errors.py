"""Exceptions of the SaltOps core.

The loader modules turn them into Salt's own exception types
(``SaltInvocationError`` for bad input, ``CommandExecutionError`` for the rest).
"""


class SaltOpsError(Exception):
    """Base class of every SaltOps error."""


class ConfigError(SaltOpsError):
    """The ``saltops:`` configuration is invalid."""


class ValidationError(SaltOpsError):
    """Input failed validation; ``problems`` lists every problem found."""

    def __init__(self, message, problems=None):
        super().__init__(message)
        self.problems = list(problems or [])

    def __str__(self):
        if not self.problems:
            return self.args[0]
        return self.args[0] + ":\n" + "\n".join(f"  - {p}" for p in self.problems)


class NotFound(SaltOpsError):
    """The object asked for does not exist."""


class Conflict(SaltOpsError):
    """The change conflicts with the current state (duplicate, lock held...)."""


class StoreUnavailable(SaltOpsError):
    """The database cannot be reached."""


class StoreFull(StoreUnavailable):
    """The database cannot be written: the disk (or the table space) holding it is full.

    A kind of :class:`StoreUnavailable`, so that code which waits for the
    database to come back also waits for space to come back; its message says
    where space must be freed.
    """
