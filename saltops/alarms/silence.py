"""Silences: time-boxed label matchers that mute alerts, and acks.

An *ack* is a silence on one alarm's fingerprint that ends when the alarm
resolves: the receivers stop hearing repeats of an alarm someone is working
on, and still hear that it resolved.
"""

import time
import uuid

import sqlalchemy as sa

from saltops.alarms.matchers import matches_all, parse_duration, parse_matchers, split_matchers
from saltops.alarms.schema import alarms, history, silences
from saltops.errors import NotFound, ValidationError
from saltops.store.audit import record

FOREVER = 4102444800.0  # 2100-01-01: the end of an ack until its alarm resolves
MAX_SILENCE = 366 * 86400


class Silence:
    __slots__ = ("comment", "created_by", "ends_at", "fingerprint", "id", "kind", "matchers", "starts_at")

    def __init__(self, id, kind, matchers, fingerprint, starts_at, ends_at, created_by, comment):
        self.id = id
        self.kind = kind
        self.matchers = matchers
        self.fingerprint = fingerprint
        self.starts_at = starts_at
        self.ends_at = ends_at
        self.created_by = created_by
        self.comment = comment

    def active(self, now):
        return self.starts_at <= now < self.ends_at


class Silences:
    """The silences in force, in memory; reloaded from the database when they change."""

    def __init__(self):
        self.items = []
        self.marker = None

    def set(self, items):
        self.items = list(items)

    def muted_by(self, alert, now):
        labels = None
        for sil in self.items:
            if not sil.active(now):
                continue
            if sil.fingerprint is not None:
                if sil.fingerprint == alert.fingerprint:
                    return sil
                continue
            if labels is None:
                labels = alert.match_labels()
            if matches_all(sil.matchers, labels):
                return sil
        return None


def _from_row(row):
    return Silence(row.id, row.kind, parse_matchers(row.matchers), row.fingerprint, row.starts_at,
                   row.ends_at, row.created_by, row.comment)


def marker(conn):
    """Something that changes whenever a silence is added or changed."""
    return tuple(conn.execute(
        sa.select(sa.func.count(), sa.func.max(silences.c.updated_at)).select_from(silences)
    ).one())


def load_active(conn, now):
    rows = conn.execute(sa.select(silences).where(silences.c.ends_at > now)).all()
    return [_from_row(row) for row in rows]


def to_dict(row, now=None):
    now = time.time() if now is None else now
    state = "expired" if row.ends_at <= now else ("pending" if row.starts_at > now else "active")
    return {
        "id": row.id, "kind": row.kind, "matchers": [str(m) for m in parse_matchers(row.matchers)],
        "fingerprint": row.fingerprint, "starts_at": row.starts_at, "ends_at": row.ends_at,
        "created_by": row.created_by, "comment": row.comment, "state": state,
    }


def add(conn, actor, matchers, ends_at, comment, starts_at=None, now=None):
    """Create a silence (validated) and audit it; return its id."""
    now = time.time() if now is None else now
    problems = []
    try:
        parsed = parse_matchers(matchers, "matchers")
    except ValueError as err:
        parsed = []
        problems.append(str(err))
    if not parsed and not problems:
        problems.append("at least one matcher is required (a silence of everything is refused)")
    if parsed and all(m.op in ("=~", "!~") and m.value in (".*", ".+", "") for m in parsed):
        problems.append("the matchers match every alert; name what to silence")
    starts_at = now if starts_at is None else float(starts_at)
    if ends_at <= max(starts_at, now):
        problems.append("the silence must end in the future, after it starts")
    if ends_at - starts_at > MAX_SILENCE:
        problems.append("a silence may last at most a year")
    if not isinstance(comment, str) or not comment.strip():
        problems.append("a comment (why) is required")
    if problems:
        raise ValidationError("silence not created", problems)
    sid = str(uuid.uuid4())
    row = {"id": sid, "kind": "silence", "matchers": [m.to_dict() for m in parsed], "fingerprint": None,
           "starts_at": starts_at, "ends_at": float(ends_at), "created_by": str(actor)[:128],
           "comment": comment.strip()[:1024], "created_at": now, "updated_at": now}
    conn.execute(silences.insert().values(**row))
    record(conn, actor, "silence.add", "alarm_silence", sid, None,
           {"matchers": [str(m) for m in parsed], "starts_at": starts_at, "ends_at": float(ends_at),
            "comment": row["comment"]})
    return sid


