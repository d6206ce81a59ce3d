"""
Beacon: CPU use in percent (all cores), beside Salt's ``load`` beacon.

Load counts waiting tasks (I/O included); this is the share of CPU time spent
busy since the beacon's previous run, from psutil.  It speaks while the use is
above ``percent`` (so ``100`` never fires) and once more when it falls back, so the alarm
resolves at once and a quiet host sends nothing::

    salt/beacon/<minion>/saltops_cpu/   {"cpu_percent": 97.5, "threshold": 90, "above": true}

Configuration (pillar/stack/defaults.yml sets it for every host)::

    beacons:
      saltops_cpu:
        - percent: 90
        - interval: 60
"""

import salt.utils.beacons

try:
    import psutil

    HAS_PSUTIL = True
except ImportError:
    HAS_PSUTIL = False

__virtualname__ = "saltops_cpu"


def __virtual__():
    if not HAS_PSUTIL:
        return False, "saltops_cpu: the psutil library is missing on this minion"
    return __virtualname__


def _threshold(config):
    return salt.utils.beacons.list_to_dict(config).get("percent")


def validate(config):
    if not isinstance(config, list):
        return False, "saltops_cpu: the configuration must be a list"
    value = _threshold(config)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 100:
        return False, "saltops_cpu: `percent` must be a number from 0 to 100"
    return True, "valid"


def beacon(config):
    conf = salt.utils.beacons.list_to_dict(config)
    threshold = float(conf["percent"])
    name = conf.get("_beacon_name", __virtualname__)
    # Busy share since the previous call in this process (psutil keeps the count across
    # Salt's reloads of the beacon). psutil's first call in a process answers 0.0, which
    # is not a measurement: a 0.0 right after a (re)load is skipped.
    used = psutil.cpu_percent(interval=None)
    if not __context__.get("saltops_cpu.started"):  # noqa: F821
        __context__["saltops_cpu.started"] = True  # noqa: F821
        if used == 0.0:
            return []
    # Whether it was above lives in a file: Salt builds a new __context__ at each pillar refresh.
    state = __salt__["saltops_beaconstate.load"](name)  # noqa: F821
    above = used > threshold  # strictly: `percent: 100` never fires
    was_above = bool(state.get("above"))
    if above != was_above:
        __salt__["saltops_beaconstate.save"](name, {"above": above})  # noqa: F821
    if above or was_above:
        return [{"cpu_percent": round(used, 1), "threshold": threshold, "above": above}]
    return []
