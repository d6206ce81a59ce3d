"""Reading what a job returned: per-host success, return codes, trimmed output.

A minion's return counts as a success when its ``retcode`` is 0, Salt did
not mark it unsuccessful, and, for a state run, no state has
``result: False``.  A runner call fails when its return code is not 0 or it
returned ``{"result": False, ...}`` (the shape of SaltOps' refusals).
"""

import json

from saltops.tasks.runs import trim


class Outcome:
    """What a job ended with: ``ok``, a ``retcode``, ``hosts`` (minion jobs) and ``output``."""

    __slots__ = ("hosts", "ok", "output", "retcode")

    def __init__(self, ok, retcode, hosts=None, output=None):
        self.ok = ok
        self.retcode = retcode
        self.hosts = hosts
        self.output = output


def _text(value):
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, default=str, indent=1)


def _state_failed(ret):
    return (isinstance(ret, dict) and ret
            and all(isinstance(v, dict) and "result" in v for v in ret.values())
            and any(v["result"] is False for v in ret.values()))


def host_result(data, limit):
    """One minion's job return (the event data: ``ret``, ``retcode``, ``success``) as a result entry."""
    ret = data.get("ret")
    retcode = data.get("retcode", 0)
    if not isinstance(retcode, int) or isinstance(retcode, bool):
        retcode = 1
    ok = retcode == 0 and data.get("success", True) is not False and not _state_failed(ret)
    if isinstance(ret, dict) and "retcode" in ret and ("stdout" in ret or "stderr" in ret):
        # cmd.script / cmd.run_all: the script's own exit status
        ok = ok and ret.get("retcode") == 0
        retcode = retcode or ret.get("retcode") or 0
        text = "\n".join(part for part in (ret.get("stdout"), ret.get("stderr")) if part)
    else:
        text = _text(ret)
    if not ok and retcode == 0:
        retcode = 1
    return {"ok": ok, "retcode": retcode, "output": trim(text, limit)}


NO_RETURN = "no return: the minion did not answer before the run ended"


def minion_outcome(hostnames, returns, limit, missing=NO_RETURN):
    """The outcome of a minion job: every host in ``hostnames``, those without a return failed."""
    hosts = {}
    for name in hostnames:
        data = returns.get(name)
        hosts[name] = host_result(data, limit) if isinstance(data, dict) else {"ok": False, "retcode": None,
                                                                               "output": missing}
    failed = sorted(name for name, res in hosts.items() if not res["ok"])
    summary = f"{len(hosts) - len(failed)}/{len(hosts)} host(s) succeeded"
    if failed:
        summary += "; failed: " + ", ".join(failed[:20]) + (" ..." if len(failed) > 20 else "")
    return Outcome(not failed, 0 if not failed else 1, hosts, summary)


def runner_outcome(ret, retcode, limit):
    """The outcome of a runner call that returned ``ret`` with ``retcode``."""
    refused = isinstance(ret, dict) and ret.get("result") is False
    if not isinstance(retcode, int) or isinstance(retcode, bool):
        retcode = 1
    ok = retcode == 0 and not refused
    return Outcome(ok, retcode if not ok and retcode else (0 if ok else 1), None, trim(_text(ret), limit))
