"""Remediation: a firing alarm's ``remediate:`` action, at most once per firing episode.

The reactor calls ``alarm.remediate <fingerprint>`` on a
``saltops/alarm/<fingerprint>/firing`` event, and any minion can put such an
event on the master bus (a batched ``event.send``), so the event is only a
hint to look at the store.  Every decision is taken there:

* the alarm must exist, be firing, and have been raised by the pipeline
  itself (``source`` beacon or absent): alerts from the Alertmanager webhook
  are refused, whatever their alertname;
* its rule (from the rules file, by the stored rule name) must have a
  ``remediate:`` section; host and arguments come from the stored labels;
* one action per *episode*: the alarm's ``fired_at``.  :func:`claim` inserts
  the ledger row ``(fingerprint, episode)`` in the transaction that decides,
  so of two runners racing on the same event one wins, and a repeated event
  (the event outbox delivers at least once) finds the row and does nothing;
* a cooldown per alarm (``remediate.cooldown``, default
  ``defaults.remediate_cooldown``): an alarm that flaps gets a new episode
  each time it fires, but no new action until the cooldown since the last
  one has passed.

The claim is committed before the action runs: if the master dies while it
runs, the episode stays claimed with no result (``ok`` null), and the action is
not run a second time.
"""

import json
import logging
import time

import sqlalchemy as sa

from saltops.alarms.model import FIRING, PIPELINE_SOURCES
from saltops.alarms.query import check_fingerprint
from saltops.alarms.rules import SAFE_ARG
from saltops.alarms.schema import alarms, remediations
from saltops.errors import NotFound, ValidationError

log = logging.getLogger(__name__)

MAX_DETAIL = 1024


class Decision:
    """What :func:`claim` decided: a claimed plan to run, or the reason nothing runs."""

    __slots__ = ("args", "episode", "fingerprint", "function", "host", "reason", "rule")

    def __init__(self, fingerprint, episode=None, rule=None, host=None, function=None, args=None, reason=None):
        self.fingerprint = fingerprint
        self.episode = episode
        self.rule = rule
        self.host = host
        self.function = function
        self.args = args
        self.reason = reason  # None: claimed, run it

    @property
    def claimed(self):
        return self.reason is None

    def to_dict(self):
        out = {"fingerprint": self.fingerprint, "remediated": False, "reason": self.reason}
        if self.host is not None:
            out.update(host=self.host, function=self.function, args=list(self.args or ()))
        return out


def episode_of(fired_at):
    """The firing episode of an alarm: its ``fired_at`` in whole milliseconds."""
    return round(float(fired_at) * 1000)


def plan(ruleset, row):
    """``(rule, host, function, args)`` for a stored alarm row, or ValidationError saying why not."""
    fp = row.fingerprint
    if row.source not in PIPELINE_SOURCES:
        raise ValidationError(
            f"alarm {fp} is an external alert ({row.source}, from the Alertmanager webhook): not remediated",
            ["only alarms the pipeline raised from minion events (beacons, tag rules, absent hosts) run remediate:"],
        )
    rule = next((r for r in ruleset.rules if r.name == row.rule), None)
    if rule is None or not rule.remediate:
        raise ValidationError(f"rule {row.rule} has no remediate: section", ["nothing to do for this alarm"])
    host = row.labels.get("host", "")
    if not SAFE_ARG.match(host):
        raise ValidationError("unsafe host label", [f"{host!r}"])
    args = list(rule.remediate.get("args") or [])
    label = rule.remediate.get("arg_label")
    if label:
        value = row.labels.get(label, "")
        if not SAFE_ARG.match(value):
            raise ValidationError("unsafe remediation argument", [f"label {label}={value!r} is not a plain word"])
        args.append(value)
    return rule, host, rule.remediate["function"], args


