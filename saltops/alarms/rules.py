"""The rules file: alarm rules, routing tree, receivers and inhibition rules.

:func:`load_file` reads the YAML file named by ``saltops:alarms:rules_file``;
:func:`parse` validates a mapping and returns a :class:`RuleSet`, or raises
:class:`~saltops.errors.ValidationError` listing every problem with its place
(``rules[2].threshold: ...``).  Nothing is half-loaded: a bad file leaves the
running rules as they were.
"""

import fnmatch
import operator
import re

import yaml

from saltops.alarms.matchers import LABEL_NAME, check_matchers, parse_duration
from saltops.errors import ValidationError

SEVERITIES = ("critical", "warning", "info")
EVENT_KINDS = ("beacon", "tag", "absent")
OPS = {
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
    "==": operator.eq,
    "!=": operator.ne,
}
NUMERIC_OPS = (">", ">=", "<", "<=")
RESERVED_LABELS = ("alertname", "host", "severity")
_RULE_KEYS = {
    "name", "event", "beacon", "tag", "field", "op", "threshold", "where", "key", "key_from_tag",
    "for", "resolve_after", "absent_for", "severity", "labels", "annotations", "remediate",
    "fire_event",
}
# What `alarm.remediate` may run on the alarm's host (the reactor calls it with a fingerprint only).
REMEDIATIONS = ("service.restart", "service.start", "supervisord.restart", "supervisord.start", "state.apply")
SAFE_ARG = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@:-]{0,127}$")
# After a remediation of an alarm, none again for this long (seconds), even when it fires anew.
REMEDIATE_COOLDOWN = 600.0
_ROUTE_KEYS = {"receiver", "group_by", "group_wait", "group_interval", "repeat_interval", "matchers",
               "routes", "continue"}
_TOP_KEYS = {"defaults", "rules", "route", "receivers", "inhibit_rules"}
ROUTE_DEFAULTS = {"group_by": ["alertname"], "group_wait": 30.0, "group_interval": 300.0,
                  "repeat_interval": 14400.0}


class Rule:
    """One alarm rule, validated."""

    def __init__(self, **kw):
        self.__dict__.update(kw)
        self._compiled_tag = re.compile(fnmatch.translate(self.tag)) if self.tag else None
        self._compare = OPS.get(self.op) if self.op else None

    def tag_matches(self, tag):
        return self._compiled_tag.match(tag) is not None

    def condition(self, value):
        """True when the observed ``value`` is a problem (no field: any matching event is)."""
        if self._compare is None:
            return True
        if self.op in NUMERIC_OPS:
            if isinstance(value, bool):
                return None
            if not isinstance(value, (int, float)):
                try:
                    value = float(value)
                except (TypeError, ValueError):
                    return None
            return self._compare(value, self.threshold)
        return self._compare(value, self.threshold)


class Route:
    def __init__(self, receiver, group_by, group_wait, group_interval, repeat_interval, matchers,
                 routes, cont, path):
        self.receiver = receiver
        self.group_by = group_by
        self.group_wait = group_wait
        self.group_interval = group_interval
        self.repeat_interval = repeat_interval
        self.matchers = matchers
        self.routes = routes
        self.cont = cont
        self.path = path


class Receiver:
    def __init__(self, name, channels, send_resolved, max_alerts=50):
        self.name = name
        self.channels = channels
        self.send_resolved = send_resolved
        # Alerts listed in one message (0: all); the rest are counted in truncatedAlerts.
        self.max_alerts = max_alerts


class InhibitRule:
    def __init__(self, source, target, equal):
        self.source = source
        self.target = target
        self.equal = equal


class RuleSet:
    """Everything a rules file defines."""

    def __init__(self, rules, route, receivers, inhibit_rules, resolve_after, source=None):
        self.rules = rules
        self.route = route
        self.receivers = receivers
        self.inhibit_rules = inhibit_rules
        self.resolve_after = resolve_after
        self.source = source
        self.by_beacon = {}
        self.by_tag = []
        self.absent = []
        for rule in rules:
            if rule.event == "beacon":
                self.by_beacon.setdefault(rule.beacon, []).append(rule)
            elif rule.event == "tag":
                self.by_tag.append(rule)
            else:
                self.absent.append(rule)

    def summary(self):
        return {
            "source": self.source,
            "rules": [r.name for r in self.rules],
            "receivers": sorted(self.receivers),
            "inhibit_rules": len(self.inhibit_rules),
        }


def _duration(raw, where, problems, default=None):
    if raw is None:
        return default
    try:
        return parse_duration(raw, where)
    except ValueError as err:
        problems.append(str(err))
        return default


