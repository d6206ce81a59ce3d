"""Error text without secrets: what may be stored in the outbox, the delivery log and the master log.

Channel credentials travel in places an error message quotes: WeCom's robot
key and DingTalk's ``access_token``, ``timestamp`` and ``sign`` are query
parameters of the URL, which ``requests`` repeats in its exceptions
("Max retries exceeded with url: /cgi-bin/webhook/send?key=..."); a URL may
carry ``user:password@``; a gateway or an SMTP server may echo what it was
sent.  :func:`scrub` removes them in two ways, so that neither alone has to
be perfect:

* by shape: every query string glued to a URL or a path becomes ``?[redacted]``
  and every ``user:password@`` of a URL becomes ``[redacted]@``;
* by value: each secret the channel knows (its password, signing secret,
  bearer token, header values, the query values and password of its URL, and
  the base64 forms an SMTP login sends) is replaced wherever it appears.

Every channel builds its errors through it, the worker passes every error
through it again before logging or storing it, and the outbox passes what it
stores and what it lists through it once more.
"""

import base64
import logging
import re
import urllib.parse

MASK = "[redacted]"

# A query string: "?" right after a URL or path character, running to the next blank or quote.
_QUERY = re.compile(r"(?<=[\w/.\-%~:@])\?(?=[\w%.~\-&=])[^\s'\"<>`]*")
# "scheme://user:password@" or "scheme://token@".
_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.\-]*://)[^/\s@'\"<>`]+@")
# Shorter values would turn ordinary words of a message into masks.
_MIN_SECRET = 4


def scrub(text, secrets=()):
    """``text`` with query strings, URL credentials and every value of ``secrets`` masked."""
    if text is None:
        return None
    text = str(text)
    for secret in sorted({s for s in secrets if s and len(s) >= _MIN_SECRET}, key=len, reverse=True):
        text = text.replace(secret, MASK)
    text = _USERINFO.sub(lambda m: m.group(1) + MASK + "@", text)
    return _QUERY.sub("?" + MASK, text)


def url_secrets(url):
    """The secret parts of a URL: its query values, user name and password."""
    if not isinstance(url, str):
        return []
    parts = urllib.parse.urlsplit(url)
    values = [v for _k, v in urllib.parse.parse_qsl(parts.query, keep_blank_values=True)]
    # The raw (still percent-encoded) forms too: an error may quote either.
    values += [piece.partition("=")[2] for piece in parts.query.split("&") if "=" in piece]
    values += [parts.username or "", parts.password or ""]
    return [v for v in values if v]


def smtp_login_secrets(username, password):
    """A password and the base64 forms an SMTP AUTH PLAIN or LOGIN exchange carries it in."""
    if not password:
        return []
    user = username or ""
    forms = [password, f"\0{user}\0{password}", f"{user}\0{user}\0{password}"]
    out = [password]
    for form in forms:
        out.append(base64.b64encode(form.encode("utf-8")).decode("ascii"))
    return out


class ScrubFilter(logging.Filter):
    """A logging filter that scrubs a record's text (query strings, URL credentials).

    urllib3 logs every request line at DEBUG (``"POST /cgi-bin/webhook/send?key=..."``),
    which a master running with ``log_level: debug`` would write to its log.
    """

    def filter(self, record):
        text = record.getMessage()
        clean = scrub(text)
        if clean != text:
            record.msg, record.args = clean, ()
        return True


def guard_library_logs():
    """Scrub what the HTTP library logs about requests (idempotent)."""
    logger = logging.getLogger("urllib3.connectionpool")
    if not any(isinstance(f, ScrubFilter) for f in logger.filters):
        logger.addFilter(ScrubFilter())
