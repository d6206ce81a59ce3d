"""SMS through an HTTP gateway: the request body is a template the operator writes.

The template is rendered in Jinja's sandbox with ``text`` (the message,
cut to ``max_length``), ``phones``, ``status`` and ``title``; the gateway's
answer is checked with ``ok_status`` and, optionally, ``ok_json`` (a field
that must hold a value, e.g. ``{code: 0}``).
"""

import json

from jinja2 import StrictUndefined, TemplateError
from jinja2.sandbox import SandboxedEnvironment

from saltops.notify import render
from saltops.notify.base import HttpChannel

_ENV = SandboxedEnvironment(undefined=StrictUndefined, autoescape=False)
_ENV.filters["tojson"] = lambda value: json.dumps(value, ensure_ascii=False)


class SmsChannel(HttpChannel):
    kind = "sms"
    required = ("url", "phones", "body")
    optional = ("method", "headers", "content_type", "ok_status", "ok_json", "max_length")

    @classmethod
    def check(cls, name, spec):
        problems = super().check(name, spec)
        phones = spec.get("phones")
        if phones is not None and (not isinstance(phones, list) or not all(isinstance(p, str) for p in phones)):
            problems.append(f"channels.{name}.phones: a list of phone numbers (strings)")
        if spec.get("method", "POST") not in ("POST", "GET", "PUT"):
            problems.append(f"channels.{name}.method: POST, GET or PUT")
        body = spec.get("body")
        if isinstance(body, str):
            try:
                _ENV.from_string(body)
            except TemplateError as err:
                problems.append(f"channels.{name}.body: template error: {err}")
        elif body is not None:
            problems.append(f"channels.{name}.body: a template string")
        ok_json = spec.get("ok_json")
        if ok_json is not None and not isinstance(ok_json, dict):
            problems.append(f"channels.{name}.ok_json: a mapping of field -> expected value")
        return problems

    def render_body(self, payload):
        values = {
            "text": render.text(payload, limit=int(self.spec.get("max_length", 300))),
            "title": render.title(payload),
            "phones": render.recipients(payload, "phones") or list(self.spec["phones"]),
            "status": payload.get("status"),
        }
        try:
            return _ENV.from_string(self.spec["body"]).render(**values)
        except TemplateError as err:
            raise self.error(f"body template: {err}", retryable=False) from None

    def send(self, payload):
        body = self.render_body(payload)
        headers = {"Content-Type": self.spec.get("content_type", "application/json")}
        headers.update(self.spec.get("headers") or {})
        method = self.spec.get("method", "POST")
        try:
            resp = self.session.request(method, self.spec["url"], data=body.encode("utf-8"),
                                        headers=headers, timeout=self.timeout)
        except Exception as err:
            raise self.error(f"{type(err).__name__}: {err}") from None
        ok_status = self.spec.get("ok_status", 200)
        if resp.status_code != ok_status:
            raise self.error(f"HTTP {resp.status_code}: {resp.text[:200]}",
                             retryable=resp.status_code >= 500 or resp.status_code == 429)
        expected = self.spec.get("ok_json")
        if expected:
            try:
                answer = resp.json()
            except ValueError:
                raise self.error("the gateway did not answer JSON") from None
            for field, value in expected.items():
                if not isinstance(answer, dict) or answer.get(field) != value:
                    raise self.error(f"gateway answered {answer!r}")
