"""Read side for the ``alarm`` runner: alarms, history, notifications."""

import re
import time

import sqlalchemy as sa

from saltops.alarms.matchers import parse_duration
from saltops.alarms.model import iso
from saltops.alarms.schema import alarms, history
from saltops.errors import NotFound, ValidationError

FINGERPRINT = re.compile(r"^[0-9a-f]{16}$")
STATES = ("pending", "firing", "resolved", "all")


def _alarm(row):
    out = dict(row._mapping)
    for key in ("active_since", "fired_at", "resolved_at", "last_seen", "ends_at", "acked_at", "updated_at"):
        if out.get(key) is not None:
            out[key] = iso(out[key])
    return out


def check_fingerprint(fp):
    if not isinstance(fp, str) or not FINGERPRINT.match(fp):
        raise ValidationError("bad fingerprint", [f"{fp!r} is not an alarm fingerprint (16 hex digits)"])
    return fp


def list_alarms(conn, state="firing", severity=None, host=None, alertname=None, limit=200):
    if state not in STATES:
        raise ValidationError("bad state", [f"state must be one of {list(STATES)}"])
    query = sa.select(alarms).order_by(alarms.c.fired_at.desc(), alarms.c.fingerprint).limit(int(limit))
    if state != "all":
        query = query.where(alarms.c.state == state)
    rows = [_alarm(row) for row in conn.execute(query)]
    wanted = {"severity": severity, "host": host, "alertname": alertname}
    return [r for r in rows if all(v is None or r["labels"].get(k) == v for k, v in wanted.items())]


def get_alarm(conn, fp):
    row = conn.execute(sa.select(alarms).where(alarms.c.fingerprint == check_fingerprint(fp))).first()
    if row is None:
        raise NotFound(f"no alarm with fingerprint {fp}")
    return row


def history_rows(conn, fingerprint=None, host=None, since=None, limit=100, now=None):
    now = time.time() if now is None else now
    query = sa.select(history).order_by(history.c.id.desc()).limit(int(limit))
    if fingerprint:
        query = query.where(history.c.fingerprint == check_fingerprint(fingerprint))
    if since:
        try:
            query = query.where(history.c.ts >= now - parse_duration(since, "since"))
        except ValueError as err:
            raise ValidationError("bad since", [str(err)]) from None
    out = []
    for row in conn.execute(query):
        item = dict(row._mapping)
        if host and item["labels"].get("host") != host:
            continue
        item["ts"] = iso(item["ts"])
        out.append(item)
    return out
