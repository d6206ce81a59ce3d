"""The deploy room's public face: one import for the runner and the tests.

The work is split by concern:

- :mod:`saltops.deploy.request`: validating a request, previewing and
  starting a deploy, building a rollback request;
- :mod:`saltops.deploy.driver`: the phase driver (pre-stage, batches,
  rollback) and the journal of host outcomes while the database is away;
- :mod:`saltops.deploy.bluegreen`: the blue/green phases (idle slot, flip,
  flip back);
- :mod:`saltops.deploy.control`: resume, abort and status of a started deploy.
"""

from saltops.deploy.control import abort, replay_journal, resume, status
from saltops.deploy.driver import MODULE, DeployStopped, Driver, journal_of
from saltops.deploy.lock import handoff_owner
from saltops.deploy.request import preview, rollback_request, start, start_rollback, validate_request

__all__ = [
    "MODULE",
    "DeployStopped",
    "Driver",
    "abort",
    "handoff_owner",
    "journal_of",
    "preview",
    "replay_journal",
    "resume",
    "rollback_request",
    "start",
    "start_rollback",
    "status",
    "validate_request",
]
