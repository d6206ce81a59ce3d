"""A generic webhook: Alertmanager's webhook payload (version 4), so existing receivers work."""

from saltops.notify.base import HttpChannel

AM_KEYS = ("version", "groupKey", "truncatedAlerts", "status", "receiver", "groupLabels", "commonLabels",
           "commonAnnotations", "externalURL", "alerts")


class WebhookChannel(HttpChannel):
    kind = "webhook"
    required = ("url",)
    optional = ("headers", "bearer_token")

    @staticmethod
    def body(payload):
        return {key: payload[key] for key in AM_KEYS if key in payload}

    def send(self, payload):
        headers = dict(self.spec.get("headers") or {})
        if self.spec.get("bearer_token"):
            headers["Authorization"] = f"Bearer {self.spec['bearer_token']}"
        self.post(self.spec["url"], self.body(payload), headers=headers)
