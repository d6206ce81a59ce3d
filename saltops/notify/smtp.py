"""E-mail through an SMTP server (plain, STARTTLS or SMTPS; optional login)."""

import smtplib
import ssl
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

from saltops.notify import redact, render
from saltops.notify.base import Channel


class SmtpChannel(Channel):
    kind = "smtp"
    required = ("host", "from", "to")
    optional = ("port", "starttls", "ssl", "username", "password", "subject_prefix")

    def secrets(self):
        # A server may echo the AUTH line it refused: the password's base64 forms are masked too.
        login = redact.smtp_login_secrets(self.spec.get("username"), self.spec.get("password"))
        return super().secrets() + login

    @classmethod
    def check(cls, name, spec):
        problems = super().check(name, spec)
        to = spec.get("to")
        if to is not None and (not isinstance(to, list) or not all(isinstance(x, str) and "@" in x for x in to)):
            problems.append(f"channels.{name}.to: a list of e-mail addresses")
        if spec.get("starttls") and spec.get("ssl"):
            problems.append(f"channels.{name}: starttls and ssl exclude each other")
        return problems

    def message(self, payload):
        msg = EmailMessage()
        msg["Subject"] = (self.spec.get("subject_prefix", "[saltops] ") + render.title(payload))[:250]
        msg["From"] = self.spec["from"]
        msg["To"] = ", ".join(render.recipients(payload, "to") or self.spec["to"])
        msg["Date"] = formatdate(localtime=False)
        msg["Message-ID"] = make_msgid(domain="saltops")
        msg.set_content(render.text(payload))
        return msg

    def send(self, payload):
        spec = self.spec
        port = int(spec.get("port", 465 if spec.get("ssl") else 25))
        try:
            if spec.get("ssl"):
                client = smtplib.SMTP_SSL(spec["host"], port, timeout=self.timeout,
                                          context=ssl.create_default_context())
            else:
                client = smtplib.SMTP(spec["host"], port, timeout=self.timeout)
            with client:
                if spec.get("starttls"):
                    client.starttls(context=ssl.create_default_context())
                if spec.get("username"):
                    client.login(spec["username"], spec.get("password", ""))
                refused = client.send_message(self.message(payload))
        except smtplib.SMTPAuthenticationError as err:
            raise self.error(f"login refused: {err}", retryable=False) from None
        except (smtplib.SMTPException, OSError) as err:
            raise self.error(f"{type(err).__name__}: {err}") from None
        if refused:
            raise self.error(f"recipients refused: {sorted(refused)}", retryable=False)
