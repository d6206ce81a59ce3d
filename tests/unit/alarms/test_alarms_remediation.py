"""Remediation decided from the store: once per firing episode, a cooldown, pipeline alarms only,
and external alerts kept apart from beacon alarms (SQLite and MariaDB)."""

import threading

import pytest
import sqlalchemy as sa
from alarms_testkit import BASE_RULES, Clock, make_ruleset

from saltops.alarms import persist, remediation
from saltops.alarms.ingest import Ingest
from saltops.alarms.pipeline import Pipeline
from saltops.alarms.schema import alarms, remediations
from saltops.errors import NotFound, ValidationError

RULES = BASE_RULES.replace(
    "    field: \"{service}.running\"\n",
    "    field: \"{service}.running\"\n    remediate: {function: service.restart, arg_label: service, cooldown: 10m}\n",
)


class Lab:
    """A pipeline writing behind to a real store, with a clock the test moves."""

    def __init__(self, store, text=RULES):
        self.store = store
        self.clock = Clock(1000.0)
        self.ruleset = make_ruleset(text)
        self.pipeline = Pipeline(self.ruleset, Ingest(clock=self.clock), labels=lambda h: {}, started=0.0)

    def at(self, now):
        self.clock.now = now
        return self

    def service(self, host, running, name="nginx"):
        self.pipeline.event(f"salt/beacon/{host}/service/{name}", {"id": host, name: {"running": running}})
        return self

    def commit(self):
        persist.write(self.store, self.pipeline.tick(self.clock.now), self.clock.now)
        return self

    def row(self, fp):
        with self.store.connect() as conn:
            return conn.execute(sa.select(alarms).where(alarms.c.fingerprint == fp)).first()

    def claim(self, fp):
        return remediation.claim(self.store, self.ruleset, fp, self.clock.now, actor="reactor")

    def runs(self, fp):
        with self.store.connect() as conn:
            return remediation.ledger(conn, fp)


def firing_fp(lab, host="web01"):
    (fp,) = [a.fingerprint for a in lab.pipeline.evaluator.firing() if a.labels["host"] == host]
    return fp


def test_one_action_per_firing_episode_and_none_within_the_cooldown(store):
    lab = Lab(store).at(1000).service("web01", False).commit()
    fp = firing_fp(lab)
    first = lab.claim(fp)
    assert first.claimed and (first.host, first.function, first.args) == ("web01", "service.restart", ["nginx"])
    remediation.finish(store, first, True, "True", 1001)
    # The same firing episode again (a repeated or forged event): nothing runs.
    again = lab.at(1005).claim(fp)
    assert not again.claimed and "already remediated in this firing episode" in again.reason
    # It resolves and fires again a minute later: a new episode, but within the 10 minute cooldown.
    lab.at(1030).service("web01", True).commit()
    lab.at(1060).service("web01", False).commit()
    assert lab.row(fp).fired_at == 1060
    flapped = lab.claim(fp)
    assert not flapped.claimed and "in cooldown" in flapped.reason
    # After the cooldown the episode that is firing now gets its one action.
    later = lab.at(1700).claim(fp)
    assert later.claimed and later.episode == remediation.episode_of(1060)
    assert not lab.claim(fp).claimed
    runs = lab.runs(fp)
    assert [(r["episode"], r["ok"]) for r in runs] == [(1060000, None), (1000000, True)]
    assert runs[1]["actor"] == "reactor" and runs[1]["detail"] == "True"


def test_an_alarm_that_is_not_firing_is_not_remediated(store):
    lab = Lab(store).at(1000).service("web01", False).commit()
    fp = firing_fp(lab)
    lab.at(1010).service("web01", True).commit()
    assert lab.row(fp).state == "resolved"
    decision = lab.claim(fp)
    assert not decision.claimed and "resolved, not firing" in decision.reason
    assert lab.runs(fp) == []
    with pytest.raises(NotFound, match="no alarm"):
        lab.claim("0123456789abcdef")
    with pytest.raises(ValidationError, match="bad fingerprint"):
        lab.claim("../../etc")


def test_a_rule_without_remediate_is_refused(store):
    lab = Lab(store).at(1000)
    lab.pipeline.event("salt/beacon/web01/load/", {"id": "web01", "1m": 9.0})
    lab.commit()
    with pytest.raises(ValidationError, match="no remediate: section"):
        lab.claim(firing_fp(lab))