def _str_list(raw, where, problems, label_names=False):
    if raw is None:
        return []
    if isinstance(raw, str):
        raw = [raw]
    if not isinstance(raw, list) or not all(isinstance(x, str) and x for x in raw):
        problems.append(f"{where}: expected a list of names")
        return []
    if label_names:
        for name in raw:
            if name != "..." and not LABEL_NAME.match(name):
                problems.append(f"{where}: {name!r} is not a valid label name")
    return list(raw)


def _labels(raw, where, problems):
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        problems.append(f"{where}: expected a mapping of label names to values")
        return {}
    out = {}
    for name, value in raw.items():
        if not isinstance(name, str) or not LABEL_NAME.match(name):
            problems.append(f"{where}: {name!r} is not a valid label name")
        elif not isinstance(value, (str, int, float, bool)):
            problems.append(f"{where}.{name}: the value must be a string or number")
        else:
            out[name] = str(value)
    return out


def _rule(raw, idx, problems, resolve_after, cooldown=REMEDIATE_COOLDOWN):
    where = f"rules[{idx}]"
    if not isinstance(raw, dict):
        problems.append(f"{where}: a rule is a mapping")
        return None
    name = raw.get("name")
    if isinstance(name, str) and name:
        where = f"rules[{idx}] ({name})"
    unknown = set(raw) - _RULE_KEYS
    if unknown:
        problems.append(f"{where}: unknown keys {sorted(unknown)} (allowed: {sorted(_RULE_KEYS)})")
    if not isinstance(name, str) or not re.match(r"^[A-Za-z][A-Za-z0-9_:.-]{0,127}$", name):
        problems.append(f"{where}.name: required, letters/digits/_:.- starting with a letter")
    event = raw.get("event", "beacon")
    if event not in EVENT_KINDS:
        problems.append(f"{where}.event: {event!r} is not one of {list(EVENT_KINDS)}")
    beacon = raw.get("beacon")
    tag = raw.get("tag")
    if event == "beacon":
        if not isinstance(beacon, str) or not re.match(r"^[A-Za-z0-9_.-]+$", beacon or ""):
            problems.append(f"{where}.beacon: the beacon name (e.g. diskusage) is required for event: beacon")
        tag = tag if isinstance(tag, str) else None
    elif event == "tag":
        if not isinstance(tag, str) or not tag:
            problems.append(f"{where}.tag: a tag pattern (glob) is required for event: tag")
        elif tag.startswith("salt/beacon/"):
            problems.append(f"{where}.tag: use event: beacon for beacon events")
    field = raw.get("field")
    if field is not None and (not isinstance(field, str) or not field):
        problems.append(f"{where}.field: a dotted path into the event data")
    op = raw.get("op")
    threshold = raw.get("threshold")
    if field is not None:
        if op is None:
            op = ">="
        if op not in OPS:
            problems.append(f"{where}.op: {op!r} is not one of {list(OPS)}")
        if threshold is None:
            problems.append(f"{where}.threshold: required with field")
        elif op in NUMERIC_OPS and (isinstance(threshold, bool) or not isinstance(threshold, (int, float))):
            problems.append(f"{where}.threshold: {op} needs a number, got {threshold!r}")
    elif op is not None or threshold is not None:
        problems.append(f"{where}: op/threshold need a field to compare")
    where_m = check_matchers(raw.get("where"), f"{where}.where", problems)
    key = _str_list(raw.get("key"), f"{where}.key", problems)
    key_labels = []
    for path in key:
        label = path.replace(".", "_")
        if not LABEL_NAME.match(label):
            problems.append(f"{where}.key: {path!r} cannot be a label name")
        key_labels.append((label, path))
    key_from_tag = raw.get("key_from_tag")
    if key_from_tag is not None and (not isinstance(key_from_tag, str) or not LABEL_NAME.match(key_from_tag)):
        problems.append(f"{where}.key_from_tag: a label name")
    severity = raw.get("severity", "warning")
    if severity not in SEVERITIES:
        problems.append(f"{where}.severity: {severity!r} is not one of {list(SEVERITIES)}")
    labels = _labels(raw.get("labels"), f"{where}.labels", problems)
    for reserved in RESERVED_LABELS:
        if reserved in labels:
            problems.append(f"{where}.labels: {reserved!r} is set by the pipeline")
    annotations = raw.get("annotations") or {}
    if not isinstance(annotations, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in annotations.items()
    ):
        problems.append(f"{where}.annotations: a mapping of names to template strings")
        annotations = {}
    for_s = _duration(raw.get("for"), f"{where}.for", problems, 0.0)
    res = _duration(raw.get("resolve_after"), f"{where}.resolve_after", problems, resolve_after)
    absent_for = None
    if event == "absent":
        absent_for = _duration(raw.get("absent_for"), f"{where}.absent_for", problems, None)
        if absent_for is None or absent_for <= 0:
            problems.append(f"{where}.absent_for: required for event: absent (e.g. 3m)")
        if field is not None or raw.get("where") or key:
            problems.append(f"{where}: an absent rule takes no field/where/key")
    elif res is not None and res <= 0:
        problems.append(f"{where}.resolve_after: must be positive")
    remediate = raw.get("remediate")
    if remediate is not None:
        if not isinstance(remediate, dict) or remediate.get("function") not in REMEDIATIONS:
            problems.append(f"{where}.remediate: a mapping with function one of {list(REMEDIATIONS)}")
            remediate = None
        else:
            args = remediate.get("args") or []
            if not isinstance(args, list) or not all(isinstance(a, str) and SAFE_ARG.match(a) for a in args):
                problems.append(f"{where}.remediate.args: a list of plain words (letters, digits, _.@:-)")
            arg_label = remediate.get("arg_label")
            if arg_label is not None and (not isinstance(arg_label, str) or not LABEL_NAME.match(arg_label)):
                problems.append(f"{where}.remediate.arg_label: a label name")
            extra = set(remediate) - {"function", "args", "arg_label", "cooldown"}
            if extra:
                problems.append(f"{where}.remediate: unknown keys {sorted(extra)}")
            remediate = dict(remediate)
            remediate["cooldown"] = _duration(remediate.get("cooldown"), f"{where}.remediate.cooldown", problems,
                                              cooldown)
            if remediate["cooldown"] is not None and remediate["cooldown"] < 0:
                problems.append(f"{where}.remediate.cooldown: zero or a positive duration")
    fire_event = raw.get("fire_event", remediate is not None)
    if not isinstance(fire_event, bool):
        problems.append(f"{where}.fire_event: true or false")
    return Rule(
        remediate=remediate, fire_event=bool(fire_event),
        name=name, event=event, beacon=beacon, tag=tag, field=field, op=op, threshold=threshold,
        where=where_m, key=key_labels, key_from_tag=key_from_tag, for_=for_s, resolve_after=res,
        absent_for=absent_for, severity=severity, labels=labels, annotations=dict(annotations),
    )


