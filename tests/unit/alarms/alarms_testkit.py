"""Helpers for the alarm tests: rules from YAML text, a fixed clock, beacon events."""

import pytest
import yaml

from saltops.alarms import rules
from saltops.alarms.ingest import Ingest
from saltops.alarms.pipeline import Pipeline

BASE_RULES = """
defaults:
  resolve_after: 60s
rules:
  - name: DiskFull
    beacon: diskusage
    field: diskusage
    op: ">="
    threshold: 90
    key: [mount]
    for: 10s
    annotations: {summary: "disk {mount} on {host} at {value}%"}
  - name: LoadHigh
    beacon: load
    field: 1m
    threshold: 4
    severity: warning
  - name: ServiceDown
    beacon: service
    key_from_tag: service
    field: "{service}.running"
    op: "=="
    threshold: false
    severity: critical
  - name: HostSilent
    event: absent
    absent_for: 120s
    severity: critical
route:
  receiver: ops
  group_by: [alertname, idc]
  group_wait: 5s
  group_interval: 30s
  repeat_interval: 1h
  routes:
    - matchers: ['severity="critical"']
      receiver: oncall
      group_by: [alertname, host]
      group_wait: 1s
receivers:
  ops: {channels: [hook]}
  oncall: {channels: [hook, sms]}
inhibit_rules:
  - source_matchers: ['alertname="HostSilent"']
    target_matchers: ['severity=~"warning|info"']
    equal: [host]
"""


class Clock:
    def __init__(self, now=1000.0):
        self.now = now

    def __call__(self):
        return self.now


def make_ruleset(text=BASE_RULES, channels=("hook", "sms")):
    return rules.parse(yaml.safe_load(text), channels=set(channels))


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def make_pipeline(clock):
    def make(text=BASE_RULES, labels=None, accepted=None):
        ruleset = make_ruleset(text)
        ingest = Ingest(ruleset.by_tag, accepted=accepted, clock=clock)
        return Pipeline(ruleset, ingest, labels=labels or (lambda h: {"idc": "bj-idc1"}), started=0.0)

    return make


def disk(host, usage, mount="/"):
    return f"salt/beacon/{host}/diskusage/", {"id": host, "diskusage": usage, "mount": mount}
