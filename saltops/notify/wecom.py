"""WeCom (企业微信) group robot webhook: markdown messages, ``errcode`` checked."""

from saltops.notify import render
from saltops.notify.base import HttpChannel

# WeCom caps a markdown message at 4096 bytes.
MAX_BYTES = 4096


class WecomChannel(HttpChannel):
    kind = "wecom"
    required = ("url",)
    optional = ("mentioned_mobile_list",)

    def body(self, payload):
        content = render.markdown(payload, limit=MAX_BYTES - 200)
        mobiles = render.recipients(payload, "phones") or self.spec.get("mentioned_mobile_list") or []
        if mobiles:
            content += "\n" + " ".join(f"<@{m}>" for m in mobiles)
        return {"msgtype": "markdown", "markdown": {"content": content}}

    def send(self, payload):
        resp = self.post(self.spec["url"], self.body(payload))
        self.robot_result(resp)
