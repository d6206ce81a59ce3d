"""Human text for a notification: a title, markdown for robots, plain text for mail and SMS."""

SEVERITY_MARK = {"critical": "[P1]", "warning": "[P2]", "info": "[P3]"}


def recipients(payload, key):
    """Addresses a notification names for itself (``to``: e-mail, ``phones``), or an empty list.

    A message meant for one person (a ticket's next approver) carries them;
    the channel then sends to that person instead of its configured list.
    """
    found = (payload.get("recipients") or {}).get(key) or []
    return [str(item) for item in found if item]


def title(payload):
    if payload.get("title"):
        return str(payload["title"])
    counts = payload.get("counts") or {}
    firing = counts.get("firing", sum(1 for a in payload["alerts"] if a["status"] == "firing"))
    resolved = counts.get("resolved", sum(1 for a in payload["alerts"] if a["status"] == "resolved"))
    name = payload.get("commonLabels", {}).get("alertname") or payload.get("groupLabels", {}).get(
        "alertname", "alarms")
    group = " ".join(f"{k}={v}" for k, v in sorted(payload.get("groupLabels", {}).items()) if k != "alertname")
    state = f"FIRING:{firing}" if firing else f"RESOLVED:{resolved}"
    if firing and resolved:
        state += f" RESOLVED:{resolved}"
    sev = SEVERITY_MARK.get(payload.get("commonLabels", {}).get("severity", ""), "")
    return " ".join(x for x in (sev, f"[{state}]", name, group) if x)


def _line(alert):
    labels = alert["labels"]
    host = labels.get("host") or labels.get("instance", "")
    extra = " ".join(
        f"{k}={v}" for k, v in sorted(labels.items())
        if k not in ("alertname", "host", "severity", "role", "lines", "idc", "env", "owner", "status",
                     "platform", "instance")
    )
    text = alert["annotations"].get("summary") or alert["annotations"].get("description") or ""
    mark = "resolved" if alert["status"] == "resolved" else "firing"
    return f"{mark} {host} {extra} {text}".replace("  ", " ").strip()


def text(payload, limit=None):
    lines = [title(payload)]
    for alert in payload["alerts"]:
        lines.append("- " + _line(alert))
    if payload.get("truncatedAlerts"):
        lines.append(f"... and {payload['truncatedAlerts']} more")
    out = "\n".join(lines)
    if limit and len(out) > limit:
        out = out[: limit - 3] + "..."
    return out


def markdown(payload, limit=4000):
    head = f"### {title(payload)}"
    common = payload.get("commonLabels", {})
    facts = [f"> {k}: {common[k]}" for k in ("idc", "env", "role", "owner") if common.get(k)]
    body = [f"- {_line(a)}" for a in payload["alerts"]]
    if payload.get("truncatedAlerts"):
        body.append(f"- ... and {payload['truncatedAlerts']} more")
    out = "\n".join([head, *facts, *body])
    encoded = out.encode("utf-8")
    if len(encoded) > limit:
        out = encoded[: limit - 3].decode("utf-8", "ignore") + "..."
    return out
