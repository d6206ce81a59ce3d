"""What every channel shares: configuration checks, errors, an HTTP session."""

import abc

import requests

from saltops.errors import ValidationError
from saltops.notify import redact

USER_AGENT = "saltops-notify/1"

# requests' connection pool logs each request line, query string included, at DEBUG.
redact.guard_library_logs()


class DeliveryError(Exception):
    """A delivery failed; ``retryable`` tells the worker whether to try again."""

    def __init__(self, message, retryable=True):
        super().__init__(message)
        self.retryable = retryable


class Channel(abc.ABC):
    """Base class: ``kind`` names the type; :meth:`send` raises :class:`DeliveryError` on failure.

    Errors are made with :meth:`error`, which strips the channel's secrets
    from the text (:mod:`saltops.notify.redact`).
    """

    kind = None
    required = ()
    optional = ()
    # Settings whose values are credentials, masked in every error text.
    secret_keys = ("password", "secret", "bearer_token")

    def __init__(self, name, spec, timeout=10.0):
        self.name = name
        self.spec = spec
        self.timeout = float(spec.get("timeout", timeout))

    @classmethod
    def check(cls, name, spec):
        """Problems with ``spec`` (a list of strings; empty when valid)."""
        problems = []
        allowed = set(cls.required) | set(cls.optional) | {"type", "timeout"}
        for key in cls.required:
            if spec.get(key) in (None, "", []):
                problems.append(f"channels.{name}.{key}: required for type {cls.kind}")
        unknown = set(spec) - allowed
        if unknown:
            problems.append(f"channels.{name}: unknown keys {sorted(unknown)} (allowed: {sorted(allowed)})")
        timeout = spec.get("timeout", 10)
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0:
            problems.append(f"channels.{name}.timeout: a positive number of seconds")
        return problems

    def secrets(self):
        """Every credential of this channel's settings, as it could appear in an error text."""
        found = [str(self.spec[key]) for key in self.secret_keys if self.spec.get(key)]
        found += redact.url_secrets(self.spec.get("url"))
        # Headers are set to carry tokens (X-Token, Authorization...); their values are masked too.
        found += [str(v) for v in (self.spec.get("headers") or {}).values() if v]
        return found

    def error(self, message, retryable=True, extra_secrets=()):
        """A :class:`DeliveryError` named after this channel, its text free of secrets."""
        text = redact.scrub(f"{self.kind} {self.name}: {message}", [*self.secrets(), *extra_secrets])
        return DeliveryError(text, retryable)

    @abc.abstractmethod
    def send(self, payload):
        """Deliver one rendered notification; raise :class:`DeliveryError` when it was not taken."""


class HttpChannel(Channel):
    """A channel that POSTs JSON; a requests Session keeps the connection alive."""

    def __init__(self, name, spec, timeout=10.0):
        super().__init__(name, spec, timeout)
        self.session = requests.Session()
        self.session.headers["User-Agent"] = USER_AGENT

    @classmethod
    def check(cls, name, spec):
        problems = super().check(name, spec)
        url = spec.get("url")
        if url and (not isinstance(url, str) or not url.startswith(("http://", "https://"))):
            problems.append(f"channels.{name}.url: an http:// or https:// URL")
        return problems

    def post(self, url, body=None, headers=None, data=None):
        try:
            resp = self.session.post(url, json=body, data=data, headers=headers, timeout=self.timeout)
        except requests.RequestException as err:
            # requests quotes the URL (with its query string: the robot key) in its messages.
            # DingTalk's per-request signature is in no setting: the sent URL's values are masked too.
            raise self.error(f"{type(err).__name__}: {err}", extra_secrets=redact.url_secrets(url)) from None
        if resp.status_code == 429 or resp.status_code >= 500:
            raise self.error(f"HTTP {resp.status_code}")
        if resp.status_code >= 400:
            raise self.error(f"HTTP {resp.status_code}: {resp.text[:200]}", retryable=False,
                             extra_secrets=redact.url_secrets(url))
        return resp

    def robot_result(self, resp):
        """WeCom and DingTalk robots answer HTTP 200 with ``{"errcode": 0}`` on success."""
        try:
            body = resp.json()
        except ValueError:
            raise self.error(f"the answer is not JSON: {resp.text[:200]!r}") from None
        if not isinstance(body, dict) or body.get("errcode") != 0:
            raise self.error(f"errcode {body.get('errcode') if isinstance(body, dict) else body!r}"
                             f" {body.get('errmsg', '') if isinstance(body, dict) else ''}")


def raise_problems(problems, what="notification channels"):
    if problems:
        raise ValidationError(f"invalid {what} in saltops:notify", problems)
