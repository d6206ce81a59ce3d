"""The phone page: a ticket shown to one approver, approved or rejected with a signed link.

A WSGI application (served by the ``saltops_tickets`` engine with cheroot).
``GET /approve?t=TOKEN`` shows the ticket as the link's approver may read it
(title, applicant, form values, the steps so far: never action output or
file contents) with two buttons; ``POST /approve`` (the token, the decision
and an optional comment in a form body) burns the link, then approves or
rejects as that approver through the workflow, which checks again that they
may.  Every text is HTML-escaped; answers forbid caching, framing, scripts
and referrers (the token is in the address).  A request body is read only
up to ``max_body`` bytes.
"""

import html
import logging
import urllib.parse

from saltops.errors import ConfigError, SaltOpsError
from saltops.tickets import links
from saltops.tickets.notices import merge_known

log = logging.getLogger(__name__)

DEFAULTS = {
    "listen_host": "127.0.0.1",
    "listen_port": 8091,
    # A non-loopback address is served only when TLS is terminated in front of it.
    "behind_tls_proxy": False,
    # The link key; None: <cachedir>/saltops/ticket-links.key (made on first use).
    "secret_file": None,
    "threads": 4,
    "read_timeout": 10,
    "request_timeout": 30,
    "max_connections": 64,
    "max_body": 8192,
}
HEADERS = [
    ("Content-Type", "text/html; charset=utf-8"), ("Cache-Control", "no-store"),
    ("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
                                "frame-ancestors 'none'; base-uri 'none'"),
    ("Referrer-Policy", "no-referrer"), ("X-Frame-Options", "DENY"), ("X-Content-Type-Options", "nosniff"),
]
_STATUS = {200: "200 OK", 400: "400 Bad Request", 403: "403 Forbidden", 404: "404 Not Found",
           405: "405 Method Not Allowed", 409: "409 Conflict", 410: "410 Gone", 413: "413 Payload Too Large"}
_DECISIONS = ("approve", "reject")
_FIELD_CHARS = 300


def check_settings(raw):
    """The ``saltops:tickets:web`` block with its defaults; :class:`ConfigError` on a bad value."""
    out = merge_known(raw, DEFAULTS, "saltops:tickets:web")
    for key in ("listen_port", "threads", "read_timeout", "request_timeout", "max_connections", "max_body"):
        value = out[key]
        if isinstance(value, bool) or not isinstance(value, int) or value < (0 if key == "listen_port" else 1):
            raise ConfigError(f"saltops:tickets:web:{key} must be a whole number above 0")
    if not isinstance(out["listen_host"], str) or not out["listen_host"]:
        raise ConfigError("saltops:tickets:web:listen_host must be an address")
    return out


def _e(value):
    return html.escape("" if value is None else str(value), quote=True)


def _clip(value):
    text = str(value)
    return text if len(text) <= _FIELD_CHARS else text[:_FIELD_CHARS] + "…"


