"""
Beacon: HTTP status and latency of a list of URLs (the seeds' "sites" monitoring).

Self-contained (stdlib + Salt), like every minion-side SaltOps module.  One event
per site at every interval, up or down, so an alarm resolves as soon as the site
answers again: ``salt/beacon/<minion>/<beacon name>/<site>``::

    {"site": "shop", "url": "http://127.0.0.1:8000/healthz", "status": 200,
     "ok": true, "latency_ms": 12.5, "error": ""}

``ok`` is true for a status from 200 to 399 that came within the timeout.
Configuration (the shipped pillar builds the list from the host's CMDB apps,
pillar/stack/roles/web.yml)::

    beacons:
      saltops_sites:
        - sites:
            shop: {url: "http://127.0.0.1:8000/healthz", timeout: 5}
        - interval: 60
"""

import time
import urllib.error
import urllib.request

import salt.utils.beacons

__virtualname__ = "saltops_sites"

DEFAULT_TIMEOUT = 5.0
MAX_SITES = 100


def __virtual__():
    return __virtualname__


def _sites(config):
    conf = salt.utils.beacons.list_to_dict(config)
    return conf.get("sites")


def validate(config):
    if not isinstance(config, list):
        return False, "saltops_sites: the configuration must be a list"
    sites = _sites(config)
    if not isinstance(sites, dict) or not sites:
        return False, "saltops_sites: `sites` must map a site name to {url: ..., timeout: ...}"
    if len(sites) > MAX_SITES:
        return False, f"saltops_sites: at most {MAX_SITES} sites per beacon"
    for name, spec in sites.items():
        url = spec.get("url") if isinstance(spec, dict) else None
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            return False, f"saltops_sites: sites.{name}.url must be an http:// or https:// URL"
        timeout = spec.get("timeout", DEFAULT_TIMEOUT)
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not 0 < timeout <= 60:
            return False, f"saltops_sites: sites.{name}.timeout must be seconds, above 0 and at most 60"
    return True, "valid"


def probe(url, timeout):
    """``(status, ok, latency_ms, error)`` of one GET; never raises."""
    started = time.monotonic()
    status, error = 0, ""
    try:
        req = urllib.request.Request(url, headers={"User-Agent": "saltops-sites-beacon/1"})
        with urllib.request.urlopen(req, timeout=timeout) as resp:  # nosec: URLs come from the pillar
            status = resp.status
            resp.read(65536)
    except urllib.error.HTTPError as err:
        status, error = err.code, f"HTTP {err.code}"
    except (OSError, ValueError) as err:  # refused, timed out, DNS, TLS, bad URL
        error = str(getattr(err, "reason", err))[:200]
    latency = round((time.monotonic() - started) * 1000.0, 1)
    return status, 200 <= status < 400, latency, error


def beacon(config):
    events = []
    for name, spec in sorted((_sites(config) or {}).items()):
        status, ok, latency, error = probe(spec["url"], float(spec.get("timeout", DEFAULT_TIMEOUT)))
        events.append({"tag": str(name), "site": str(name), "url": spec["url"], "status": status, "ok": ok,
                       "latency_ms": latency, "error": error})
    return events
