"""Telling approvers: the next step's people, reminders and escalations, through the notify channels.

A notice goes to each person of a pending sub-ticket, once per kind
(``next``: the step waits for them; ``remind``: it is past ``remind_after``;
``escalate``: they were added past ``escalate_after``), recorded in
``ticket_notices`` in the same transaction as the notification rows it
queues in the notify outbox (:func:`saltops.notify.queue.enqueue`).  The
delivery worker sends them; a unique key makes a second master, or a second
run, queue nothing twice.

Where a person is reached comes from the org data: an ``smtp`` channel
mails their ``email``, ``sms`` texts their ``phone``, ``wecom`` and
``dingtalk`` robots mention their ``phone`` in the group; ``webhook`` and
``file`` channels get every notice.  A person with no address on a channel
is skipped on it.  The phone link (:mod:`saltops.tickets.links`) goes only
in ``link_channels`` (default: the ``smtp`` ones, which reach one person):
whoever holds the link acts as the approver, so it never goes to a group.

Messages are Alertmanager webhook payloads (version 4, so webhook receivers
take them as they take alarms) with a ``title`` and ``recipients``.
"""

import datetime
import hashlib
import logging

import sqlalchemy as sa
from sqlalchemy import exc

from saltops.durations import parse_duration
from saltops.errors import ConfigError
from saltops.notify import queue as notify_queue
from saltops.org.schema import users
from saltops.tickets import links
from saltops.tickets.notice_schema import notices
from saltops.tickets.schema import approvals, tickets

log = logging.getLogger(__name__)

KINDS = ("next", "remind", "escalate")
DEFAULTS = {
    # Names under saltops:notify:channels that tell approvers.
    "channels": [],
    # The channels whose messages carry the phone link; None: the smtp ones among ``channels``.
    "link_channels": None,
    # The phone page as approvers reach it (e.g. https://saltops.example.com/tickets); no links without it.
    "base_url": None,
    "link_ttl": "1d",
    "remind_after": "4h",
    "escalate_after": "8h",
}
# Who is reached on which kind of channel: (payload recipients key, org field).
ADDRESS = {"smtp": ("to", "email"), "sms": ("phones", "phone"), "wecom": ("phones", "phone"),
           "dingtalk": ("phones", "phone")}
NEVER = "0001-01-01T00:00:00Z"


def merge_known(raw, defaults, where):
    """``raw`` over ``defaults``; :class:`ConfigError` for a non-mapping or an unknown key."""
    raw = {} if raw is None else raw
    if not isinstance(raw, dict):
        raise ConfigError(f"{where} must be a mapping")
    unknown = sorted(set(raw) - set(defaults))
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)} (known: {', '.join(defaults)})")
    return {**defaults, **raw}


def check_settings(raw):
    """The ``saltops:tickets:notify`` block with defaults and durations in seconds."""
    out = merge_known(raw, DEFAULTS, "saltops:tickets:notify")
    for key in ("channels", "link_channels"):
        value = out[key]
        if value is None and key == "link_channels":
            continue
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise ConfigError(f"saltops:tickets:notify:{key} must be a list of channel names")
    base = out["base_url"]
    if base is not None and not (isinstance(base, str) and base.startswith(("https://", "http://"))):
        raise ConfigError("saltops:tickets:notify:base_url must be an http(s) URL")
    for key in ("link_ttl", "remind_after", "escalate_after"):
        try:
            out[key] = parse_duration(out[key], f"saltops:tickets:notify:{key}")
        except ValueError as err:
            raise ConfigError(str(err)) from None
    if out["escalate_after"] <= out["remind_after"]:
        raise ConfigError("saltops:tickets:notify: escalate_after must be longer than remind_after")
    return out


def check_channels(settings, channel_specs):
    """Problems with the channel names against ``saltops:notify:channels`` (empty when fine)."""
    named = settings["channels"] + (settings["link_channels"] or [])
    return [f"saltops:tickets:notify: channel {name!r} is not defined under saltops:notify:channels"
            for name in dict.fromkeys(named) if name not in channel_specs]


