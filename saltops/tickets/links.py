"""Signed, expiring, single-use links to the phone page.

A link names one sub-ticket and one approver.  Its token is
``<nonce>.<expires>.<signature>``: a random nonce (the row in
``ticket_links`` that holds the binding), the expiry in POSIX seconds, and
HMAC-SHA256 under the master's secret over the nonce, the ticket, the
sub-ticket, the approver and the expiry.  :func:`verify` refuses a token
whose signature does not match its row, that has expired or was used;
:func:`burn` marks it used, once, before the page acts on it.  The secret is
a file on the master (:func:`load_secret` makes one, mode 0600).
"""

import base64
import hashlib
import hmac
import os
import re
import secrets as random

import sqlalchemy as sa

from saltops.errors import SaltOpsError
from saltops.tickets.notice_schema import links

_TOKEN = re.compile(r"^([0-9a-f]{32})\.(\d{1,12})\.([A-Za-z0-9_-]{43})$")
SECRET_BYTES = 32
# A used or expired link's row is kept this long (the page says "used" rather than "invalid").
KEEP = 7 * 86400


class LinkRefused(SaltOpsError):
    """The link cannot be used: ``reason`` is ``invalid``, ``expired`` or ``used``."""

    def __init__(self, reason, message):
        super().__init__(message)
        self.reason = reason


def load_secret(path):
    """The signing key in ``path``, made (random, mode 0600) when the file does not exist."""
    try:
        with open(path, "rb") as fh:
            key = fh.read()
    except FileNotFoundError:
        os.makedirs(os.path.dirname(path) or ".", mode=0o700, exist_ok=True)
        key = random.token_bytes(SECRET_BYTES)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process made it first: use theirs
            return load_secret(path)
        with os.fdopen(fd, "wb") as fh:
            fh.write(key)
    if len(key) < 16:
        raise SaltOpsError(f"the ticket link key {path} is shorter than 16 bytes; remove it to have a new one made")
    return key


def _sign(secret, nonce, ticket_id, approval_id, user, expires):
    message = f"{nonce}\n{int(ticket_id)}\n{int(approval_id)}\n{user}\n{int(expires)}".encode()
    digest = hmac.new(secret, message, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode("ascii").rstrip("=")


def issue(conn, secret, ticket_id, approval_id, user, now, ttl):
    """A new token for ``user`` on sub-ticket ``approval_id``, valid ``ttl`` seconds."""
    nonce = random.token_hex(16)
    expires = int(now + ttl)
    conn.execute(links.insert().values(nonce=nonce, ticket_id=ticket_id, approval_id=approval_id, user=user,
                                       expires_at=float(expires), created_at=now, used_at=None, used_for=None))
    return f"{nonce}.{expires}.{_sign(secret, nonce, ticket_id, approval_id, user, expires)}"


def verify(conn, secret, token, now):
    """The link's row (``ticket_id``, ``approval_id``, ``user``...) for a valid token; :class:`LinkRefused` else.

    A malformed token, an unknown nonce and a wrong signature get the same
    answer, so the page tells an attacker nothing about which part was wrong.
    """
    match = _TOKEN.match(token or "")
    invalid = LinkRefused("invalid", "this link is not valid")
    if match is None:
        raise invalid
    nonce, expires, signature = match.group(1), int(match.group(2)), match.group(3)
    row = conn.execute(sa.select(links).where(links.c.nonce == nonce)).first()
    if row is None:
        raise invalid
    expected = _sign(secret, nonce, row.ticket_id, row.approval_id, row.user, row.expires_at)
    if not hmac.compare_digest(expected, signature) or int(row.expires_at) != expires:
        raise invalid
    if row.used_at is not None:
        raise LinkRefused("used", f"this link was already used (to {row.used_for}); a link works once")
    if now >= row.expires_at:
        raise LinkRefused("expired", "this link has expired; approve with salt-run ticket.approve or ask for a "
                                     "reminder")
    return dict(row._mapping)


def burn(conn, nonce, used_for, now):
    """Mark the link used; False when another request used it first."""
    done = conn.execute(links.update().where((links.c.nonce == nonce) & links.c.used_at.is_(None)).values(
        used_at=now, used_for=used_for))
    return done.rowcount == 1


def prune(conn, now):
    """Forget links that expired more than :data:`KEEP` seconds ago."""
    conn.execute(links.delete().where(links.c.expires_at < now - KEEP))
