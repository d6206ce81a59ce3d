"""
Beacon: network bandwidth per interface against a threshold.

psutil gives byte counters; a rate needs two samples, so the beacon keeps the
previous counters (and when they were read) on the minion (``saltops_beaconstate``:
a file, since Salt renews ``__context__`` at every pillar refresh) and reports the
rate over the interval between two runs: the very first run only takes a sample.
A counter that went backwards (the interface was reset) starts the count again.
It speaks for an interface whose receive or transmit rate is above its threshold,
and once more when it falls back below::

    salt/beacon/<minion>/saltops_bandwidth/eth0
      {"interface": "eth0", "rx_mbps": 812.4, "tx_mbps": 20.1, "mbps": 812.4, "threshold": 800, "above": true}

Configuration (pillar/stack/defaults.yml sets it for every host)::

    beacons:
      saltops_bandwidth:
        - max_mbps: 800            # every interface but loopback ...
        - interfaces:              # ... unless listed here with its own threshold
            eth1: 9000
        - interval: 60
"""

import time

import salt.utils.beacons

try:
    import psutil

    HAS_PSUTIL = True
except ImportError:
    HAS_PSUTIL = False

__virtualname__ = "saltops_bandwidth"


def __virtual__():
    if not HAS_PSUTIL:
        return False, "saltops_bandwidth: the psutil library is missing on this minion"
    return __virtualname__


def _number(value):
    return not isinstance(value, bool) and isinstance(value, (int, float)) and value >= 0


def validate(config):
    if not isinstance(config, list):
        return False, "saltops_bandwidth: the configuration must be a list"
    conf = salt.utils.beacons.list_to_dict(config)
    interfaces = conf.get("interfaces", {})
    if "max_mbps" not in conf and not interfaces:
        return False, "saltops_bandwidth: set max_mbps (every interface) or interfaces (name: Mbit/s)"
    if "max_mbps" in conf and not _number(conf["max_mbps"]):
        return False, "saltops_bandwidth: max_mbps must be a number of Mbit/s, 0 or more"
    if not isinstance(interfaces, dict) or not all(_number(v) for v in interfaces.values()):
        return False, "saltops_bandwidth: interfaces must map an interface name to its Mbit/s threshold"
    return True, "valid"


def thresholds(conf, names):
    """Interface -> Mbit/s threshold: the listed ones, then every other non-loopback one at max_mbps."""
    listed = {str(k): float(v) for k, v in (conf.get("interfaces") or {}).items()}
    out = {name: listed[name] for name in names if name in listed}
    if "max_mbps" in conf:
        for name in names:
            if name not in out and name != "lo":
                out[name] = float(conf["max_mbps"])
    return out


def rates(previous, current, seconds):
    """``{iface: (rx_mbps, tx_mbps)}`` between two counter samples ``{iface: (rx_bytes, tx_bytes)}``."""
    out = {}
    if seconds <= 0:
        return out
    for name, (rx, tx) in current.items():
        before = previous.get(name)
        if not isinstance(before, (list, tuple)) or len(before) != 2 or rx < before[0] or tx < before[1]:
            continue  # new interface, or its counters were reset
        out[name] = ((rx - before[0]) * 8 / seconds / 1e6, (tx - before[1]) * 8 / seconds / 1e6)
    return out


def beacon(config):
    conf = salt.utils.beacons.list_to_dict(config)
    name = conf.get("_beacon_name", __virtualname__)
    now = time.time()
    counters = {nic: [c.bytes_recv, c.bytes_sent] for nic, c in psutil.net_io_counters(pernic=True).items()}
    # The previous sample and the interfaces above their threshold live in a file: Salt builds
    # a new __context__ at each pillar refresh, and a restart must still report "back below".
    state = __salt__["saltops_beaconstate.load"](name)  # noqa: F821
    previous = state.get("sample")
    above_before = set(state.get("above") or [])
    above_now = set()
    events = []
    if isinstance(previous, list) and len(previous) == 2 and isinstance(previous[1], dict):
        limits = thresholds(conf, counters)
        for nic, (rx, tx) in sorted(rates(previous[1], counters, now - float(previous[0])).items()):
            if nic not in limits:
                continue
            mbps = max(rx, tx)
            above = mbps > limits[nic]
            if above:
                above_now.add(nic)
            if above or nic in above_before:
                events.append({"tag": nic, "interface": nic, "rx_mbps": round(rx, 3), "tx_mbps": round(tx, 3),
                               "mbps": round(mbps, 3), "threshold": limits[nic], "above": above})
    keep = {"sample": [now, counters], "above": sorted(above_now)}
    __salt__["saltops_beaconstate.save"](name, keep)  # noqa: F821
    return events
