"""DingTalk (钉钉) group robot webhook, signed: ``timestamp`` + HMAC-SHA256 ``sign``.

The signature is base64(HMAC-SHA256(key=secret, msg=f"{timestamp}\\n{secret}")),
URL-encoded, with the timestamp in milliseconds; the robot refuses a
timestamp more than an hour away from its clock.
"""

import base64
import hashlib
import hmac
import time
import urllib.parse

from saltops.notify import render
from saltops.notify.base import HttpChannel

MAX_BYTES = 20000


def sign(secret, timestamp_ms):
    mac = hmac.new(secret.encode("utf-8"), f"{timestamp_ms}\n{secret}".encode(), hashlib.sha256)
    return base64.b64encode(mac.digest()).decode("ascii")


def signed_url(url, secret, now=None):
    timestamp_ms = int((time.time() if now is None else now) * 1000)
    query = urllib.parse.urlencode({"timestamp": timestamp_ms, "sign": sign(secret, timestamp_ms)})
    return f"{url}{'&' if '?' in url else '?'}{query}"


class DingtalkChannel(HttpChannel):
    kind = "dingtalk"
    required = ("url",)
    optional = ("secret", "at_mobiles", "at_all")

    def body(self, payload):
        text = render.markdown(payload, limit=MAX_BYTES)
        mobiles = render.recipients(payload, "phones") or self.spec.get("at_mobiles") or []
        if mobiles:
            text += "\n" + " ".join(f"@{m}" for m in mobiles)
        return {
            "msgtype": "markdown",
            "markdown": {"title": render.title(payload)[:60], "text": text},
            "at": {"atMobiles": list(mobiles), "isAtAll": bool(self.spec.get("at_all"))},
        }

    def send(self, payload):
        url = self.spec["url"]
        if self.spec.get("secret"):
            url = signed_url(url, self.spec["secret"])
        resp = self.post(url, self.body(payload))
        self.robot_result(resp)
