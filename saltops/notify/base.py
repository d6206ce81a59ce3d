"""What every channel shares: configuration checks, errors, an HTTP session."""

import abc

import requests

from saltops.errors import ValidationError

USER_AGENT = "saltops-notify/1"


class DeliveryError(Exception):
    """A delivery failed; ``retryable`` tells the worker whether to try again."""

    def __init__(self, message, retryable=True):
        super().__init__(message)
        self.retryable = retryable


class Channel(abc.ABC):
    """Base class: ``kind`` names the type; :meth:`send` raises :class:`DeliveryError` on failure."""

    kind = None
    required = ()
    optional = ()

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
            raise DeliveryError(f"{self.kind} {self.name}: {type(err).__name__}: {err}") from None
        if resp.status_code == 429 or resp.status_code >= 500:
            raise DeliveryError(f"{self.kind} {self.name}: HTTP {resp.status_code}")
        if resp.status_code >= 400:
            raise DeliveryError(f"{self.kind} {self.name}: HTTP {resp.status_code}: {resp.text[:200]}",
                                retryable=False)
        return resp

    @staticmethod
    def robot_result(kind, name, resp):
        """WeCom and DingTalk robots answer HTTP 200 with ``{"errcode": 0}`` on success."""
        try:
            body = resp.json()
        except ValueError:
            raise DeliveryError(f"{kind} {name}: the answer is not JSON: {resp.text[:200]!r}") from None
        if not isinstance(body, dict) or body.get("errcode") != 0:
            raise DeliveryError(f"{kind} {name}: errcode {body.get('errcode') if isinstance(body, dict) else body!r}"
                                f" {body.get('errmsg', '') if isinstance(body, dict) else ''}")


def raise_problems(problems, what="notification channels"):
    if problems:
        raise ValidationError(f"invalid {what} in saltops:notify", problems)
