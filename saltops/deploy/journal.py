"""Host outcomes kept on the master's disk while the database is away.

A batch's minions may switch while the database is gone: their outcomes are
facts that must not be lost.  The driver then writes them here (one JSON file
per deploy, replaced atomically and fsynced), waits a bounded time for the
database, and stops if it does not come back.  Whoever next opens the deploy
(``deploy.status``, ``deploy.resume``, ``deploy.abort``, or the driver itself
when the database returns) replays the file into the history in one
transaction and removes it, so the history tells the truth again.

The file lives in the master's cache directory: it is read back by the
processes of the master that ran the deploy.
"""

import contextlib
import fcntl
import json
import logging
import os
import re
import tempfile

from saltops.deploy import history

log = logging.getLogger(__name__)

_NAME = re.compile(r"^deploy-(\d+)\.json$")


class Journal:
    """The journal files under ``directory``."""

    def __init__(self, directory):
        self.directory = str(directory)

    @contextlib.contextmanager
    def _locked(self):
        """One writer or replayer at a time (runner and deploy.status may both act)."""
        os.makedirs(self.directory, mode=0o700, exist_ok=True)
        with open(os.path.join(self.directory, ".lock"), "a+") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def path(self, deploy_id):
        return os.path.join(self.directory, f"deploy-{int(deploy_id)}.json")

    def entries(self, deploy_id):
        """The journaled batches of ``deploy_id``, oldest first (``[]`` when none)."""
        try:
            with open(self.path(deploy_id), encoding="utf-8") as fh:
                return json.load(fh)
        except FileNotFoundError:
            return []

    def deploy_ids(self):
        try:
            names = os.listdir(self.directory)
        except FileNotFoundError:
            return []
        return sorted(int(m.group(1)) for m in map(_NAME.match, names) if m)

    def record(self, deploy_id, batch, updates):
        """Add one batch's ``{hostname: values}`` to the deploy's file; durable when this returns."""
        with self._locked():
            return self._record(deploy_id, batch, updates)

    def _record(self, deploy_id, batch, updates):
        entries = self.entries(deploy_id)
        entries.append({"batch": batch, "hosts": updates})
        fd, tmp = tempfile.mkstemp(prefix=".journal-", dir=self.directory)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(entries, fh, default=str)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path(deploy_id))
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        dir_fd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
        return self.path(deploy_id)

    def replay(self, store, deploy_id):
        """Write the journaled outcomes of ``deploy_id`` into the history (one transaction), then drop the file.

        Returns how many host outcomes were replayed.  Replaying twice is
        harmless: a host already at its journaled status is left as it is.
        """
        with self._locked():
            return self._replay(store, deploy_id)

    def _replay(self, store, deploy_id):
        entries = self.entries(deploy_id)
        if not entries:
            return 0
        count = 0
        with store.begin() as conn:
            for entry in entries:
                history.set_hosts(conn, deploy_id, entry["hosts"])
                count += len(entry["hosts"])
            run = history.get_run(conn, deploy_id)
            history.event(
                conn,
                deploy_id,
                "journal_replayed",
                {
                    "app": run["app"],
                    "env": run["env"],
                    "batches": list(dict.fromkeys(e["batch"] for e in entries)),
                    "hosts": count,
                },
            )
        os.unlink(self.path(deploy_id))
        log.info("deploy %s: %d host outcome(s) replayed from %s", deploy_id, count, self.path(deploy_id))
        return count

    def replay_all(self, store):
        """Replay every journal file here; returns ``{deploy_id: hosts replayed}``."""
        return {deploy_id: self.replay(store, deploy_id) for deploy_id in self.deploy_ids()}