def _route(raw, where, problems, parent, receivers):
    if not isinstance(raw, dict):
        problems.append(f"{where}: a route is a mapping")
        return None
    unknown = set(raw) - _ROUTE_KEYS
    if unknown:
        problems.append(f"{where}: unknown keys {sorted(unknown)} (allowed: {sorted(_ROUTE_KEYS)})")
    receiver = raw.get("receiver", parent.receiver if parent else None)
    if not isinstance(receiver, str) or not receiver:
        problems.append(f"{where}.receiver: required on the top route")
    elif receiver not in receivers:
        problems.append(f"{where}.receiver: {receiver!r} is not defined under receivers")
    inherit = parent.__dict__ if parent else ROUTE_DEFAULTS
    group_by = inherit["group_by"]
    if "group_by" in raw:
        group_by = _str_list(raw["group_by"], f"{where}.group_by", problems, label_names=True)
    timings = {}
    for key in ("group_wait", "group_interval", "repeat_interval"):
        timings[key] = _duration(raw.get(key), f"{where}.{key}", problems, inherit[key])
    if timings["group_interval"] is not None and timings["group_interval"] <= 0:
        problems.append(f"{where}.group_interval: must be positive")
    if timings["repeat_interval"] is not None and timings["repeat_interval"] <= 0:
        problems.append(f"{where}.repeat_interval: must be positive")
    matchers = check_matchers(raw.get("matchers"), f"{where}.matchers", problems)
    cont = raw.get("continue", False)
    if not isinstance(cont, bool):
        problems.append(f"{where}.continue: true or false")
    node = Route(receiver, group_by, timings["group_wait"], timings["group_interval"],
                 timings["repeat_interval"], matchers, [], bool(cont), where)
    children = raw.get("routes") or []
    if not isinstance(children, list):
        problems.append(f"{where}.routes: a list of routes")
        children = []
    for idx, child in enumerate(children):
        sub = _route(child, f"{where}.routes[{idx}]", problems, node, receivers)
        if sub is not None:
            node.routes.append(sub)
    return node


