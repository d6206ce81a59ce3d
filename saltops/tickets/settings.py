"""The ``saltops:tickets`` block of the master config, with its defaults."""

from saltops.errors import ConfigError
from saltops.tickets import notices, phone

DEFAULTS = {
    # The role whose members retry failed actions, list every ticket and read reports.
    "ops_role": "ops",
    # Seconds an action (a runner call or a state run) may take before it is stopped and failed.
    "action_timeout": 600,
    # Approvers' notices, deadlines (saltops.tickets.notices) and the phone page (saltops.tickets.phone).
    "notify": {},
    "web": {},
}


def load(conf):
    """``saltops:tickets`` merged over :data:`DEFAULTS`; :class:`ConfigError` on a bad value."""
    raw = conf.get("tickets") or {}
    if not isinstance(raw, dict):
        raise ConfigError("saltops:tickets must be a mapping")
    unknown = sorted(set(raw) - set(DEFAULTS))
    if unknown:
        raise ConfigError(f"saltops:tickets: unknown key(s) {', '.join(unknown)} (known: {', '.join(DEFAULTS)})")
    out = {**DEFAULTS, **raw}
    if not isinstance(out["ops_role"], str) or not out["ops_role"]:
        raise ConfigError("saltops:tickets:ops_role must be a role name")
    timeout = out["action_timeout"]
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0:
        raise ConfigError("saltops:tickets:action_timeout must be a number of seconds above 0")
    out["notify"] = notices.check_settings(out["notify"])
    out["web"] = phone.check_settings(out["web"])
    return out
