"""One evaluating alarm engine among the masters that share a database: a lease in a row.

In a hot-hot multi-master set-up every minion sends its beacon events to every
master, so every master's engine sees every sample.  If each evaluated them,
each would write its own notifications and every alarm would be sent once per
master.  The engines therefore share one lease (``alarm_leases``): the holder
evaluates, groups and writes; the others stay on standby and drop what they
read.  A standby that finds the lease expired takes it and rebuilds its state
from the database (firing alarms, the notification log, silences), exactly as
an engine does after a restart, so nothing already sent is sent again.

Taking and renewing are one conditional ``UPDATE`` each (``holder = me OR
expires_at < now``), committed on their own: of two engines racing for an
expired lease the database lets one change the row.  The holder renews every
third of the lease, and every write-behind transaction renews it too, or
fails when another engine holds it (:meth:`Lease.fence`): an engine that lost
the lease while it could not reach the database never commits, so never sends,
what it decided meanwhile.  An engine whose database does not answer keeps
doing what it did (a lone master keeps evaluating; its writes wait anyway).
"""

import logging
import os
import socket
import time

import sqlalchemy as sa

from saltops.alarms.schema import leases

log = logging.getLogger(__name__)

ENGINE = "alarm-engine"


def me(master_id=None):
    """This process as a lease holder: ``master id@host:pid``."""
    return f"{master_id or '-'}@{socket.gethostname()}:{os.getpid()}"[:255]


class LeaseLost(Exception):
    """A write of this engine found the lease held by another engine: the write is dropped."""


class Lease:
    """The lease ``name`` in ``store``, held (or waited for) by ``holder``.

    :meth:`held` is called every tick; it touches the database at most every
    ``ttl / 3`` seconds.  :meth:`fence` runs in each write-behind transaction.
    """

    def __init__(self, store, ttl, holder=None, name=ENGINE, clock=time.time):
        self.store = store
        self.ttl = float(ttl)
        self.holder = holder or me()
        self.name = name
        self.clock = clock
        # None: not known yet (the database did not answer); True: this engine holds the
        # lease; False: another engine does.  Only an answer from the database changes it.
        self.mode = None
        self._next_try = 0.0

    def held(self, now=None):
        """Whether this engine evaluates now (renewing or taking the lease when due).

        While the database cannot be reached the engine keeps what it was doing: a lone
        master goes on evaluating (its writes wait for the database anyway), a standby stays
        on standby.
        """
        now = self.clock() if now is None else now
        if now >= self._next_try:
            self._next_try = now + self.ttl / 3
            self._try(now)
        return self.mode is not False

    def _take(self, conn, now):
        """Renew or take the lease in ``conn``'s transaction; ``True`` when this engine has it now."""
        done = conn.execute(
            leases.update()
            .where(leases.c.name == self.name,
                   sa.or_(leases.c.holder == self.holder, leases.c.expires_at < now))
            .values(holder=self.holder, expires_at=now + self.ttl,
                    acquired_at=sa.case((leases.c.holder == self.holder, leases.c.acquired_at), else_=now))
        ).rowcount == 1
        if not done and conn.execute(sa.select(leases.c.name).where(leases.c.name == self.name)).first() is None:
            # The first engine ever: of two racing, the primary key keeps one (the other's
            # transaction fails and it tries again later).
            conn.execute(leases.insert().values(name=self.name, holder=self.holder,
                                                expires_at=now + self.ttl, acquired_at=now))
            done = True
        return done

    def _try(self, now):
        try:
            with self.store.begin() as conn:
                took = self._take(conn, now)
        except Exception as err:  # a database away, or a lost race for the first row: try later
            log.warning("alarm engine lease %r not renewed: %s", self.name, err)
            return
        self._decided(took)

    def _decided(self, took):
        was, self.mode = self.mode, took
        if took and was is not True:
            log.info("alarm engine lease %r taken by %s: this engine evaluates", self.name, self.holder)
        elif not took and was is not False:
            log.warning("alarm engine lease %r held by another master: this engine is on standby", self.name)

    def fence(self, conn, now=None):
        """In a write-behind transaction: renew the lease, or raise :class:`LeaseLost`.

        An engine that lost the lease while it could not reach the database may still
        have decisions in memory; none of them commits, so nothing it decided is sent.
        """
        now = self.clock() if now is None else now
        if not self._take(conn, now):
            self._decided(False)
            raise LeaseLost(f"the alarm engine lease is held by another master; {self.holder} does not write")

    def release(self):
        """Give the lease up at a clean stop, so a standby takes over at its next try."""
        if self.mode is not True:
            return
        self.mode = None
        try:
            with self.store.begin() as conn:
                conn.execute(leases.update()
                             .where(leases.c.name == self.name, leases.c.holder == self.holder)
                             .values(expires_at=0.0))
        except Exception as err:
            log.warning("alarm engine lease %r not released: %s", self.name, err)

    def state(self):
        """``(holder, expires_at)`` of the lease as the database has it, or ``None``."""
        with self.store.connect() as conn:
            row = conn.execute(sa.select(leases.c.holder, leases.c.expires_at)
                               .where(leases.c.name == self.name)).first()
        return (row.holder, row.expires_at) if row else None