def parse(data, channels=None, source=None):
    """Validate a rules mapping; ``channels`` (names) checks the receivers' references."""
    problems = []
    if not isinstance(data, dict):
        raise ValidationError(f"rules {source or ''} must be a mapping".replace("  ", " "),
                              ["the top level must hold rules, route and receivers"])
    unknown = set(data) - _TOP_KEYS
    if unknown:
        problems.append(f"unknown top-level keys {sorted(unknown)} (allowed: {sorted(_TOP_KEYS)})")
    defaults = data.get("defaults") or {}
    if not isinstance(defaults, dict):
        problems.append("defaults: a mapping")
        defaults = {}
    resolve_after = _duration(defaults.get("resolve_after"), "defaults.resolve_after", problems, 300.0)
    cooldown = _duration(defaults.get("remediate_cooldown"), "defaults.remediate_cooldown", problems,
                         REMEDIATE_COOLDOWN)
    unknown = set(defaults) - {"resolve_after", "remediate_cooldown"}
    if unknown:
        problems.append(f"defaults: unknown keys {sorted(unknown)} (allowed: resolve_after, remediate_cooldown)")

    receivers = {}
    raw_receivers = data.get("receivers")
    if not isinstance(raw_receivers, dict) or not raw_receivers:
        problems.append("receivers: a mapping of receiver name -> {channels: [...]} is required")
        raw_receivers = {}
    for name, spec in raw_receivers.items():
        where = f"receivers.{name}"
        if not isinstance(spec, dict):
            problems.append(f"{where}: a mapping with channels")
            continue
        chans = _str_list(spec.get("channels"), f"{where}.channels", problems)
        if not chans:
            problems.append(f"{where}.channels: at least one channel")
        for chan in chans:
            if channels is not None and chan not in channels:
                problems.append(
                    f"{where}.channels: {chan!r} is not defined under saltops:notify:channels"
                    f" (defined: {sorted(channels)})"
                )
        send_resolved = spec.get("send_resolved", True)
        if not isinstance(send_resolved, bool):
            problems.append(f"{where}.send_resolved: true or false")
        max_alerts = spec.get("max_alerts", 50)
        if isinstance(max_alerts, bool) or not isinstance(max_alerts, int) or max_alerts < 0:
            problems.append(f"{where}.max_alerts: a whole number, 0 for no limit")
            max_alerts = 50
        unknown_r = set(spec) - {"channels", "send_resolved", "max_alerts"}
        if unknown_r:
            problems.append(f"{where}: unknown keys {sorted(unknown_r)} (allowed: channels, send_resolved, max_alerts)")
        receivers[name] = Receiver(name, chans, bool(send_resolved), max_alerts)

    rules = []
    raw_rules = data.get("rules")
    if not isinstance(raw_rules, list):
        problems.append("rules: a list of rules is required")
        raw_rules = []
    seen = set()
    for idx, raw in enumerate(raw_rules):
        rule = _rule(raw, idx, problems, resolve_after, cooldown)
        if rule is None:
            continue
        if rule.name in seen:
            problems.append(f"rules[{idx}].name: {rule.name!r} is defined twice")
        seen.add(rule.name)
        rules.append(rule)

    route = None
    if "route" not in data:
        problems.append("route: the top route (with a receiver) is required")
    else:
        route = _route(data["route"], "route", problems, None, receivers)
        if route is not None and route.matchers:
            problems.append("route.matchers: the top route matches every alert; put matchers on sub-routes")

    inhibit = []
    raw_inhibit = data.get("inhibit_rules") or []
    if not isinstance(raw_inhibit, list):
        problems.append("inhibit_rules: a list")
        raw_inhibit = []
    for idx, raw in enumerate(raw_inhibit):
        where = f"inhibit_rules[{idx}]"
        if not isinstance(raw, dict):
            problems.append(f"{where}: a mapping with source_matchers, target_matchers, equal")
            continue
        src = check_matchers(raw.get("source_matchers"), f"{where}.source_matchers", problems)
        tgt = check_matchers(raw.get("target_matchers"), f"{where}.target_matchers", problems)
        if not raw.get("source_matchers") or not raw.get("target_matchers"):
            problems.append(f"{where}: source_matchers and target_matchers are both required")
        equal = _str_list(raw.get("equal"), f"{where}.equal", problems, label_names=True)
        inhibit.append(InhibitRule(src, tgt, equal))

    if problems:
        raise ValidationError(f"invalid alarm rules{' in ' + source if source else ''}", problems)
    return RuleSet(rules, route, receivers, inhibit, resolve_after, source=source)


def load_file(path, channels=None):
    """Read and validate the rules file at ``path``."""
    try:
        with open(path, encoding="utf-8") as fh:
            data = yaml.safe_load(fh)
    except FileNotFoundError:
        raise ValidationError(f"alarm rules file {path} does not exist",
                              ["set saltops:alarms:rules_file to an existing YAML file"]) from None
    except yaml.YAMLError as err:
        raise ValidationError(f"alarm rules file {path} is not valid YAML", [str(err)]) from None
    except OSError as err:
        raise ValidationError(f"cannot read alarm rules file {path}", [str(err)]) from None
    return parse(data, channels=channels, source=path)
