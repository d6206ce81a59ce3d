"""Batches that never take more than a set share of any ISP line or IDC.

Every host belongs to groups: its IDC (``idc:<name>``) and each of its ISP
lines (``line:<name>``).  A group of ``n`` hosts may give at most
``max(1, floor(max_share * n))`` hosts to one batch, so a bad batch can take
at most that share of a line or an IDC out of service.  Hosts are dealt
round-robin over IDCs (then by hostname) so that batches mix locations, and
each batch is filled greedily under the caps and the batch size.
"""

import math
from collections import defaultdict

from saltops.deploy.config import batch_size_of
from saltops.errors import ValidationError


def groups_of(host):
    keys = [f"idc:{host.get('idc') or '-'}"]
    keys.extend(f"line:{line}" for line in sorted(host.get("lines") or {}))
    return keys


def caps(hosts, max_share):
    sizes = defaultdict(int)
    for host in hosts:
        for key in groups_of(host):
            sizes[key] += 1
    return {key: max(1, math.floor(max_share * size + 1e-9)) for key, size in sizes.items()}, dict(sizes)


def _interleave(hosts):
    by_idc = defaultdict(list)
    for host in sorted(hosts, key=lambda h: h["hostname"]):
        by_idc[host.get("idc") or "-"].append(host)
    queues = [by_idc[k] for k in sorted(by_idc)]
    out = []
    while any(queues):
        for queue in queues:
            if queue:
                out.append(queue.pop(0))
    return out


def _fill(remaining, limit, cap):
    used = defaultdict(int)
    batch, rest = [], []
    for host in remaining:
        keys = groups_of(host)
        if len(batch) < limit and all(used[k] < cap[k] for k in keys):
            batch.append(host)
            for k in keys:
                used[k] += 1
        else:
            rest.append(host)
    return batch, rest


def make_plan(hosts, strategy, batch_size, max_share, canary_size=1):
    """The batches for ``hosts`` (dicts with hostname, idc, lines).

    Returns ``{"strategy", "total", "batch_size", "max_share", "caps", "batches"}``
    where each batch is ``{"number", "kind", "hosts": [hostnames]}`` and ``kind``
    is ``canary``, ``batch`` or ``slot`` (blue/green: every host installs into
    its idle slot, which takes no traffic, then the balancers flip at once).
    """
    if not hosts:
        raise ValidationError("no hosts to plan for")
    names = [h["hostname"] for h in hosts]
    if len(set(names)) != len(names):
        raise ValidationError("a host is listed twice")
    total = len(hosts)
    size = batch_size_of(batch_size, total)
    cap, sizes = caps(hosts, max_share)
    batches = []
    if strategy == "blue_green":
        batches.append({"number": 0, "kind": "slot", "hosts": sorted(names)})
    else:
        remaining = _interleave(hosts)
        if strategy == "canary":
            canary, remaining = _fill(remaining, min(canary_size, total), cap)
            batches.append({"number": 0, "kind": "canary", "hosts": [h["hostname"] for h in canary]})
        while remaining:
            batch, remaining = _fill(remaining, size, cap)
            batches.append({"number": len(batches), "kind": "batch", "hosts": [h["hostname"] for h in batch]})
    return {
        "strategy": strategy,
        "total": total,
        "batch_size": size,
        "max_share": max_share,
        "caps": {k: {"hosts": sizes[k], "per_batch": cap[k]} for k in sorted(cap)},
        "batches": batches,
    }


def worst_share(plan, hosts):
    """For each group, the largest share of it that one batch takes (for checks and display)."""
    by_name = {h["hostname"]: h for h in hosts}
    worst = {}
    for batch in plan["batches"]:
        counts = defaultdict(int)
        for name in batch["hosts"]:
            for key in groups_of(by_name[name]):
                counts[key] += 1
        for key, count in counts.items():
            share = count / plan["caps"][key]["hosts"]
            worst[key] = max(worst.get(key, 0.0), share)
    return worst