class Notifier:
    """Queues approvers' notices for one store.

    ``settings``: the checked ``saltops:tickets:notify`` block;
    ``channel_specs``: ``saltops:notify:channels``; ``secret``: the link key
    (None: no links); ``clock``: POSIX seconds.
    """

    def __init__(self, store, settings, channel_specs, secret=None, clock=None):
        import time

        self.store = store
        self.settings = settings
        self.channels = {name: channel_specs[name].get("type") for name in settings["channels"]
                         if name in channel_specs}
        wanted = settings["link_channels"]
        if wanted is None:
            wanted = [name for name, kind in self.channels.items() if kind == "smtp"]
        self.link_channels = set(wanted) if secret is not None and settings["base_url"] else set()
        self.secret = secret
        self.clock = clock or time.time

    # -- what is waiting ----------------------------------------------------------------------
    @staticmethod
    def pending(conn, ticket_id=None):
        """``[(ticket row, [pending sub-tickets of its current step])]`` for open tickets."""
        query = sa.select(tickets).where((tickets.c.state == "in_approval") & tickets.c.step.is_not(None))
        if ticket_id is not None:
            query = query.where(tickets.c.id == int(ticket_id))
        out = []
        for ticket in conn.execute(query.order_by(tickets.c.id)).mappings():
            rows = conn.execute(sa.select(approvals).where(
                (approvals.c.ticket_id == ticket["id"]) & (approvals.c.round == ticket["round"])
                & (approvals.c.step == ticket["step"]) & (approvals.c.state == "pending"))
                .order_by(approvals.c.id)).mappings().all()
            if rows:
                out.append((dict(ticket), [dict(r) for r in rows]))
        return out

    def announce(self, ticket_id=None):
        """Tell the people of each current step who were not told yet; the number of people told."""
        with self.store.connect() as conn:
            waiting = self.pending(conn, ticket_id)
        told = 0
        for ticket, rows in waiting:
            for row in rows:
                for user in row["candidates"]:
                    told += self.tell(ticket, row, user, "next")
        return told

    # -- one person ---------------------------------------------------------------------------
    def tell(self, ticket, approval, user, kind, note=None):
        """Queue one notice (True), or nothing when ``user`` had this kind for this sub-ticket (False)."""
        now = self.clock()
        try:
            with self.store.begin() as conn:
                # The notice row first: it is the claim (a second teller hits the unique key), and a
                # write before any read keeps SQLite from refusing to upgrade a read lock.
                notice_id = conn.execute(notices.insert().values(
                    ticket_id=ticket["id"], approval_id=approval["id"], user=user, kind=kind, deliveries=0,
                    created_at=now)).inserted_primary_key[0]
                person = conn.execute(sa.select(users.c.email, users.c.phone).where(users.c.name == user)).first()
                queued = 0
                for channel, channel_kind in self.channels.items():
                    recipients = {}
                    if channel_kind in ADDRESS:
                        key, field = ADDRESS[channel_kind]
                        address = None if person is None else getattr(person, field)
                        if not address:
                            continue
                        recipients[key] = [address]
                    link = expires = None
                    if channel in self.link_channels:
                        expires = now + self.settings["link_ttl"]
                        token = links.issue(conn, self.secret, ticket["id"], approval["id"], user, now,
                                            self.settings["link_ttl"])
                        link = f"{self.settings['base_url'].rstrip('/')}/approve?t={token}"
                    payload = message(ticket, approval, user, kind, now, note, recipients, link, expires)
                    notify_queue.enqueue(conn, channel, f"ticket:{user}"[:128], payload["groupKey"][:64],
                                         payload, now)
                    queued += 1
                conn.execute(notices.update().where(notices.c.id == notice_id).values(deliveries=queued))
        except exc.IntegrityError:
            return False  # another master told them at the same moment
        if not queued:
            log.info("ticket %s: %s has no address on the channels %s; not told (%s)", ticket["id"], user,
                     sorted(self.channels), kind)
        return True


def _iso(ts):
    return datetime.datetime.fromtimestamp(ts, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def message(ticket, approval, user, kind, now, note=None, recipients=None, link=None, expires=None):
    """The notification payload (Alertmanager webhook v4, plus ``title`` and ``recipients``)."""
    what = {"next": "waits for your approval", "remind": "still waits for your approval",
            "escalate": "is late and now waits for you too"}[kind]
    verb = "confirm" if approval["kind"] == "confirm" else "approve"
    title = f"[ticket #{ticket['id']}] {ticket['title'][:80]} {what}"
    lines = [f"Ticket #{ticket['id']} ({ticket['template']}) from {ticket['applicant']} {what} "
             f"at step '{approval['step_name']}'."]
    if note:
        lines.append(note)
    lines.append(f"From the command line: salt-run ticket.show {ticket['id']}; salt-run ticket.{verb} {ticket['id']}")
    if link:
        lines.append(f"From your phone (the link works once, until {_iso(expires)}): {link}")
    summary = " ".join(lines)
    labels = {"alertname": "TicketApproval", "severity": "warning" if kind == "escalate" else "info",
              "ticket": str(ticket["id"]), "template": ticket["template"], "approver": user, "notice": kind}
    key = f"ticket/{ticket['id']}/{approval['id']}/{user}/{kind}"
    return {
        "version": "4", "groupKey": key, "truncatedAlerts": 0, "status": "firing", "receiver": f"ticket:{user}",
        "groupLabels": {"alertname": "TicketApproval"}, "commonLabels": labels,
        "commonAnnotations": {"summary": summary}, "externalURL": "",
        "alerts": [{"status": "firing", "labels": labels, "annotations": {"summary": summary},
                    "startsAt": _iso(now), "endsAt": NEVER, "generatorURL": "",
                    "fingerprint": hashlib.sha256(key.encode()).hexdigest()[:16]}],
        "title": title, "recipients": recipients or {},
    }


def secret_path(web, cachedir):
    """Where the link key is: ``saltops:tickets:web:secret_file`` or ``<cachedir>/saltops/ticket-links.key``."""
    import os

    return web["secret_file"] or os.path.join(cachedir, "saltops", "ticket-links.key")


def from_config(store, conf, settings, cachedir, clock=None):
    """A :class:`Notifier` from the ``saltops:`` block (``settings``: the checked ``saltops:tickets``)."""
    channel_specs = (conf.get("notify") or {}).get("channels") or {}
    problems = check_channels(settings["notify"], channel_specs)
    if problems:
        raise ConfigError("; ".join(problems))
    secret = None
    if settings["notify"]["base_url"]:
        secret = links.load_secret(secret_path(settings["web"], cachedir))
    return Notifier(store, settings["notify"], channel_specs, secret, clock)