def _decide(conn, ruleset, fp, now, actor):
    row = conn.execute(sa.select(alarms).where(alarms.c.fingerprint == fp).with_for_update()).first()
    if row is None:
        raise NotFound(f"no alarm with fingerprint {fp}")
    rule, host, function, args = plan(ruleset, row)
    decision = Decision(fp, rule=rule.name, host=host, function=function, args=args)
    if row.state != FIRING or row.fired_at is None:
        decision.reason = f"alarm {fp} is {row.state}, not firing: nothing to remediate"
        return decision
    decision.episode = episode_of(row.fired_at)
    done = conn.execute(
        sa.select(remediations.c.started_at)
        .where(remediations.c.fingerprint == fp, remediations.c.episode == decision.episode)
    ).first()
    if done is not None:
        decision.reason = f"already remediated in this firing episode (at {done.started_at:.3f})"
        return decision
    last = conn.execute(
        sa.select(sa.func.max(remediations.c.started_at)).where(remediations.c.fingerprint == fp)
    ).scalar()
    cooldown = rule.remediate.get("cooldown") or 0.0
    if last is not None and now - last < cooldown:
        decision.reason = (f"in cooldown: remediated {now - last:.0f}s ago, the rule waits {cooldown:.0f}s "
                           "between remediations of one alarm")
        return decision
    conn.execute(remediations.insert().values(
        fingerprint=fp, episode=decision.episode, rule=rule.name, host=host, function=function, args=args,
        actor=actor, started_at=now, finished_at=None, ok=None, detail=None,
    ))
    return decision


def claim(store, ruleset, fingerprint, now, actor=None):
    """Decide from the store whether ``fingerprint``'s action runs now; a claimed decision is committed.

    Raises NotFound / ValidationError for an alarm that can never be
    remediated (unknown, external, no ``remediate:``); returns an unclaimed
    :class:`Decision` (with its ``reason``) for one that is not due now.
    """
    fp = check_fingerprint(fingerprint)
    try:
        with store.begin() as conn:
            return _decide(conn, ruleset, fp, now, actor)
    except sa.exc.IntegrityError:
        # Another runner inserted this episode's row between our read and our insert.
        return Decision(fp, reason="already being remediated for this firing episode (a concurrent run)")


def outcome(ret):
    """``(ok, detail)`` of a minion's answer to the remediation call (None: no answer)."""
    if ret is None:
        return False, "no answer from the minion"
    if isinstance(ret, bool):
        return ret, str(ret)
    if isinstance(ret, dict) and ret and all(isinstance(v, dict) and "result" in v for v in ret.values()):
        failed = sorted(k for k, v in ret.items() if v.get("result") is False)
        return not failed, (f"{len(failed)} of {len(ret)} states failed" if failed else f"{len(ret)} states ok")
    if isinstance(ret, list) or (isinstance(ret, str) and ret.startswith(("ERROR", "Minion did not return"))):
        return False, _text(ret)
    return True, _text(ret)


def _text(value):
    try:
        text = value if isinstance(value, str) else json.dumps(value, default=str, sort_keys=True)
    except (TypeError, ValueError):
        text = repr(value)
    return text[:MAX_DETAIL]


def finish(store, decision, ok, detail, now):
    """Record the result of a claimed run (the claim row stays, with ``ok`` set)."""
    with store.begin() as conn:
        conn.execute(
            remediations.update()
            .where(remediations.c.fingerprint == decision.fingerprint, remediations.c.episode == decision.episode)
            .values(finished_at=now, ok=bool(ok), detail=_text(detail))
        )


def remediate(store, ruleset, fingerprint, execute, actor=None, clock=None):
    """Claim, run and record: ``execute(host, function, args)`` returns the minion's answer.

    Returns the runner's answer: ``remediated: False`` with the reason when
    nothing ran, else the outcome.  When ``execute`` raises, the failure is
    recorded and raised again; the episode stays claimed either way.
    """
    clock = clock or time.time
    decision = claim(store, ruleset, fingerprint, clock(), actor)
    if not decision.claimed:
        log.info("alarm %s not remediated: %s", decision.fingerprint, decision.reason)
        return decision.to_dict()
    try:
        answer = execute(decision.host, decision.function, list(decision.args))
    except Exception as err:
        finish(store, decision, False, f"{type(err).__name__}: {err}", clock())
        raise
    ok, detail = outcome(answer)
    finish(store, decision, ok, detail, clock())
    return {"fingerprint": decision.fingerprint, "remediated": True, "ok": ok, "host": decision.host,
            "function": decision.function, "args": list(decision.args), "result": answer}


def ledger(conn, fingerprint=None, limit=100):
    """Remediation runs, newest first."""
    query = sa.select(remediations).order_by(remediations.c.started_at.desc()).limit(int(limit))
    if fingerprint:
        query = query.where(remediations.c.fingerprint == check_fingerprint(fingerprint))
    return [dict(row._mapping) for row in conn.execute(query)]