def create(conn, actor, matchers, duration, comment, starts=None, now=None):
    """:func:`add` from what a person types: matchers as text or a list, ``duration``/``starts`` as ``2h``.

    Returns ``{"id", "ends_at", "created_by"}``; ValidationError on anything malformed.
    """
    now = time.time() if now is None else now
    if isinstance(matchers, str):
        matchers = split_matchers(matchers)
    try:
        seconds = parse_duration(duration, "duration")
        begin = now + parse_duration(starts, "starts") if starts else now
    except ValueError as err:
        raise ValidationError("silence not created", [str(err)]) from None
    sid = add(conn, actor, matchers, begin + seconds, comment or "", starts_at=begin, now=now)
    return {"id": sid, "ends_at": begin + seconds, "created_by": str(actor)[:128]}


LIST_STATES = ("active", "pending", "expired", "all")


def listing(conn, state="active", now=None, limit=500):
    """Silences and acks, newest first, in ``state`` (active, pending, expired or all)."""
    if state not in LIST_STATES:
        raise ValidationError("bad state", [f"state must be one of {list(LIST_STATES)}"])
    now = time.time() if now is None else now
    rows = conn.execute(sa.select(silences).order_by(silences.c.created_at.desc()).limit(int(limit))).all()
    items = [to_dict(row, now) for row in rows]
    return [i for i in items if state == "all" or i["state"] == state]


def expire(conn, actor, sid, now=None):
    now = time.time() if now is None else now
    row = conn.execute(sa.select(silences).where(silences.c.id == sid)).first()
    if row is None:
        raise NotFound(f"no silence with id {sid!r}")
    if row.ends_at <= now:
        return False
    conn.execute(silences.update().where(silences.c.id == sid).values(ends_at=now, updated_at=now))
    record(conn, actor, "silence.expire", "alarm_silence", sid, {"ends_at": row.ends_at}, {"ends_at": now})
    return True


def ack(conn, actor, fp, comment, now=None):
    """Acknowledge a firing alarm: mute its repeats until it resolves."""
    now = time.time() if now is None else now
    row = conn.execute(sa.select(alarms).where(alarms.c.fingerprint == fp)).first()
    if row is None:
        raise NotFound(f"no alarm with fingerprint {fp!r}")
    if row.state not in ("firing", "pending"):
        raise ValidationError(f"alarm {fp} is {row.state}", ["only a firing or pending alarm can be acked"])
    sid = str(uuid.uuid4())
    conn.execute(silences.insert().values(
        id=sid, kind="ack", matchers=[], fingerprint=fp, starts_at=now, ends_at=FOREVER,
        created_by=str(actor)[:128], comment=(comment or "acknowledged")[:1024], created_at=now,
        updated_at=now))
    conn.execute(alarms.update().where(alarms.c.fingerprint == fp).values(acked_by=str(actor)[:128], acked_at=now))
    conn.execute(history.insert().values(fingerprint=fp, rule=row.rule, event="acked", ts=now,
                                         labels=row.labels, value=row.value, actor=str(actor)[:128]))
    record(conn, actor, "alarm.ack", "alarm", fp, {"state": row.state}, {"acked_by": str(actor), "silence": sid})
    return sid


def end_acks(conn, fingerprints, now):
    """Acks end when their alarm resolves (called by the write-behind)."""
    if fingerprints:
        conn.execute(
            silences.update()
            .where(silences.c.kind == "ack", silences.c.fingerprint.in_(list(fingerprints)),
                   silences.c.ends_at > now)
            .values(ends_at=now, updated_at=now)
        )
        conn.execute(alarms.update().where(alarms.c.fingerprint.in_(list(fingerprints)))
                     .values(acked_by=None, acked_at=None))