class App:
    """The WSGI application.

    ``flow``: a :class:`saltops.tickets.workflow.Workflow` (with the executor
    that runs actions); ``secret``: the link key; ``after_write()``: called
    after a decision (the notices of the next step, the outbox's events).
    """

    def __init__(self, flow, secret, after_write=None, max_body=8192):
        self.flow = flow
        self.store = flow.store
        self.secret = secret
        self.after_write = after_write or (lambda: None)
        self.max_body = max_body

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "")
        method = environ.get("REQUEST_METHOD", "GET")
        if path == "/-/healthy":
            start_response("200 OK", [("Content-Type", "text/plain")])
            return [b"ok\n"]
        if path != "/approve":
            return self._page(start_response, 404, "Not found", "<p>There is no such page.</p>")
        if method == "GET":
            query = urllib.parse.parse_qs(environ.get("QUERY_STRING", ""), max_num_fields=4)
            return self.show(start_response, (query.get("t") or [""])[0])
        if method == "POST":
            try:
                form = self._form(environ)
            except ValueError as err:
                code = 413 if "larger" in str(err) else 400
                return self._page(start_response, code, "Refused", f"<p>{_e(err)}</p>")
            return self.decide(start_response, form.get("t", ""), form.get("decision", ""), form.get("comment", ""))
        return self._page(start_response, 405, "Refused", "<p>Use GET or POST.</p>", [("Allow", "GET, POST")])

    # -- pages --------------------------------------------------------------------------------
    def _verify(self, token):
        with self.store.connect() as conn:
            return links.verify(conn, self.secret, token, self.flow.clock())

    def show(self, start_response, token):
        try:
            link = self._verify(token)
            ticket = self.flow.show(link["user"], link["ticket_id"])
        except links.LinkRefused as err:
            return self._refused(start_response, err)
        except SaltOpsError as err:
            return self._page(start_response, 403, "Refused", f"<p>{_e(err)}</p>")
        return self._page(start_response, 200, f"Ticket #{ticket['id']}", self._ticket(ticket, link, token))

    def decide(self, start_response, token, decision, comment):
        if decision not in _DECISIONS:
            return self._page(start_response, 400, "Refused", "<p>Choose approve or reject.</p>")
        comment = comment.strip()[:2000] or None
        try:
            link = self._verify(token)
            with self.store.begin() as conn:  # burned before acting: a second request finds it used
                if not links.burn(conn, link["nonce"], decision, self.flow.clock()):
                    raise links.LinkRefused("used", "this link was already used; a link works once")
        except links.LinkRefused as err:
            return self._refused(start_response, err)
        act = self.flow.approve if decision == "approve" else self.flow.reject
        try:
            if decision == "approve" and self._confirm_step(link):
                act = self.flow.confirm
            ticket = act(link["user"], link["ticket_id"], comment)
        except SaltOpsError as err:
            return self._page(start_response, 409, "Not done", f"<p>{_e(err)}</p>")
        finally:
            self._after()
        done = {"approve": "approved", "reject": "rejected"}[decision]
        body = (f"<p class=ok>You {done} ticket #{ticket['id']} as {_e(link['user'])}.</p>"
                f"<p>The ticket is now <b>{_e(ticket['state'])}</b>"
                + (f", waiting for {_e(', '.join(ticket['waiting_for']))}" if ticket["waiting_for"] else "")
                + ".</p>")
        return self._page(start_response, 200, f"Ticket #{ticket['id']}", body)

    def _confirm_step(self, link):
        ticket = self.flow.show(link["user"], link["ticket_id"], check=False)
        return any(a["id"] == link["approval_id"] and a["kind"] == "confirm" for a in ticket["approvals"])

    def _after(self):
        try:
            self.after_write()
        except Exception as err:  # noqa: BLE001  (the decision is committed; the next deadline check catches up)
            log.warning("ticket phone page: after a decision: %s", err)

    def _ticket(self, ticket, link, token):
        form = "".join(f"<tr><th>{_e(k)}</th><td>{_e(_clip(v))}</td></tr>" for k, v in sorted(ticket["form"].items())
                       if v is not None)
        steps = "".join(
            f"<li>{_e(a['step_name'])}: {_e(a['state'])}"
            + (f" by {_e(a['acted_by'])}" if a["acted_by"] else "")
            + (f": “{_e(_clip(a['comment']))}”" if a["comment"] else "") + "</li>"
            for a in ticket["approvals"] if a["round"] == ticket["round"])
        pending = link["approval_id"] in {a["id"] for a in ticket["approvals"] if a["state"] == "pending"}
        head = (f"<h1>#{ticket['id']} {_e(ticket['title'])}</h1>"
                f"<p>{_e(ticket['template'])} from <b>{_e(ticket['applicant'])}</b> · {_e(ticket['state'])}</p>"
                f"<table>{form}</table><ol>{steps}</ol>")
        if not pending:
            return head + "<p>Nothing waits for you on this ticket any more.</p>"
        return head + (
            f"<form method=post action=approve><input type=hidden name=t value=\"{_e(token)}\">"
            f"<p>As <b>{_e(link['user'])}</b>:</p>"
            "<textarea name=comment maxlength=2000 placeholder=Comment></textarea>"
            "<button name=decision value=approve id=approve>Approve</button>"
            "<button name=decision value=reject id=reject class=no>Reject</button></form>")

    def _refused(self, start_response, err):
        code = {"invalid": 403, "expired": 410, "used": 410}[err.reason]
        return self._page(start_response, code, "Link refused", f"<p class=no id=refused>{_e(err)}</p>")

    @staticmethod
    def _page(start_response, code, title, body, extra=()):
        page = ("<!doctype html><html lang=en><head><meta charset=utf-8>"
                "<meta name=viewport content=\"width=device-width, initial-scale=1\">"
                f"<title>{_e(title)}</title><style>body{{font:16px sans-serif;margin:1em;max-width:40em}}"
                "th{text-align:left;padding-right:1em}textarea{width:100%;height:4em}"
                "button{font-size:1.1em;margin:.5em .5em 0 0;padding:.5em 1.5em}.no{color:#a00}.ok{color:#060}"
                f"</style></head><body>{body}</body></html>").encode("utf-8")
        start_response(_STATUS[code], [*HEADERS, ("Content-Length", str(len(page))), *extra])
        return [page]

    def _form(self, environ):
        """The urlencoded body, at most ``max_body`` bytes."""
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            raise ValueError("malformed Content-Length") from None
        if length > self.max_body:
            raise ValueError(f"the body is larger than {self.max_body} bytes")
        raw = environ["wsgi.input"].read(length) if length else b""
        if len(raw) > self.max_body:
            raise ValueError(f"the body is larger than {self.max_body} bytes")
        pairs = urllib.parse.parse_qsl(raw.decode("utf-8", "replace"), max_num_fields=8)
        return dict(pairs)
