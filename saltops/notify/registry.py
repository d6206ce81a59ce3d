"""Channel types by name, and building every channel of ``saltops:notify:channels``."""

from saltops.errors import ValidationError
from saltops.notify.dingtalk import DingtalkChannel
from saltops.notify.file import FileChannel
from saltops.notify.sms import SmsChannel
from saltops.notify.smtp import SmtpChannel
from saltops.notify.webhook import WebhookChannel
from saltops.notify.wecom import WecomChannel

TYPES = {cls.kind: cls for cls in (SmtpChannel, WecomChannel, DingtalkChannel, SmsChannel, WebhookChannel,
                                       FileChannel)}


def check(channels):
    """Every problem in a ``channels`` mapping (empty list when valid)."""
    problems = []
    if not isinstance(channels, dict):
        return ["saltops:notify:channels must be a mapping of channel name -> settings"]
    for name, spec in channels.items():
        if not isinstance(spec, dict):
            problems.append(f"channels.{name}: a mapping with a type")
            continue
        cls = TYPES.get(spec.get("type"))
        if cls is None:
            problems.append(f"channels.{name}.type: {spec.get('type')!r} is not one of {sorted(TYPES)}")
            continue
        problems.extend(cls.check(name, spec))
    return problems


def build(channels, timeout=10.0):
    """``{name: Channel}``; raises ValidationError listing every problem."""
    problems = check(channels)
    if problems:
        raise ValidationError("invalid notification channels in saltops:notify:channels", problems)
    return {name: TYPES[spec["type"]](name, spec, timeout) for name, spec in channels.items()}
