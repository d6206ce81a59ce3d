"""Drift between the CMDB and the real hosts.

:func:`compare` is pure: it takes the CMDB records, the master's minion keys by
state, and the grains of the minions that answered, and reports every
disagreement.  The ``cmdb.drift`` runner gathers those inputs from Salt.

Minion answers are untrusted: a grain that is not the expected type is
reported under ``bad_answers`` and never compared.
"""

import ipaddress

# The grains the runner asks for; answering them is also the liveness probe.
GRAINS = ("ipv4", "ipv6", "osfinger")
KEY_STATES = ("accepted", "pending", "rejected", "denied")


def _addresses(values):
    out = set()
    for value in values:
        try:
            out.add(str(ipaddress.ip_address(value)))
        except ValueError:
            continue
    return out


def _grains_ok(answer):
    if not isinstance(answer, dict):
        return f"answered {type(answer).__name__} instead of grains"
    for name in ("ipv4", "ipv6"):
        value = answer.get(name, [])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            return f"grain {name} is not a list of addresses"
    osfinger = answer.get("osfinger")
    if osfinger is not None and not isinstance(osfinger, str):
        return "grain osfinger is not text"
    return None


def targets_to_probe(records, accepted):
    """CMDB hosts with an accepted key that are not decommissioned: the minions to ask."""
    accepted = set(accepted)
    return sorted(
        r["hostname"] for r in records if r["hostname"] in accepted and r["status"] != "decommissioned"
    )


def compare(records, keys, answers, probed):
    """Report the drift between CMDB ``records`` and reality.

    ``keys``: ``{"accepted": [...], "pending": [...], "rejected": [...], "denied": [...]}``
    (minion ids by key state); ``answers``: minion id -> grains for the minions
    that answered; ``probed``: the minion ids that were asked.
    """
    by_name = {r["hostname"]: r for r in records}
    state_of = {}
    for state in KEY_STATES:
        for minion in keys.get(state) or []:
            state_of.setdefault(minion, state)
    accepted = {m for m, s in state_of.items() if s == "accepted"}
    probed = set(probed)

    report = {
        "unknown_minions": sorted(accepted - set(by_name)),
        "missing_key": [],
        "not_responding": [],
        "decommissioned_with_key": [],
        "ip_mismatch": [],
        "os_mismatch": [],
        "bad_answers": [],
    }
    for name in sorted(by_name):
        rec = by_name[name]
        key_state = state_of.get(name)
        if rec["status"] == "decommissioned":
            if key_state == "accepted":
                report["decommissioned_with_key"].append(name)
            continue
        if rec["status"] == "online" and key_state != "accepted":
            report["missing_key"].append({"hostname": name, "key": key_state or "none"})
            continue
        if name not in probed:
            continue
        if name not in answers:
            if rec["status"] == "online":
                report["not_responding"].append(name)
            continue
        answer = answers[name]
        problem = _grains_ok(answer)
        if problem:
            report["bad_answers"].append({"hostname": name, "problem": problem})
            continue
        found = _addresses(answer.get("ipv4", []) + answer.get("ipv6", []))
        if rec["ip"] not in found:
            report["ip_mismatch"].append({"hostname": name, "cmdb": rec["ip"], "grains": sorted(found)})
        osfinger = answer.get("osfinger")
        if osfinger != rec["platform"]:
            report["os_mismatch"].append({"hostname": name, "cmdb": rec["platform"], "grains": osfinger})
    counts = {key: len(value) for key, value in report.items()}
    report["summary"] = {
        "hosts": len(by_name),
        "accepted_keys": len(accepted),
        "probed": len(probed),
        "answered": len(probed & set(answers)),
        **counts,
    }
    report["clean"] = not any(counts.values())
    return report