def test_webhook_alerts_never_share_a_fingerprint_with_beacon_alarms_nor_reach_remediation(store):
    lab = Lab(store).at(1000).service("web01", False).commit()
    beacon_fp = firing_fp(lab)
    # An Alertmanager alert carrying exactly the beacon alarm's identity labels.
    labels = {"alertname": "ServiceDown", "host": "web01", "service": "nginx"}
    payload = {"version": "4", "alerts": [{"status": "firing", "labels": dict(labels)}]}
    lab.pipeline.alertmanager(payload, now=1005)
    lab.at(1005).commit()
    (external,) = [a for a in lab.pipeline.evaluator.firing() if a.source == "prometheus"]
    assert external.fingerprint != beacon_fp and external.rule == "ServiceDown"
    with pytest.raises(ValidationError, match="external alert .* not remediated"):
        lab.claim(external.fingerprint)
    # Its `resolved` resolves the external alert only; the beacon alarm keeps firing.
    payload["alerts"][0]["status"] = "resolved"
    lab.pipeline.alertmanager(payload, now=1010)
    lab.at(1010).commit()
    assert lab.row(external.fingerprint).state == "resolved"
    assert lab.row(beacon_fp).state == "firing"
    assert lab.claim(beacon_fp).claimed
    with store.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(remediations)).scalar() == 1


def test_concurrent_runners_on_one_event_claim_it_once(store):
    lab = Lab(store).at(1000).service("web01", False).commit()
    fp = firing_fp(lab)
    start = threading.Barrier(6)
    decisions = []

    def run():
        start.wait()
        decisions.append(remediation.claim(store, lab.ruleset, fp, 1001.0))

    threads = [threading.Thread(target=run) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(decisions) == 6
    assert sum(d.claimed for d in decisions) == 1
    # A loser that read between the winner's insert and commit sees the run as a cooldown instead.
    assert all(("already" in d.reason or "in cooldown" in d.reason) for d in decisions if not d.claimed)
    assert len(lab.runs(fp)) == 1


def test_pruning_keeps_the_runs_of_a_firing_alarm(store):
    lab = Lab(store).at(1000).service("web01", False).commit()
    fp = firing_fp(lab)
    remediation.finish(store, lab.claim(fp), True, "ok", 1001)
    with store.begin() as conn:
        persist.prune(conn, 1000 + 40 * 86400, keep_days=30)
    assert len(lab.runs(fp)) == 1
    assert not lab.at(1000 + 40 * 86400).claim(fp).claimed
    lab.service("web01", True).commit()
    with store.begin() as conn:
        persist.prune(conn, 1000 + 80 * 86400, keep_days=30)
    assert lab.runs(fp) == []


@pytest.mark.parametrize("ret, ok", [
    (True, True), (False, False), (None, False),
    ({"svc_|-nginx_|-nginx_|-running": {"result": True}}, True),
    ({"a": {"result": True}, "b": {"result": False}}, False),
    (["Rendering SLS 'base:x' failed"], False),
    ("ERROR: service nginx not found", False),
])
def test_outcome_of_a_minion_answer(ret, ok):
    assert remediation.outcome(ret)[0] is ok


def test_remediate_runs_the_action_once_and_records_what_the_minion_said(store):
    lab = Lab(store).at(1000).service("web01", False).service("web02", False).commit()
    calls = []

    def execute(host, function, args):
        calls.append((host, function, args))
        if host == "web02":
            raise RuntimeError("Salt request timed out")
        return True

    done = remediation.remediate(store, lab.ruleset, firing_fp(lab), execute, actor="reactor", clock=lab.clock)
    assert done == {"fingerprint": firing_fp(lab), "remediated": True, "ok": True, "host": "web01",
                    "function": "service.restart", "args": ["nginx"], "result": True}
    with pytest.raises(RuntimeError, match="timed out"):
        remediation.remediate(store, lab.ruleset, firing_fp(lab, "web02"), execute, clock=lab.clock)
    # Neither runs again for this episode, whether it worked or not.
    for host in ("web01", "web02"):
        again = remediation.remediate(store, lab.ruleset, firing_fp(lab, host), execute, clock=lab.clock)
        assert again["remediated"] is False and "already remediated" in again["reason"]
    assert calls == [("web01", "service.restart", ["nginx"]), ("web02", "service.restart", ["nginx"])]
    (failed,) = lab.runs(firing_fp(lab, "web02"))
    assert failed["ok"] is False and failed["detail"] == "RuntimeError: Salt request timed out"
